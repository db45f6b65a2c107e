//! Generated Store API types, and their conversions to domain types. Values
//! that come from a peer are untrusted: every conversion from the wire checks
//! what it reads and fails with an error, never a panic.

/// Prometheus' remote-read messages.
#[allow(clippy::all, clippy::pedantic)]
pub mod prometheus {
    tonic::include_proto!("prometheus");
}

#[allow(clippy::all, clippy::pedantic)]
pub mod thanos {
    tonic::include_proto!("thanos");

    #[allow(clippy::all, clippy::pedantic)]
    pub mod info {
        tonic::include_proto!("thanos.info");
    }
}

use crate::model::chunk::aggr::Aggr;
use crate::model::{Chunk, ChunkEncoding, Label, Labels, MatchOp, Matcher, Series};
use crate::storeapi::{
    LabelsRequest, PartialResponse, PeerType, SeriesRequest, StoreError, StoreInfo,
};
use thanos as pb;

pub fn labels_to_pb(labels: &Labels) -> Vec<pb::Label> {
    labels
        .iter()
        .map(|l| pb::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

fn labels_into_pb(labels: Labels) -> Vec<pb::Label> {
    labels
        .into_vec()
        .into_iter()
        .map(|l| pb::Label {
            name: l.name,
            value: l.value,
        })
        .collect()
}

pub fn labels_from_pb(labels: Vec<pb::Label>) -> Result<Labels, StoreError> {
    Ok(Labels::new(
        labels
            .into_iter()
            .map(|l| Label {
                name: l.name,
                value: l.value,
            })
            .collect(),
    )?)
}

pub fn matcher_from_pb(m: pb::LabelMatcher) -> Result<Matcher, StoreError> {
    use pb::label_matcher::Type;
    let op = match Type::try_from(m.r#type) {
        Ok(Type::Eq) => MatchOp::Equal,
        Ok(Type::Neq) => MatchOp::NotEqual,
        Ok(Type::Re) => MatchOp::Regex,
        Ok(Type::Nre) => MatchOp::NotRegex,
        Err(_) => {
            return Err(StoreError::InvalidArgument(format!(
                "unknown matcher type {} for label {:?}",
                m.r#type, m.name
            )))
        }
    };
    Ok(Matcher::new(op, m.name, m.value)?)
}

pub fn matchers_from_pb(ms: Vec<pb::LabelMatcher>) -> Result<Vec<Matcher>, StoreError> {
    ms.into_iter().map(matcher_from_pb).collect()
}

pub fn matcher_to_pb(m: &Matcher) -> pb::LabelMatcher {
    use pb::label_matcher::Type;
    let t = match m.op() {
        MatchOp::Equal => Type::Eq,
        MatchOp::NotEqual => Type::Neq,
        MatchOp::Regex => Type::Re,
        MatchOp::NotRegex => Type::Nre,
    };
    pb::LabelMatcher {
        r#type: t as i32,
        name: m.name().to_string(),
        value: m.value().to_string(),
    }
}

fn partial_from_pb(disabled: bool, strategy: i32) -> Result<PartialResponse, StoreError> {
    match pb::PartialResponseStrategy::try_from(strategy) {
        Ok(_) if disabled => Ok(PartialResponse::Abort),
        Ok(pb::PartialResponseStrategy::Warn) => Ok(PartialResponse::Warn),
        Ok(pb::PartialResponseStrategy::Abort) => Ok(PartialResponse::Abort),
        Err(_) => Err(StoreError::InvalidArgument(format!(
            "unknown partial response strategy {strategy}"
        ))),
    }
}

fn partial_to_pb(p: PartialResponse) -> (bool, i32) {
    match p {
        PartialResponse::Warn => (false, pb::PartialResponseStrategy::Warn as i32),
        PartialResponse::Abort => (true, pb::PartialResponseStrategy::Abort as i32),
    }
}

fn non_negative(v: i64, what: &str) -> Result<usize, StoreError> {
    usize::try_from(v).map_err(|_| StoreError::InvalidArgument(format!("negative {what} {v}")))
}

impl TryFrom<pb::SeriesRequest> for SeriesRequest {
    type Error = StoreError;

    fn try_from(r: pb::SeriesRequest) -> Result<Self, StoreError> {
        if r.max_resolution_window < 0 {
            return Err(StoreError::InvalidArgument(format!(
                "negative max resolution window {}",
                r.max_resolution_window
            )));
        }
        let mut aggregates = Vec::with_capacity(r.aggregates.len());
        for a in &r.aggregates {
            let a = match pb::Aggr::try_from(*a) {
                // Raw chunks come from raw blocks whatever is asked.
                Ok(pb::Aggr::Raw) => continue,
                Ok(pb::Aggr::Count) => Aggr::Count,
                Ok(pb::Aggr::Sum) => Aggr::Sum,
                Ok(pb::Aggr::Min) => Aggr::Min,
                Ok(pb::Aggr::Max) => Aggr::Max,
                Ok(pb::Aggr::Counter) => Aggr::Counter,
                Err(_) => {
                    return Err(StoreError::InvalidArgument(format!(
                        "unknown aggregate {a}"
                    )))
                }
            };
            if !aggregates.contains(&a) {
                aggregates.push(a);
            }
        }
        let func = r
            .query_hints
            .as_ref()
            .and_then(|h| h.func.as_ref())
            .map(|f| f.name.clone())
            .unwrap_or_default();
        let (step_ms, range_ms) = match &r.query_hints {
            Some(h) => (
                h.step_millis,
                h.range.as_ref().map_or(r.range, |rg| rg.millis),
            ),
            None => (r.step, r.range),
        };
        Ok(SeriesRequest {
            min_time: r.min_time,
            max_time: r.max_time,
            matchers: matchers_from_pb(r.matchers)?,
            skip_chunks: r.skip_chunks,
            partial_response: partial_from_pb(
                r.partial_response_disabled,
                r.partial_response_strategy,
            )?,
            limit: non_negative(r.limit, "limit")?,
            step_ms,
            range_ms,
            func,
            without_replica_labels: r.without_replica_labels,
            max_resolution_ms: r.max_resolution_window,
            aggregates,
            hops: 0,
            deadline: None,
        })
    }
}

impl From<&SeriesRequest> for pb::SeriesRequest {
    fn from(r: &SeriesRequest) -> Self {
        let (disabled, strategy) = partial_to_pb(r.partial_response);
        pb::SeriesRequest {
            min_time: r.min_time,
            max_time: r.max_time,
            matchers: r.matchers.iter().map(matcher_to_pb).collect(),
            partial_response_disabled: disabled,
            partial_response_strategy: strategy,
            skip_chunks: r.skip_chunks,
            step: r.step_ms,
            range: r.range_ms,
            limit: i64::try_from(r.limit).unwrap_or(i64::MAX),
            query_hints: (!r.func.is_empty() || r.step_ms != 0 || r.range_ms != 0).then(|| {
                pb::QueryHints {
                    step_millis: r.step_ms,
                    func: (!r.func.is_empty()).then(|| pb::Func {
                        name: r.func.clone(),
                    }),
                    grouping: None,
                    range: (r.range_ms != 0).then_some(pb::Range { millis: r.range_ms }),
                }
            }),
            without_replica_labels: r.without_replica_labels.clone(),
            max_resolution_window: r.max_resolution_ms,
            aggregates: r.aggregates.iter().map(|a| aggr_to_pb(*a) as i32).collect(),
            ..Default::default()
        }
    }
}

fn aggr_to_pb(a: Aggr) -> pb::Aggr {
    match a {
        Aggr::Count => pb::Aggr::Count,
        Aggr::Sum => pb::Aggr::Sum,
        Aggr::Min => pb::Aggr::Min,
        Aggr::Max => pb::Aggr::Max,
        Aggr::Counter => pb::Aggr::Counter,
    }
}

// One field per wire field of the two label requests, which share them.
/// Label names and label values requests carry the same fields on the
/// wire but for the label a values request names, so one conversion each
/// way serves both message types.
macro_rules! labels_request_wire {
    ($pb:ident, |$r:ident| $name:expr, $($label:ident)?) => {
        impl TryFrom<pb::$pb> for LabelsRequest {
            type Error = StoreError;

            fn try_from(#[allow(unused_mut)] mut $r: pb::$pb) -> Result<Self, StoreError> {
                Ok(LabelsRequest {
                    name: $name,
                    start: $r.start,
                    end: $r.end,
                    matchers: matchers_from_pb(std::mem::take(&mut $r.matchers))?,
                    partial_response: partial_from_pb(
                        $r.partial_response_disabled,
                        $r.partial_response_strategy,
                    )?,
                    limit: non_negative($r.limit, "limit")?,
                    without_replica_labels: $r.without_replica_labels,
                    hops: 0,
                    deadline: None,
                })
            }
        }

        impl From<&LabelsRequest> for pb::$pb {
            fn from(r: &LabelsRequest) -> Self {
                let (disabled, strategy) = partial_to_pb(r.partial_response);
                pb::$pb {
                    $($label: r.name.clone(),)?
                    partial_response_disabled: disabled,
                    partial_response_strategy: strategy,
                    start: r.start,
                    end: r.end,
                    matchers: r.matchers.iter().map(matcher_to_pb).collect(),
                    limit: i64::try_from(r.limit).unwrap_or(i64::MAX),
                    without_replica_labels: r.without_replica_labels.clone(),
                    hints: None,
                }
            }
        }
    };
}

labels_request_wire!(LabelNamesRequest, |r| String::new(),);
labels_request_wire!(LabelValuesRequest, |r| std::mem::take(&mut r.label), label);

pub fn series_to_pb(s: Series) -> pb::Series {
    pb::Series {
        labels: labels_into_pb(s.labels),
        chunks: s.chunks.into_iter().map(chunk_to_pb).collect(),
    }
}

fn encoding_to_pb(e: ChunkEncoding) -> pb::chunk::Encoding {
    match e {
        ChunkEncoding::Xor | ChunkEncoding::Aggr => pb::chunk::Encoding::Xor,
        ChunkEncoding::Histogram => pb::chunk::Encoding::Histogram,
        ChunkEncoding::FloatHistogram => pb::chunk::Encoding::FloatHistogram,
    }
}

/// A chunk on the wire: raw data in `raw`, a downsampled chunk's
/// aggregates in `count`, `sum`, `min`, `max` and `counter` (each an XOR
/// chunk), as Thanos' gateway sends them.
fn chunk_to_pb(c: Chunk) -> pb::AggrChunk {
    let xor = |d: &[u8]| pb::Chunk {
        r#type: pb::chunk::Encoding::Xor as i32,
        data: c.data.slice_ref(d),
        hash: 0,
    };
    if c.encoding == ChunkEncoding::Aggr {
        if let Ok(p) = crate::model::chunk::aggr::parts(&c.data) {
            return pb::AggrChunk {
                min_time: c.min_time,
                max_time: c.max_time,
                raw: None,
                count: p[0].map(xor),
                sum: p[1].map(xor),
                min: p[2].map(xor),
                max: p[3].map(xor),
                counter: p[4].map(xor),
            };
        }
    }
    pb::AggrChunk {
        min_time: c.min_time,
        max_time: c.max_time,
        raw: Some(pb::Chunk {
            r#type: encoding_to_pb(c.encoding) as i32,
            data: c.data,
            hash: 0,
        }),
        ..Default::default()
    }
}

pub fn series_from_pb(s: pb::Series, peer: &str) -> Result<Series, StoreError> {
    let labels = labels_from_pb(s.labels).map_err(|e| StoreError::protocol(peer, e))?;
    let mut chunks = Vec::with_capacity(s.chunks.len());
    for c in s.chunks {
        if c.min_time > c.max_time {
            return Err(StoreError::protocol(
                peer,
                format!(
                    "series {labels} has a chunk with min time {} after max time {}",
                    c.min_time, c.max_time
                ),
            ));
        }
        let Some(raw) = c.raw else {
            // A downsampled chunk: its aggregates, each an XOR chunk.
            let aggregates = [&c.count, &c.sum, &c.min, &c.max, &c.counter];
            if aggregates.iter().all(|a| a.is_none()) {
                return Err(StoreError::protocol(
                    peer,
                    format!("series {labels} has a chunk with neither raw data nor aggregates"),
                ));
            }
            let mut parts: [Option<&[u8]>; 5] = [None; 5];
            for (slot, a) in parts.iter_mut().zip(aggregates) {
                if let Some(a) = a {
                    if a.r#type != pb::chunk::Encoding::Xor as i32 {
                        return Err(StoreError::protocol(
                            peer,
                            format!(
                                "series {labels} has an aggregate of encoding {}, not XOR",
                                a.r#type
                            ),
                        ));
                    }
                    *slot = Some(&a.data[..]);
                }
            }
            chunks.push(Chunk {
                min_time: c.min_time,
                max_time: c.max_time,
                encoding: ChunkEncoding::Aggr,
                data: crate::model::chunk::aggr::encode_parts(&parts).into(),
            });
            continue;
        };
        let encoding = match pb::chunk::Encoding::try_from(raw.r#type) {
            Ok(pb::chunk::Encoding::Xor) => ChunkEncoding::Xor,
            Ok(pb::chunk::Encoding::Histogram) => ChunkEncoding::Histogram,
            Ok(pb::chunk::Encoding::FloatHistogram) => ChunkEncoding::FloatHistogram,
            Err(_) => {
                return Err(StoreError::protocol(
                    peer,
                    format!(
                        "series {labels} has a chunk of unknown encoding {}",
                        raw.r#type
                    ),
                ))
            }
        };
        chunks.push(Chunk {
            min_time: c.min_time,
            max_time: c.max_time,
            encoding,
            data: raw.data,
        });
    }
    Ok(Series { labels, chunks })
}

fn label_sets_to_pb(sets: &[Labels]) -> Vec<pb::ZLabelSet> {
    sets.iter()
        .map(|l| pb::ZLabelSet {
            labels: labels_to_pb(l),
        })
        .collect()
}

fn label_sets_from_pb(sets: Vec<pb::ZLabelSet>, peer: &str) -> Result<Vec<Labels>, StoreError> {
    sets.into_iter()
        .map(|s| labels_from_pb(s.labels).map_err(|e| StoreError::protocol(peer, e)))
        .collect()
}

fn peer_type_to_pb(p: PeerType) -> pb::PeerType {
    match p {
        PeerType::Store => pb::PeerType::Store,
        PeerType::Source => pb::PeerType::Source,
        PeerType::Query => pb::PeerType::Query,
    }
}

/// The peer type a peer declared. A peer that does not declare one (it is
/// not skein) is a SOURCE whatever its component type: its members are all
/// asked and merged, because nothing says two of them hold the same data
/// (Thanos gateways sharded by relabelling report equal label sets).
/// `--endpoint-group` makes such peers one STORE group on purpose.
fn peer_type_from_pb(raw: i32, _component: &str, peer: &str) -> Result<PeerType, StoreError> {
    match pb::PeerType::try_from(raw) {
        Ok(pb::PeerType::Unspecified) => Ok(PeerType::Source),
        Ok(pb::PeerType::Store) => Ok(PeerType::Store),
        Ok(pb::PeerType::Source) => Ok(PeerType::Source),
        Ok(pb::PeerType::Query) => Ok(PeerType::Query),
        Err(_) => Err(StoreError::protocol(
            peer,
            format!("unknown peer type {raw}"),
        )),
    }
}

fn store_type_to_pb(component: &str) -> pb::StoreType {
    match component {
        "query" => pb::StoreType::Query,
        "rule" => pb::StoreType::Rule,
        "sidecar" => pb::StoreType::Sidecar,
        "store" => pb::StoreType::Store,
        "receive" => pb::StoreType::Receive,
        "debug" => pb::StoreType::Debug,
        _ => pb::StoreType::Unknown,
    }
}

fn store_type_from_pb(raw: i32) -> &'static str {
    match pb::StoreType::try_from(raw) {
        Ok(pb::StoreType::Query) => "query",
        Ok(pb::StoreType::Rule) => "rule",
        Ok(pb::StoreType::Sidecar) => "sidecar",
        Ok(pb::StoreType::Store) => "store",
        Ok(pb::StoreType::Receive) => "receive",
        Ok(pb::StoreType::Debug) => "debug",
        Ok(pb::StoreType::Unknown) | Err(_) => "unknown",
    }
}

pub fn info_to_store_pb(i: &StoreInfo) -> pb::InfoResponse {
    pb::InfoResponse {
        labels: i.label_sets.first().map(labels_to_pb).unwrap_or_default(),
        min_time: i.min_time,
        max_time: i.max_time,
        store_type: store_type_to_pb(&i.component) as i32,
        label_sets: label_sets_to_pb(&i.label_sets),
        peer_type: peer_type_to_pb(i.peer_type) as i32,
        store_group_id: i.store_group_id.clone(),
    }
}

pub fn info_to_info_pb(i: &StoreInfo) -> pb::info::InfoResponse {
    pb::info::InfoResponse {
        label_sets: label_sets_to_pb(&i.label_sets),
        component_type: i.component.clone(),
        store: Some(pb::info::StoreInfo {
            min_time: i.min_time,
            max_time: i.max_time,
            supports_sharding: false,
            supports_without_replica_labels: i.supports_without_replica_labels,
            tsdb_infos: Vec::new(),
        }),
        // Sidecars (from their Prometheus) and queriers (from the
        // cluster) serve thanos.Metadata, thanos.Targets, thanos.Rules and
        // thanos.Exemplars.
        metric_metadata: matches!(i.component.as_str(), "sidecar" | "query")
            .then(pb::info::MetricMetadataInfo::default),
        targets: matches!(i.component.as_str(), "sidecar" | "query")
            .then(pb::info::TargetsInfo::default),
        rules: matches!(i.component.as_str(), "sidecar" | "query")
            .then(pb::info::RulesInfo::default),
        exemplars: matches!(i.component.as_str(), "sidecar" | "query").then(|| {
            pb::info::ExemplarsInfo {
                min_time: i.min_time,
                max_time: i.max_time,
            }
        }),
        peer_type: peer_type_to_pb(i.peer_type) as i32,
        store_group_id: i.store_group_id.clone(),
        ..Default::default()
    }
}

pub fn info_from_store_pb(r: pb::InfoResponse, peer: &str) -> Result<StoreInfo, StoreError> {
    let component = store_type_from_pb(r.store_type).to_string();
    let mut label_sets = label_sets_from_pb(r.label_sets, peer)?;
    if label_sets.is_empty() && !r.labels.is_empty() {
        label_sets.push(labels_from_pb(r.labels).map_err(|e| StoreError::protocol(peer, e))?);
    }
    Ok(StoreInfo {
        label_sets,
        min_time: r.min_time,
        max_time: r.max_time,
        peer_type: peer_type_from_pb(r.peer_type, &component, peer)?,
        store_group_id: r.store_group_id,
        component,
        supports_without_replica_labels: false,
    })
}

pub fn info_from_info_pb(r: pb::info::InfoResponse, peer: &str) -> Result<StoreInfo, StoreError> {
    let Some(store) = r.store else {
        return Err(StoreError::protocol(
            peer,
            format!(
                "component {:?} does not serve the Store API",
                r.component_type
            ),
        ));
    };
    Ok(StoreInfo {
        label_sets: label_sets_from_pb(r.label_sets, peer)?,
        min_time: store.min_time,
        max_time: store.max_time,
        peer_type: peer_type_from_pb(r.peer_type, &r.component_type, peer)?,
        store_group_id: r.store_group_id,
        component: r.component_type,
        supports_without_replica_labels: store.supports_without_replica_labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enums_are_errors() {
        let bad = pb::LabelMatcher {
            r#type: 9,
            name: "a".into(),
            value: "b".into(),
        };
        assert!(matches!(
            matcher_from_pb(bad),
            Err(StoreError::InvalidArgument(_))
        ));
        let req = pb::SeriesRequest {
            partial_response_strategy: 7,
            ..Default::default()
        };
        assert!(SeriesRequest::try_from(req).is_err());
        let series = pb::Series {
            labels: vec![],
            chunks: vec![pb::AggrChunk {
                raw: Some(pb::Chunk {
                    r#type: 42,
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        assert!(matches!(
            series_from_pb(series, "peer"),
            Err(StoreError::Protocol { .. })
        ));
        let info = pb::InfoResponse {
            peer_type: 55,
            ..Default::default()
        };
        assert!(info_from_store_pb(info, "peer").is_err());
    }

    #[test]
    fn bad_regex_from_peer_is_invalid_argument() {
        let m = pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Re as i32,
            name: "job".into(),
            value: "(".into(),
        };
        let err = matcher_from_pb(m).unwrap_err();
        assert_eq!(err.code(), crate::error::ErrorCode::BadData);
    }

    #[test]
    fn peers_without_a_peer_type_are_sources() {
        for (component, want) in [
            ("sidecar", PeerType::Source),
            ("receive", PeerType::Source),
            ("rule", PeerType::Source),
            ("store", PeerType::Source),
            ("query", PeerType::Source),
        ] {
            let r = pb::info::InfoResponse {
                component_type: component.into(),
                store: Some(Default::default()),
                ..Default::default()
            };
            let info = info_from_info_pb(r, "p").unwrap();
            assert_eq!(info.peer_type, want, "{component}");
            assert_eq!(info.store_group_id, "");
        }
    }

    #[test]
    fn series_request_round_trip() {
        let req = SeriesRequest {
            min_time: -5,
            max_time: 10,
            matchers: vec![Matcher::new(MatchOp::Regex, "a", "b.*").unwrap()],
            skip_chunks: true,
            partial_response: PartialResponse::Abort,
            limit: 3,
            step_ms: 15_000,
            range_ms: 60_000,
            func: "rate".into(),
            without_replica_labels: vec!["replica".into()],
            max_resolution_ms: 300_000,
            aggregates: vec![Aggr::Counter, Aggr::Min],
            hops: 0,
            deadline: None,
        };
        let back = SeriesRequest::try_from(pb::SeriesRequest::from(&req)).unwrap();
        assert_eq!(back, req);
    }
}
