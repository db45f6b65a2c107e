//! The Store API's domain types: what a store is asked and answers, its
//! errors, and the transport-free trait every data source implements. Below
//! the wire conversions (`proto`) and every adapter (`store`), so that
//! neither depends on the other's types.

mod error;
pub mod exemplars;
pub mod rules;
pub mod targets;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

pub use error::StoreError;

use crate::model::chunk::aggr::Aggr;
use crate::model::{Labels, Matcher, Series};

/// How a querier treats the members of a store group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerType {
    /// Every member holds the same data: ask one, hedge to another.
    Store,
    /// Each member holds its own copy: ask all and deduplicate.
    Source,
    /// A querier; members are interchangeable like `Store`.
    Query,
}

impl PeerType {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerType::Store => "store",
            PeerType::Source => "source",
            PeerType::Query => "query",
        }
    }

    /// The Thanos component type that best describes this peer type, for
    /// Thanos clients that do not know skein's field.
    pub fn component(self) -> &'static str {
        match self {
            PeerType::Store => "store",
            PeerType::Source => "sidecar",
            PeerType::Query => "query",
        }
    }
}

impl fmt::Display for PeerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PeerType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "store" => Ok(PeerType::Store),
            "source" => Ok(PeerType::Source),
            "query" => Ok(PeerType::Query),
            other => Err(format!(
                "unknown peer type {other:?}: expected store, source or query"
            )),
        }
    }
}

/// What a store says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// External label sets; one for most stores.
    pub label_sets: Vec<Labels>,
    pub min_time: i64,
    pub max_time: i64,
    pub peer_type: PeerType,
    /// Members of a group share labels and this id; empty is a valid id.
    pub store_group_id: String,
    /// The Thanos component type ("sidecar", "store", "query", ...).
    pub component: String,
    /// Whether Series honours `without_replica_labels`.
    pub supports_without_replica_labels: bool,
}

/// Whether a failure of one underlying store fails the whole call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartialResponse {
    /// Failures become warnings.
    #[default]
    Warn,
    /// Failures fail the call.
    Abort,
}

impl PartialResponse {
    /// `Warn` when partial answers are allowed, `Abort` when not.
    pub fn allowed(allowed: bool) -> Self {
        if allowed {
            PartialResponse::Warn
        } else {
            PartialResponse::Abort
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRequest {
    pub min_time: i64,
    pub max_time: i64,
    pub matchers: Vec<Matcher>,
    /// Only labels are wanted, no chunks.
    pub skip_chunks: bool,
    pub partial_response: PartialResponse,
    /// At most this many series; 0 for no limit.
    pub limit: usize,
    /// Evaluation step and range-selector width in milliseconds, as hints.
    pub step_ms: i64,
    pub range_ms: i64,
    /// The PromQL function around the selector (e.g. `rate`), as a hint.
    pub func: String,
    /// External labels to leave out of the answer, which is then sorted
    /// without them (so replicas can be deduplicated while streaming).
    pub without_replica_labels: Vec<String>,
    /// The coarsest resolution of downsampled data the answer may be made
    /// of, in milliseconds; 0 for raw data only. Raw data satisfies any.
    pub max_resolution_ms: i64,
    /// The aggregates wanted from downsampled chunks; empty for all five.
    pub aggregates: Vec<Aggr>,
    /// Queriers the request already passed through (gRPC metadata
    /// `skein-hops`), to stop loops between stacked queriers.
    pub hops: u32,
    /// When the caller stops waiting for the answer: the query's deadline,
    /// sent to peers as the gRPC deadline (`grpc-timeout`) and taken from
    /// it by the Store API server, so stacked queriers pass it on.
    pub deadline: Option<std::time::Instant>,
}

impl SeriesRequest {
    pub fn new(min_time: i64, max_time: i64, matchers: Vec<Matcher>) -> Self {
        Self {
            min_time,
            max_time,
            matchers,
            skip_chunks: false,
            partial_response: PartialResponse::Warn,
            limit: 0,
            step_ms: 0,
            range_ms: 0,
            func: String::new(),
            without_replica_labels: Vec::new(),
            max_resolution_ms: 0,
            aggregates: Vec::new(),
            hops: 0,
            deadline: None,
        }
    }
}

/// A label-names or label-values request; `name` is empty for label names.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelsRequest {
    pub name: String,
    pub start: i64,
    pub end: i64,
    pub matchers: Vec<Matcher>,
    pub partial_response: PartialResponse,
    /// At most this many values; 0 for no limit.
    pub limit: usize,
    /// Replica labels the caller deduplicates on: absent from the names,
    /// and without values.
    pub without_replica_labels: Vec<String>,
    /// Queriers the request already passed through.
    pub hops: u32,
    /// When the caller stops waiting (see [`SeriesRequest::deadline`]).
    pub deadline: Option<std::time::Instant>,
}

/// Sorted, unique names or values, plus warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelsResponse {
    pub values: Vec<String>,
    pub warnings: Vec<String>,
}

/// A metric metadata request (`thanos.Metadata`, Prometheus'
/// `/api/v1/metadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataRequest {
    /// Only this metric; empty for all.
    pub metric: String,
    /// At most this many metrics; negative for no limit.
    pub limit: i64,
    pub partial_response: PartialResponse,
    pub hops: u32,
    pub deadline: Option<std::time::Instant>,
}

impl MetadataRequest {
    pub fn all() -> Self {
        Self {
            metric: String::new(),
            limit: -1,
            partial_response: PartialResponse::Warn,
            hops: 0,
            deadline: None,
        }
    }
}

/// What a target says of a metric: its type, help and unit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Meta {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Metadata by metric name; each metric's entries unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataResponse {
    pub metadata: std::collections::BTreeMap<String, Vec<Meta>>,
    pub warnings: Vec<String>,
}

impl MetadataResponse {
    /// Adds `other`'s entries that are not there yet (replicas of one
    /// Prometheus pair report the same ones).
    pub fn merge(&mut self, other: MetadataResponse) {
        for (metric, metas) in other.metadata {
            let mine = self.metadata.entry(metric).or_default();
            for m in metas {
                if !mine.contains(&m) {
                    mine.push(m);
                }
            }
        }
        self.warnings.extend(other.warnings);
    }

    /// Keeps at most `limit` metrics (negative: all), the first by name.
    pub fn truncate(&mut self, limit: i64) {
        if let Ok(limit) = usize::try_from(limit) {
            while self.metadata.len() > limit {
                self.metadata.pop_last();
            }
        }
    }
}

/// One frame of a Series answer.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesFrame {
    Series(Series),
    Warning(String),
}

pub type SeriesStream = Pin<Box<dyn Stream<Item = Result<SeriesFrame, StoreError>> + Send>>;

/// A source of series. Series streams are sorted by labels, each series
/// appears once with its labels sorted and its chunks sorted by time.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn info(&self) -> Result<StoreInfo, StoreError>;
    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError>;
    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError>;
    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError>;

    /// Rule groups and their alerts; stores that evaluate no rules do not
    /// offer them.
    async fn rules(&self, _req: rules::RulesRequest) -> Result<rules::RulesResponse, StoreError> {
        Err(StoreError::Unsupported("rules".into()))
    }

    /// Scrape targets; stores that scrape nothing do not offer them.
    async fn targets(
        &self,
        _req: targets::TargetsRequest,
    ) -> Result<targets::TargetsResponse, StoreError> {
        Err(StoreError::Unsupported("scrape targets".into()))
    }

    /// Exemplars of the series `req.query` selects; stores that keep none
    /// do not offer them.
    async fn exemplars(
        &self,
        _req: exemplars::ExemplarsRequest,
    ) -> Result<exemplars::ExemplarsResponse, StoreError> {
        Err(StoreError::Unsupported("exemplars".into()))
    }

    /// Metric metadata; stores that keep none do not offer it.
    async fn metric_metadata(&self, _req: MetadataRequest) -> Result<MetadataResponse, StoreError> {
        Err(StoreError::Unsupported("metric metadata".into()))
    }
}

pub fn validate_range(min_time: i64, max_time: i64) -> Result<(), StoreError> {
    if min_time > max_time {
        return Err(StoreError::InvalidArgument(format!(
            "min time {min_time} is after max time {max_time}"
        )));
    }
    Ok(())
}
