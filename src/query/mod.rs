//! The query path: which stores to ask (via the registry), how to ask them
//! (hedging within STORE groups, every SOURCE member), and how their sorted
//! answers become one: a streaming merge, replica deduplication and, where
//! stores overlap, chunk merging. The querier also serves the result as a
//! Store API of its own (peer type QUERY), so queriers stack.

pub mod budget;
pub mod fanout;
pub mod metrics;
pub mod policy;
pub mod route;
mod services;
pub mod stats;
pub mod topology;
pub mod view;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use tokio::sync::watch;

use crate::model::chunk::aggr::AggrChoice;
use crate::model::time::{MAX_TIME, MIN_TIME};
use crate::model::{Labels, Sample};
pub use crate::series::dedup::DedupFunc;
pub use crate::series::merge::{MergedFrame, SeriesGroup};
pub use crate::series::{combine, dedup, is_counter_func, merge, SeriesOptions};
use crate::store::{
    LabelsRequest, LabelsResponse, PartialResponse, PeerType, SeriesFrame, SeriesRequest,
    SeriesStream, Store, StoreError, StoreInfo,
};
pub use route::{HedgeMode, RouteConfig};

use self::metrics::{REQUESTS_TOTAL, REQUEST_DURATION_SECONDS};
use self::topology::Topology;

#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub route: RouteConfig,
    /// `--query.replica-label`: labels that tell replicas apart.
    pub replica_labels: Vec<String>,
    pub dedup_func: DedupFunc,
    /// `--query.partial-response`: missing stores are warnings, not errors.
    pub partial_response: bool,
    /// `--query.auto-downsampling`: queries without `max_source_resolution`
    /// are treated as `auto`.
    pub auto_downsampling: bool,
    /// `--query.instant.default.max_source_resolution`, for instant
    /// queries under `auto`.
    pub instant_max_source_resolution_ms: i64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            route: RouteConfig::default(),
            replica_labels: Vec::new(),
            dedup_func: DedupFunc::Penalty,
            partial_response: true,
            auto_downsampling: false,
            instant_max_source_resolution_ms: 0,
        }
    }
}

/// Queriers a request may pass through; more means stacked queriers ask
/// each other in a loop.
pub const MAX_HOPS: u32 = 8;

fn next_hop(hops: u32) -> Result<u32, StoreError> {
    if hops >= MAX_HOPS {
        return Err(StoreError::InvalidArgument(format!(
            "request passed through {hops} queriers: queriers ask each other in a loop (check --endpoint)"
        )));
    }
    Ok(hops + 1)
}

#[derive(Clone)]
pub struct Querier {
    /// The topology the store registry publishes.
    topology: watch::Receiver<Arc<Topology>>,
    cfg: Arc<QueryConfig>,
}

impl Querier {
    /// A querier over the topologies `topology` receives (the store
    /// registry's `SubscribeTopology`).
    pub fn new(topology: watch::Receiver<Arc<Topology>>, cfg: QueryConfig) -> Self {
        Self {
            topology,
            cfg: Arc::new(cfg),
        }
    }

    /// The latest topology: a shared read, no message.
    fn topology(&self) -> Arc<Topology> {
        self.topology.borrow().clone()
    }

    pub fn config(&self) -> &QueryConfig {
        &self.cfg
    }

    /// Options for a request: `dedup`, `replicaLabels[]` and
    /// `partial_response` override the configuration when given.
    pub fn options(
        &self,
        dedup: Option<bool>,
        replica_labels: Option<Vec<String>>,
        partial_response: Option<bool>,
    ) -> SeriesOptions {
        let replica_labels = replica_labels
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| self.cfg.replica_labels.clone());
        SeriesOptions {
            dedup: dedup.unwrap_or(true) && !replica_labels.is_empty(),
            replica_labels,
            partial_response: partial_response.unwrap_or(self.cfg.partial_response),
            counter: false,
            max_resolution_ms: 0,
            weigh_counts: false,
            deadline: None,
            lookback_ms: None,
        }
    }

    /// The merged answer: series of all stores grouped by label set, replica
    /// labels removed when deduplicating.
    pub async fn select(
        &self,
        mut req: SeriesRequest,
        opts: &SeriesOptions,
    ) -> Result<impl Stream<Item = Result<MergedFrame, StoreError>> + Send + use<>, StoreError>
    {
        req.partial_response = PartialResponse::allowed(opts.partial_response);
        req.without_replica_labels = if opts.dedup {
            opts.replica_labels.clone()
        } else {
            Vec::new()
        };
        req.hops = next_hop(req.hops)?;
        let selection = self
            .topology()
            .select(&req.matchers, req.min_time, req.max_time);
        Ok(merge::merge(fanout::plan(selection, &req, &self.cfg.route)))
    }

    /// Deduplicated series with chunks, as the Store API serves them.
    pub async fn series_with(
        &self,
        req: SeriesRequest,
        opts: SeriesOptions,
    ) -> Result<SeriesStream, StoreError> {
        let started = Instant::now();
        let func = self.cfg.dedup_func;
        // Downsampled chunks become the values the query reads from them
        // before replicas are deduplicated.
        let choice = AggrChoice::from_aggregates(&req.aggregates).weighed(opts.weigh_counts);
        let merged = self.select(req, &opts).await?;
        Ok(Box::pin(async_stream::try_stream! {
            let mut merged = std::pin::pin!(merged);
            let mut buffers: Vec<Vec<Sample>> = Vec::new();
            let mut out: Vec<Sample> = Vec::new();
            while let Some(frame) = merged.next().await {
                match frame? {
                    MergedFrame::Warning(w) => yield SeriesFrame::Warning(w),
                    MergedFrame::Series(mut g) => {
                        merge::materialize_aggregates(&mut g.parts, choice, &mut out)?;
                        yield SeriesFrame::Series(
                            combine(g, opts.dedup, func, opts.counter, &mut buffers, &mut out)?,
                        )
                    }
                }
            }
            ::metrics::counter!(REQUESTS_TOTAL, "kind" => "series", "result" => "ok").increment(1);
            ::metrics::histogram!(REQUEST_DURATION_SECONDS, "kind" => "series")
                .record(started.elapsed().as_secs_f64());
        }))
    }

    async fn labels(&self, req: LabelsRequest, names: bool) -> Result<LabelsResponse, StoreError> {
        let kind = if names { "label_names" } else { "label_values" };
        let started = Instant::now();
        let mut req = req;
        req.hops = next_hop(req.hops)?;
        let selection = self.topology().select(&req.matchers, req.start, req.end);
        // SOURCE: every member at once; STORE/QUERY: hedged like Series.
        type Call = futures::future::BoxFuture<'static, Result<LabelsResponse, route::CallFailure>>;
        let ask = move |req: LabelsRequest| {
            move |m: Arc<topology::MemberTarget>| {
                let req = req.clone();
                async move {
                    if names {
                        m.client.label_names(req).await
                    } else {
                        m.client.label_values(req).await
                    }
                }
            }
        };
        // A SOURCE member is a group of its own: every one is asked.
        let targets = selection
            .groups
            .into_iter()
            .flat_map(|g| match g.peer_type {
                PeerType::Source => g
                    .members
                    .iter()
                    .map(|m| topology::GroupTarget {
                        members: vec![m.clone()],
                        ..g.clone()
                    })
                    .collect(),
                _ => vec![g],
            });
        let mut calls: Vec<Call> = Vec::new();
        for g in targets {
            let route = self.cfg.route.clone();
            let call = ask(req.clone());
            let deadline = req.deadline;
            calls.push(Box::pin(async move {
                route::hedged_call(&g, &route, deadline, call)
                    .await
                    .map_err(|f| match f {
                        route::CallFailure::NoMember(e) => {
                            route::CallFailure::NoMember(vec![format!(
                                "store group {}: no member answered: {}",
                                g.key,
                                e.join("; ")
                            )])
                        }
                        other => other,
                    })
            }));
        }
        let results = futures::future::join_all(calls).await;
        let mut values = std::collections::BTreeSet::new();
        let mut warnings = Vec::new();
        for r in results {
            match r {
                Ok(r) => {
                    values.extend(r.values);
                    warnings.extend(r.warnings);
                }
                Err(route::CallFailure::Final(e)) => {
                    ::metrics::counter!(REQUESTS_TOTAL, "kind" => kind, "result" => "error")
                        .increment(1);
                    return Err(e);
                }
                Err(route::CallFailure::NoMember(w)) => {
                    match policy::on_missing(req.partial_response, "cluster", w.join("; ")) {
                        Ok(w) => warnings.push(w),
                        Err(e) => {
                            ::metrics::counter!(REQUESTS_TOTAL, "kind" => kind, "result" => "error")
                                .increment(1);
                            return Err(e);
                        }
                    }
                }
            }
        }
        let take = if req.limit == 0 {
            usize::MAX
        } else {
            req.limit
        };
        ::metrics::counter!(REQUESTS_TOTAL, "kind" => kind, "result" => "ok").increment(1);
        ::metrics::histogram!(REQUEST_DURATION_SECONDS, "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        Ok(LabelsResponse {
            values: values.into_iter().take(take).collect(),
            warnings,
        })
    }
}

/// The PromQL engine reads series from the querier: merged across the
/// cluster and deduplicated.
#[async_trait]
impl crate::promql::Source for Querier {
    async fn select(
        &self,
        req: SeriesRequest,
        opts: &SeriesOptions,
    ) -> Result<SeriesStream, StoreError> {
        self.series_with(req, opts.clone()).await
    }
}

#[async_trait]
impl Store for Querier {
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        // What the querier can answer: the groups and members it would ask.
        let topology = self.topology();
        let mut sets: Vec<Labels> = Vec::new();
        let (mut min, mut max) = (MAX_TIME, MIN_TIME);
        for g in &topology.groups {
            for s in &g.key.label_sets {
                let stripped = s.without(&self.cfg.replica_labels);
                if !sets.contains(&stripped) {
                    sets.push(stripped);
                }
            }
            for m in &g.members {
                min = min.min(m.min_time);
                max = max.max(m.max_time);
            }
        }
        sets.sort();
        if min > max {
            (min, max) = (MIN_TIME, MIN_TIME);
        }
        Ok(StoreInfo {
            label_sets: sets,
            min_time: min,
            max_time: max,
            peer_type: PeerType::Query,
            store_group_id: String::new(),
            component: "query".into(),
            supports_without_replica_labels: true,
        })
    }

    /// As a store, the querier deduplicates when the caller names replica
    /// labels (`without_replica_labels`) and otherwise returns every replica.
    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        let opts = SeriesOptions {
            dedup: !req.without_replica_labels.is_empty(),
            replica_labels: req.without_replica_labels.clone(),
            partial_response: req.partial_response == PartialResponse::Warn,
            counter: is_counter_func(&req.func),
            max_resolution_ms: req.max_resolution_ms,
            // Another querier counts windows as Thanos does.
            weigh_counts: false,
            deadline: req.deadline,
            lookback_ms: None,
        };
        self.series_with(req, opts).await
    }

    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.labels(req, true).await
    }

    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.labels(req, false).await
    }

    async fn metric_metadata(
        &self,
        req: crate::store::MetadataRequest,
    ) -> Result<crate::store::MetadataResponse, StoreError> {
        self.metadata(req).await
    }

    async fn targets(
        &self,
        req: crate::storeapi::targets::TargetsRequest,
    ) -> Result<crate::storeapi::targets::TargetsResponse, StoreError> {
        self.all_targets(req).await
    }

    async fn rules(
        &self,
        req: crate::storeapi::rules::RulesRequest,
    ) -> Result<crate::storeapi::rules::RulesResponse, StoreError> {
        self.all_rules(req).await
    }

    async fn exemplars(
        &self,
        req: crate::storeapi::exemplars::ExemplarsRequest,
    ) -> Result<crate::storeapi::exemplars::ExemplarsResponse, StoreError> {
        self.all_exemplars(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Chunk, Series};

    /// Samples every 15 s over 10 minutes, shifted by `offset` ms, as one
    /// replica of an HA pair scrapes them.
    fn replica(offset: i64, v0: f64) -> Vec<Chunk> {
        let samples: Vec<Sample> = (0..40)
            .map(|i| Sample {
                t: i * 15_000 + offset,
                v: v0 + i as f64,
            })
            .collect();
        Chunk::encode_xor(&samples, 120).unwrap()
    }

    fn samples(s: &Series) -> Vec<Sample> {
        let mut out = Vec::new();
        merge::decode_series(&s.chunks, &mut out).unwrap();
        out
    }

    #[test]
    fn replicas_in_one_part_are_deduplicated_not_unioned() {
        // A store that left the replica label out sends both replicas'
        // chunks in one series.
        let labels = Labels::from_pairs([("__name__", "x")]).unwrap();
        let chunks = merge::concat_chunks(vec![
            Series {
                labels: labels.clone(),
                chunks: replica(0, 0.0),
            },
            Series {
                labels: labels.clone(),
                chunks: replica(700, 0.0),
            },
        ]);
        let g = SeriesGroup {
            labels: labels.clone(),
            parts: vec![Series {
                labels: labels.clone(),
                chunks,
            }],
        };
        let (mut bufs, mut out) = (Vec::new(), Vec::new());
        let s = combine(
            g.clone(),
            true,
            DedupFunc::Penalty,
            true,
            &mut bufs,
            &mut out,
        )
        .unwrap();
        let got = samples(&s);
        assert_eq!(got.len(), 40, "one replica's density");
        assert!(got.windows(2).all(|w| w[0].t < w[1].t));
        // Without deduplication the series is still in time order.
        let s = combine(g, false, DedupFunc::Penalty, false, &mut bufs, &mut out).unwrap();
        let got = samples(&s);
        assert_eq!(got.len(), 80);
        assert!(got.windows(2).all(|w| w[0].t < w[1].t));
    }

    /// Chunks of `n` samples every 15 s from `offset`, cut after `first`
    /// samples and then every 120.
    fn cut(offset: i64, n: i64, first: usize) -> Vec<Chunk> {
        let s: Vec<Sample> = (0..n)
            .map(|i| Sample {
                t: i * 15_000 + offset,
                v: i as f64,
            })
            .collect();
        let mut out = Chunk::encode_xor(&s[..first], 120).unwrap();
        out.extend(Chunk::encode_xor(&s[first..], 120).unwrap());
        out
    }

    #[test]
    fn replicas_in_one_part_deduplicate_as_if_sent_apart() {
        // a's first chunk ends 6 ms after the half hour, b's 15 s before
        // it: sorted by time, b's second chunk would come before a's.
        let labels = Labels::from_pairs([("__name__", "x")]).unwrap();
        let series = |chunks| Series {
            labels: labels.clone(),
            chunks,
        };
        let (a, b) = (cut(6, 240, 121), cut(400, 240, 120));
        let apart = SeriesGroup {
            labels: labels.clone(),
            parts: vec![series(a.clone()), series(b.clone())],
        };
        let together = SeriesGroup {
            labels: labels.clone(),
            parts: vec![series(merge::concat_chunks(vec![series(a), series(b)]))],
        };
        let (mut bufs, mut out) = (Vec::new(), Vec::new());
        let want = combine(apart, true, DedupFunc::Penalty, true, &mut bufs, &mut out).unwrap();
        let got = combine(
            together,
            true,
            DedupFunc::Penalty,
            true,
            &mut bufs,
            &mut out,
        )
        .unwrap();
        assert_eq!(samples(&got), samples(&want));
        assert_eq!(samples(&got).len(), 240);
    }

    #[test]
    fn a_gap_in_one_replica_is_filled_by_the_other() {
        let labels = Labels::from_pairs([("__name__", "x")]).unwrap();
        let a = replica(0, 0.0);
        // b has only its first and last 10 samples (two chunks).
        let b: Vec<Sample> = (0..40)
            .filter(|i| !(10..30).contains(i))
            .map(|i| Sample {
                t: i * 15_000 + 500,
                v: i as f64,
            })
            .collect();
        let b = vec![
            Chunk::encode_xor(&b[..10], 120).unwrap().remove(0),
            Chunk::encode_xor(&b[10..], 120).unwrap().remove(0),
        ];
        let g = SeriesGroup {
            labels: labels.clone(),
            parts: vec![
                Series {
                    labels: labels.clone(),
                    chunks: b,
                },
                Series {
                    labels: labels.clone(),
                    chunks: a,
                },
            ],
        };
        let (mut bufs, mut out) = (Vec::new(), Vec::new());
        let s = combine(g, true, DedupFunc::Penalty, false, &mut bufs, &mut out).unwrap();
        let got = samples(&s);
        assert!(
            (39..=41).contains(&got.len()),
            "about one replica's density, got {}",
            got.len()
        );
        let max_gap = got.windows(2).map(|w| w[1].t - w[0].t).max().unwrap();
        assert!(max_gap <= 15_500, "gap of {max_gap} ms");
    }
}
