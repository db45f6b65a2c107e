//! Wire compatibility with Thanos, checked against Thanos' own field tables
//! (pkg/store/storepb/rpc.proto, types.proto, pkg/info/infopb/rpc.proto,
//! pkg/metadata/metadatapb/rpc.proto, pkg/targets/targetspb/rpc.proto and
//! pkg/rules/rulespb/rpc.proto
//! on Thanos main; see docs/thanos-services.md), written out below by hand
//! and independently of `proto/`. Each message is checked both ways:
//! - bytes encoded here from the table, as a Thanos component would send
//!   them, decode with skein's types into the values put in;
//! - skein's encoding of a message with every field set is walked tag by
//!   tag, and each field's number must carry the wire type Thanos' table
//!   gives it.

use prost::Message;
use skein::proto::thanos as pb;

/// Protobuf wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;

/// One field of a Thanos message: name, number, wire type.
type Table = &'static [(&'static str, u32, u8)];

// thanos.LabelNamesRequest (Thanos >= 0.35).
const LABEL_NAMES_REQUEST: Table = &[
    ("partial_response_disabled", 1, VARINT),
    ("partial_response_strategy", 2, VARINT),
    ("start", 3, VARINT),
    ("end", 4, VARINT),
    ("hints", 5, LEN),
    ("matchers", 6, LEN),
    ("without_replica_labels", 7, LEN),
    ("limit", 8, VARINT),
];

// thanos.LabelValuesRequest.
const LABEL_VALUES_REQUEST: Table = &[
    ("label", 1, LEN),
    ("partial_response_disabled", 2, VARINT),
    ("partial_response_strategy", 3, VARINT),
    ("start", 4, VARINT),
    ("end", 5, VARINT),
    ("hints", 6, LEN),
    ("matchers", 7, LEN),
    ("without_replica_labels", 8, LEN),
    ("limit", 9, VARINT),
];

// thanos.SeriesRequest.
const SERIES_REQUEST: Table = &[
    ("min_time", 1, VARINT),
    ("max_time", 2, VARINT),
    ("matchers", 3, LEN),
    ("max_resolution_window", 4, VARINT),
    ("aggregates", 5, LEN), // packed repeated enum
    ("partial_response_disabled", 6, VARINT),
    ("partial_response_strategy", 7, VARINT),
    ("skip_chunks", 8, VARINT),
    ("hints", 9, LEN),
    ("step", 10, VARINT),
    ("range", 11, VARINT),
    ("query_hints", 12, LEN),
    ("shard_info", 13, LEN),
    ("without_replica_labels", 14, LEN),
    ("limit", 15, VARINT),
    ("response_batch_size", 16, VARINT),
];

// thanos.LabelNamesResponse / LabelValuesResponse.
const LABELS_RESPONSE: Table = &[("values", 1, LEN), ("warnings", 2, LEN), ("hints", 3, LEN)];

// thanos.SeriesResponse: oneof result.
const SERIES_RESPONSE: Table = &[
    ("series", 1, LEN),
    ("warning", 2, LEN),
    ("hints", 3, LEN),
    ("batch", 4, LEN),
];

// thanos.info.StoreInfo.
const STORE_INFO: Table = &[
    ("min_time", 1, VARINT),
    ("max_time", 2, VARINT),
    ("supports_sharding", 3, VARINT),
    ("supports_without_replica_labels", 5, VARINT),
    ("tsdb_infos", 6, LEN),
];

// thanos.info.InfoResponse, plus skein's own 100 and 101.
const INFO_RESPONSE: Table = &[
    ("label_sets", 1, LEN),
    ("ComponentType", 2, LEN),
    ("store", 3, LEN),
    ("rules", 4, LEN),
    ("metric_metadata", 5, LEN),
    ("targets", 6, LEN),
    ("exemplars", 7, LEN),
    ("query", 8, LEN),
    ("peer_type", 100, VARINT),
    ("store_group_id", 101, LEN),
];

// thanos.MetricMetadataRequest / Response, MetricMetadata (a map: entries
// with key 1 and value 2), MetricMetadataEntry (only field 2), Meta.
const METADATA_REQUEST: Table = &[
    ("metric", 1, LEN),
    ("limit", 2, VARINT),
    ("partial_response_strategy", 3, VARINT),
];
const METADATA_RESPONSE: Table = &[("metadata", 1, LEN), ("warning", 2, LEN)];
const METRIC_METADATA: Table = &[("metadata", 1, LEN)];
const MAP_ENTRY: Table = &[("key", 1, LEN), ("value", 2, LEN)];
const METADATA_ENTRY: Table = &[("metas", 2, LEN)];
const META: Table = &[("type", 1, LEN), ("help", 2, LEN), ("unit", 3, LEN)];

// thanos.TargetsRequest / Response, TargetDiscovery, ActiveTarget (and
// skein's scrapeInterval/scrapeTimeout from 100 up), DroppedTarget.
const TARGETS_REQUEST: Table = &[
    ("state", 1, VARINT),
    ("partial_response_strategy", 2, VARINT),
];
const TARGETS_RESPONSE: Table = &[("targets", 1, LEN), ("warning", 2, LEN)];
const TARGET_DISCOVERY: Table = &[("activeTargets", 1, LEN), ("droppedTargets", 2, LEN)];
const ACTIVE_TARGET: Table = &[
    ("discoveredLabels", 1, LEN),
    ("labels", 2, LEN),
    ("scrapePool", 3, LEN),
    ("scrapeUrl", 4, LEN),
    ("globalUrl", 5, LEN),
    ("lastError", 6, LEN),
    ("lastScrape", 7, LEN),
    ("lastScrapeDuration", 8, I64),
    ("health", 9, VARINT),
    ("scrapeInterval", 100, LEN),
    ("scrapeTimeout", 101, LEN),
];
const DROPPED_TARGET: Table = &[("discoveredLabels", 1, LEN)];

// thanos.ExemplarsRequest / Response, ExemplarData, Exemplar.
const EXEMPLARS_REQUEST: Table = &[
    ("query", 1, LEN),
    ("start", 2, VARINT),
    ("end", 3, VARINT),
    ("partial_response_strategy", 4, VARINT),
];
const EXEMPLARS_RESPONSE: Table = &[("data", 1, LEN), ("warning", 2, LEN)];
const EXEMPLAR_DATA: Table = &[("seriesLabels", 1, LEN), ("exemplars", 2, LEN)];
const EXEMPLAR: Table = &[("labels", 1, LEN), ("value", 2, I64), ("ts", 3, VARINT)];

// thanos.RulesRequest / Response, RuleGroup (no field 7), Rule (a oneof),
// Alert, AlertInstance, RecordingRule.
const RULES_REQUEST: Table = &[
    ("type", 1, VARINT),
    ("partial_response_strategy", 2, VARINT),
    ("matcher_string", 3, LEN),
    ("rule_name", 4, LEN),
    ("rule_group", 5, LEN),
    ("file", 6, LEN),
];
const RULES_RESPONSE: Table = &[("group", 1, LEN), ("warning", 2, LEN)];
const RULE_GROUP: Table = &[
    ("name", 1, LEN),
    ("file", 2, LEN),
    ("rules", 3, LEN),
    ("interval", 4, I64),
    ("evaluation_duration_seconds", 5, I64),
    ("last_evaluation", 6, LEN),
    ("PartialResponseStrategy", 8, VARINT),
    ("limit", 9, VARINT),
];
const RULE: Table = &[("recording", 1, LEN), ("alert", 2, LEN)];
const ALERT: Table = &[
    ("state", 1, VARINT),
    ("name", 2, LEN),
    ("query", 3, LEN),
    ("duration_seconds", 4, I64),
    ("labels", 5, LEN),
    ("annotations", 6, LEN),
    ("alerts", 7, LEN),
    ("health", 8, LEN),
    ("last_error", 9, LEN),
    ("evaluation_duration_seconds", 10, I64),
    ("last_evaluation", 11, LEN),
    ("keep_firing_for_seconds", 12, I64),
];
const ALERT_INSTANCE: Table = &[
    ("labels", 1, LEN),
    ("annotations", 2, LEN),
    ("state", 3, VARINT),
    ("active_at", 4, LEN),
    ("value", 5, LEN),
    ("PartialResponseStrategy", 6, VARINT),
];
const RECORDING_RULE: Table = &[
    ("name", 1, LEN),
    ("query", 2, LEN),
    ("labels", 3, LEN),
    ("health", 4, LEN),
    ("last_error", 5, LEN),
    ("evaluation_duration_seconds", 6, I64),
    ("last_evaluation", 7, LEN),
];

// --- a minimal protobuf writer and reader, for this test only ---

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint((u64::from(field) << 3) | u64::from(wire), out);
}

fn int_field(field: u32, v: i64, out: &mut Vec<u8>) {
    tag(field, VARINT, out);
    varint(v as u64, out);
}

fn bytes_field(field: u32, v: &[u8], out: &mut Vec<u8>) {
    tag(field, LEN, out);
    varint(v.len() as u64, out);
    out.extend_from_slice(v);
}

fn number(table: Table, name: &str) -> u32 {
    table
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, f, _)| *f)
        .unwrap_or_else(|| panic!("{name} not in table"))
}

fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// The (field, wire type) pairs of an encoded message, in order.
fn fields(buf: &[u8]) -> Vec<(u32, u8)> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos);
        let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
        match wire {
            VARINT => {
                read_varint(buf, &mut pos);
            }
            LEN => {
                let n = read_varint(buf, &mut pos) as usize;
                pos += n;
            }
            I64 => pos += 8,
            other => panic!("unexpected wire type {other} for field {field}"),
        }
        out.push((field, wire));
    }
    out
}

/// The bytes of every length-delimited `field` of an encoded message.
fn nested(buf: &[u8], field: u32) -> Vec<Vec<u8>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos);
        let (f, wire) = ((key >> 3) as u32, (key & 7) as u8);
        match wire {
            VARINT => {
                read_varint(buf, &mut pos);
            }
            I64 => pos += 8,
            LEN => {
                let n = read_varint(buf, &mut pos) as usize;
                if f == field {
                    out.push(buf[pos..pos + n].to_vec());
                }
                pos += n;
            }
            other => panic!("unexpected wire type {other}"),
        }
    }
    out
}

/// Every field skein wrote has the number and wire type of Thanos' table,
/// and every name in `must` was written.
fn check_against(table: Table, buf: &[u8], must: &[&str]) {
    let seen = fields(buf);
    for (field, wire) in &seen {
        let row = table.iter().find(|(_, f, _)| f == field);
        let (name, _, want) = row.unwrap_or_else(|| panic!("field {field} is not in the table"));
        assert_eq!(wire, want, "field {name} ({field}) has wire type {wire}");
    }
    for name in must {
        let f = number(table, name);
        assert!(
            seen.iter().any(|(s, _)| *s == f),
            "{name} ({f}) was not written: {seen:?}"
        );
    }
}

fn matcher_bytes() -> Vec<u8> {
    // thanos.LabelMatcher: type = 1, name = 2, value = 3.
    let mut m = Vec::new();
    int_field(1, 2, &mut m); // RE
    bytes_field(2, b"job", &mut m);
    bytes_field(3, b"api.*", &mut m);
    m
}

#[test]
fn label_names_request_from_a_thanos_querier() {
    let t = LABEL_NAMES_REQUEST;
    let mut b = Vec::new();
    int_field(number(t, "partial_response_strategy"), 1, &mut b);
    int_field(number(t, "start"), 1_000, &mut b);
    int_field(number(t, "end"), 2_000, &mut b);
    bytes_field(number(t, "matchers"), &matcher_bytes(), &mut b);
    bytes_field(number(t, "without_replica_labels"), b"replica", &mut b);
    bytes_field(number(t, "without_replica_labels"), b"rule_replica", &mut b);
    int_field(number(t, "limit"), 50, &mut b);
    let r = pb::LabelNamesRequest::decode(b.as_slice()).expect("skein decodes Thanos' bytes");
    assert_eq!(r.partial_response_strategy, 1);
    assert_eq!((r.start, r.end), (1_000, 2_000));
    assert_eq!(r.matchers.len(), 1);
    assert_eq!(r.matchers[0].name, "job");
    assert_eq!(r.without_replica_labels, vec!["replica", "rule_replica"]);
    assert_eq!(r.limit, 50);

    let out = pb::LabelNamesRequest {
        partial_response_disabled: true,
        partial_response_strategy: 1,
        start: 1,
        end: 2,
        hints: Some(Default::default()),
        matchers: vec![Default::default()],
        without_replica_labels: vec!["replica".into()],
        limit: 7,
    }
    .encode_to_vec();
    check_against(t, &out, &["without_replica_labels", "limit", "matchers"]);
}

#[test]
fn label_values_request_from_a_thanos_querier() {
    let t = LABEL_VALUES_REQUEST;
    let mut b = Vec::new();
    bytes_field(number(t, "label"), b"instance", &mut b);
    int_field(number(t, "start"), 5, &mut b);
    int_field(number(t, "end"), 6, &mut b);
    bytes_field(number(t, "matchers"), &matcher_bytes(), &mut b);
    bytes_field(number(t, "without_replica_labels"), b"replica", &mut b);
    int_field(number(t, "limit"), 9, &mut b);
    let r = pb::LabelValuesRequest::decode(b.as_slice()).expect("skein decodes Thanos' bytes");
    assert_eq!(r.label, "instance");
    assert_eq!((r.start, r.end), (5, 6));
    assert_eq!(r.matchers[0].value, "api.*");
    assert_eq!(r.without_replica_labels, vec!["replica"]);
    assert_eq!(r.limit, 9);

    let out = pb::LabelValuesRequest {
        label: "x".into(),
        partial_response_disabled: true,
        partial_response_strategy: 1,
        start: 1,
        end: 2,
        hints: Some(Default::default()),
        matchers: vec![Default::default()],
        without_replica_labels: vec!["replica".into()],
        limit: 3,
    }
    .encode_to_vec();
    check_against(t, &out, &["label", "without_replica_labels", "limit"]);
}

#[test]
fn series_request_with_every_field_a_thanos_querier_sets() {
    let t = SERIES_REQUEST;
    let mut b = Vec::new();
    int_field(number(t, "min_time"), 10, &mut b);
    int_field(number(t, "max_time"), 20, &mut b);
    bytes_field(number(t, "matchers"), &matcher_bytes(), &mut b);
    int_field(number(t, "max_resolution_window"), 0, &mut b);
    bytes_field(number(t, "aggregates"), &[1, 5], &mut b); // COUNT, COUNTER
    int_field(number(t, "partial_response_strategy"), 1, &mut b);
    int_field(number(t, "skip_chunks"), 1, &mut b);
    // QueryHints { step_millis = 1, func = 2 { name = 1 }, range = 5 { millis = 1 } }
    let mut func = Vec::new();
    bytes_field(1, b"rate", &mut func);
    let mut range = Vec::new();
    int_field(1, 300_000, &mut range);
    let mut hints = Vec::new();
    int_field(1, 15_000, &mut hints);
    bytes_field(2, &func, &mut hints);
    bytes_field(5, &range, &mut hints);
    bytes_field(number(t, "query_hints"), &hints, &mut b);
    bytes_field(number(t, "without_replica_labels"), b"replica", &mut b);
    int_field(number(t, "limit"), 100, &mut b);
    int_field(number(t, "response_batch_size"), 64, &mut b);
    let r = pb::SeriesRequest::decode(b.as_slice()).expect("skein decodes Thanos' bytes");
    assert_eq!((r.min_time, r.max_time), (10, 20));
    assert_eq!(r.aggregates, vec![1, 5]);
    assert!(r.skip_chunks);
    assert_eq!(r.without_replica_labels, vec!["replica"]);
    assert_eq!(r.limit, 100);
    assert_eq!(r.response_batch_size, 64);
    let h = r.query_hints.clone().expect("query hints");
    assert_eq!(h.step_millis, 15_000);
    assert_eq!(h.func.map(|f| f.name).as_deref(), Some("rate"));
    assert_eq!(h.range.map(|r| r.millis), Some(300_000));
    let domain = skein::store::SeriesRequest::try_from(r).expect("a valid request");
    assert_eq!(domain.without_replica_labels, vec!["replica"]);
    assert_eq!((domain.func.as_str(), domain.range_ms), ("rate", 300_000));

    let mut req = skein::store::SeriesRequest::new(1, 2, vec![]);
    req.skip_chunks = true;
    req.limit = 4;
    req.func = "rate".into();
    req.step_ms = 1;
    req.range_ms = 2;
    req.without_replica_labels = vec!["replica".into()];
    let out = pb::SeriesRequest::from(&req).encode_to_vec();
    check_against(
        t,
        &out,
        &[
            "min_time",
            "max_time",
            "skip_chunks",
            "query_hints",
            "without_replica_labels",
            "limit",
        ],
    );
}

fn series_bytes(name: &str, chunk_min: i64) -> Vec<u8> {
    // Series { labels = 1 { name = 1, value = 2 }, chunks = 2 AggrChunk
    // { min_time = 1, max_time = 2, raw = 3 Chunk { type = 1, data = 2 } } }
    let mut label = Vec::new();
    bytes_field(1, b"__name__", &mut label);
    bytes_field(2, name.as_bytes(), &mut label);
    let samples: Vec<skein::model::Sample> = (0..3)
        .map(|i| skein::model::Sample {
            t: chunk_min + i * 10,
            v: i as f64,
        })
        .collect();
    let data = skein::model::chunk::xor::encode_all(&samples).expect("encode");
    let mut raw = Vec::new();
    int_field(1, 0, &mut raw);
    bytes_field(2, &data, &mut raw);
    let mut aggr = Vec::new();
    int_field(1, chunk_min, &mut aggr);
    int_field(2, chunk_min + 20, &mut aggr);
    bytes_field(3, &raw, &mut aggr);
    let mut s = Vec::new();
    bytes_field(1, &label, &mut s);
    bytes_field(2, &aggr, &mut s);
    s
}

#[test]
fn series_responses_from_a_thanos_store() {
    let t = SERIES_RESPONSE;
    let mut one = Vec::new();
    bytes_field(number(t, "series"), &series_bytes("up", 0), &mut one);
    let r = pb::SeriesResponse::decode(one.as_slice()).expect("series frame");
    assert!(matches!(
        r.result,
        Some(pb::series_response::Result::Series(_))
    ));

    let mut warn = Vec::new();
    bytes_field(number(t, "warning"), b"store x is down", &mut warn);
    let r = pb::SeriesResponse::decode(warn.as_slice()).expect("warning frame");
    assert!(
        matches!(r.result, Some(pb::series_response::Result::Warning(ref w)) if w == "store x is down")
    );

    // A batch (SeriesBatch { series = 1 }), sent by Thanos stores when the
    // request asks for response_batch_size > 1.
    let mut batch = Vec::new();
    bytes_field(1, &series_bytes("a", 0), &mut batch);
    bytes_field(1, &series_bytes("b", 0), &mut batch);
    let mut frame = Vec::new();
    bytes_field(number(t, "batch"), &batch, &mut frame);
    let r = pb::SeriesResponse::decode(frame.as_slice()).expect("batch frame");
    match r.result {
        Some(pb::series_response::Result::Batch(b)) => assert_eq!(b.series.len(), 2),
        other => panic!("not a batch: {other:?}"),
    }

    let out = pb::SeriesResponse {
        result: Some(pb::series_response::Result::Warning("w".into())),
    }
    .encode_to_vec();
    check_against(t, &out, &["warning"]);
}

#[test]
fn label_responses_and_info_match_thanos() {
    let out = pb::LabelNamesResponse {
        names: vec!["a".into()],
        warnings: vec!["w".into()],
        hints: Some(Default::default()),
    }
    .encode_to_vec();
    check_against(LABELS_RESPONSE, &out, &["values", "warnings"]);

    let info = skein::store::StoreInfo {
        label_sets: vec![skein::model::Labels::from_pairs([("replica", "a")]).expect("labels")],
        min_time: 1,
        max_time: 2,
        peer_type: skein::store::PeerType::Store,
        store_group_id: "g".into(),
        component: "store".into(),
        supports_without_replica_labels: true,
    };
    let pbinfo = skein::proto::info_to_info_pb(&info);
    let out = pbinfo.encode_to_vec();
    check_against(
        INFO_RESPONSE,
        &out,
        &[
            "label_sets",
            "ComponentType",
            "store",
            "peer_type",
            "store_group_id",
        ],
    );
    let store = pbinfo.store.expect("store info").encode_to_vec();
    check_against(
        STORE_INFO,
        &store,
        &["min_time", "max_time", "supports_without_replica_labels"],
    );

    // An InfoResponse of a Thanos store gateway: no peer_type. It is a
    // SOURCE, whatever its component type.
    let mut ts = Vec::new();
    int_field(1, 100, &mut ts);
    int_field(2, 200, &mut ts);
    int_field(5, 1, &mut ts);
    let mut b = Vec::new();
    bytes_field(2, b"store", &mut b);
    bytes_field(3, &ts, &mut b);
    let r = pb::info::InfoResponse::decode(b.as_slice()).expect("info");
    let info = skein::proto::info_from_info_pb(r, "thanos-store:10901").expect("valid info");
    assert_eq!((info.min_time, info.max_time), (100, 200));
    assert!(info.supports_without_replica_labels);
    assert_eq!(info.peer_type, skein::store::PeerType::Source);
}

#[test]
fn metadata_messages_match_thanos() {
    // A Thanos querier's request: metric "up", no limit (-1), ABORT.
    let mut b = Vec::new();
    bytes_field(number(METADATA_REQUEST, "metric"), b"up", &mut b);
    int_field(number(METADATA_REQUEST, "limit"), -1, &mut b);
    int_field(
        number(METADATA_REQUEST, "partial_response_strategy"),
        1,
        &mut b,
    );
    let r = pb::MetricMetadataRequest::decode(b.as_slice()).expect("request");
    assert_eq!(
        (r.metric.as_str(), r.limit, r.partial_response_strategy),
        ("up", -1, 1)
    );

    // skein's answer, walked down to each Meta.
    let meta = pb::Meta {
        r#type: "counter".into(),
        help: "h".into(),
        unit: "seconds".into(),
    };
    let resp = pb::MetricMetadataResponse {
        result: Some(pb::metric_metadata_response::Result::Metadata(
            pb::MetricMetadata {
                metadata: [(
                    "up".to_string(),
                    pb::MetricMetadataEntry { metas: vec![meta] },
                )]
                .into_iter()
                .collect(),
            },
        )),
    }
    .encode_to_vec();
    check_against(METADATA_RESPONSE, &resp, &["metadata"]);
    let mm = &nested(&resp, 1)[0];
    check_against(METRIC_METADATA, mm, &["metadata"]);
    let entry = &nested(mm, 1)[0];
    check_against(MAP_ENTRY, entry, &["key", "value"]);
    let value = &nested(entry, 2)[0];
    check_against(METADATA_ENTRY, value, &["metas"]);
    check_against(META, &nested(value, 2)[0], &["type", "help", "unit"]);
    let warning = pb::MetricMetadataResponse {
        result: Some(pb::metric_metadata_response::Result::Warning("w".into())),
    }
    .encode_to_vec();
    check_against(METADATA_RESPONSE, &warning, &["warning"]);
}

#[test]
fn targets_messages_match_thanos() {
    let mut b = Vec::new();
    int_field(number(TARGETS_REQUEST, "state"), 2, &mut b); // DROPPED
    int_field(
        number(TARGETS_REQUEST, "partial_response_strategy"),
        1,
        &mut b,
    );
    let r = pb::TargetsRequest::decode(b.as_slice()).expect("request");
    assert_eq!((r.state, r.partial_response_strategy), (2, 1));

    let set = |n: &str, v: &str| {
        Some(pb::ZLabelSet {
            labels: vec![pb::Label {
                name: n.into(),
                value: v.into(),
            }],
        })
    };
    let resp = pb::TargetsResponse {
        result: Some(pb::targets_response::Result::Targets(pb::TargetDiscovery {
            active_targets: vec![pb::ActiveTarget {
                discovered_labels: set("__address__", "h:1"),
                labels: set("job", "x"),
                scrape_pool: "x".into(),
                scrape_url: "http://h:1/metrics".into(),
                global_url: "http://g:1/metrics".into(),
                last_error: "e".into(),
                last_scrape: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 2,
                }),
                last_scrape_duration: 0.5,
                health: pb::TargetHealth::Up as i32,
                scrape_interval: "1s".into(),
                scrape_timeout: "1s".into(),
            }],
            dropped_targets: vec![pb::DroppedTarget {
                discovered_labels: set("__address__", "h:2"),
            }],
        })),
    }
    .encode_to_vec();
    check_against(TARGETS_RESPONSE, &resp, &["targets"]);
    let d = &nested(&resp, 1)[0];
    check_against(TARGET_DISCOVERY, d, &["activeTargets", "droppedTargets"]);
    check_against(
        ACTIVE_TARGET,
        &nested(d, 1)[0],
        &[
            "discoveredLabels",
            "labels",
            "scrapePool",
            "scrapeUrl",
            "globalUrl",
            "lastError",
            "lastScrape",
            "lastScrapeDuration",
            "health",
        ],
    );
    check_against(DROPPED_TARGET, &nested(d, 2)[0], &["discoveredLabels"]);
    // Thanos' health values: DOWN 0, UP 1, UNKNOWN 2.
    assert_eq!(
        (
            pb::TargetHealth::Down as i32,
            pb::TargetHealth::Up as i32,
            pb::TargetHealth::Unknown as i32
        ),
        (0, 1, 2)
    );
}

#[test]
fn sidecars_and_queriers_offer_metadata_and_targets_in_info() {
    for (component, offers) in [("sidecar", true), ("query", true), ("store", false)] {
        let info = skein::store::StoreInfo {
            label_sets: vec![],
            min_time: 1,
            max_time: 2,
            peer_type: skein::store::PeerType::Source,
            store_group_id: String::new(),
            component: component.into(),
            supports_without_replica_labels: true,
        };
        let out = skein::proto::info_to_info_pb(&info).encode_to_vec();
        let must: &[&str] = if offers {
            &["metric_metadata", "targets", "rules", "exemplars"]
        } else {
            &[]
        };
        check_against(INFO_RESPONSE, &out, must);
        if !offers {
            let seen = fields(&out);
            assert!(
                !seen.iter().any(|(f, _)| [4, 5, 6, 7].contains(f)),
                "{component}: {seen:?}"
            );
        }
    }
}

#[test]
fn exemplars_messages_match_thanos() {
    // A Thanos querier's request, from the field table.
    let mut b = Vec::new();
    bytes_field(number(EXEMPLARS_REQUEST, "query"), b"rate(x[5m])", &mut b);
    int_field(number(EXEMPLARS_REQUEST, "start"), 1_000, &mut b);
    int_field(number(EXEMPLARS_REQUEST, "end"), 2_000, &mut b);
    int_field(
        number(EXEMPLARS_REQUEST, "partial_response_strategy"),
        1,
        &mut b,
    );
    let r = pb::ExemplarsRequest::decode(b.as_slice()).expect("request");
    assert_eq!(
        (
            r.query.as_str(),
            r.start,
            r.end,
            r.partial_response_strategy
        ),
        ("rate(x[5m])", 1_000, 2_000, 1)
    );

    let set = |n: &str, v: &str| {
        Some(pb::ZLabelSet {
            labels: vec![pb::Label {
                name: n.into(),
                value: v.into(),
            }],
        })
    };
    let resp = pb::ExemplarsResponse {
        result: Some(pb::exemplars_response::Result::Data(pb::ExemplarData {
            series_labels: set("__name__", "x"),
            exemplars: vec![pb::Exemplar {
                labels: set("trace_id", "t"),
                value: 0.5,
                ts: 1_234,
            }],
        })),
    }
    .encode_to_vec();
    check_against(EXEMPLARS_RESPONSE, &resp, &["data"]);
    let d = &nested(&resp, 1)[0];
    check_against(EXEMPLAR_DATA, d, &["seriesLabels", "exemplars"]);
    check_against(EXEMPLAR, &nested(d, 2)[0], &["labels", "value", "ts"]);
    let warning = pb::ExemplarsResponse {
        result: Some(pb::exemplars_response::Result::Warning("w".into())),
    }
    .encode_to_vec();
    check_against(EXEMPLARS_RESPONSE, &warning, &["warning"]);
}

#[test]
fn rules_messages_match_thanos() {
    // A Thanos querier asking for alerting rules, with filters skein's
    // sidecar ignores as Thanos' does.
    let mut b = Vec::new();
    int_field(number(RULES_REQUEST, "type"), 1, &mut b);
    int_field(
        number(RULES_REQUEST, "partial_response_strategy"),
        1,
        &mut b,
    );
    bytes_field(
        number(RULES_REQUEST, "matcher_string"),
        b"{job=\"x\"}",
        &mut b,
    );
    bytes_field(number(RULES_REQUEST, "file"), b"f.yml", &mut b);
    let r = pb::RulesRequest::decode(b.as_slice()).expect("request");
    assert_eq!((r.r#type, r.partial_response_strategy), (1, 1));
    assert_eq!((r.matcher_string.len(), r.file.len()), (1, 1));

    let set = |n: &str, v: &str| {
        Some(pb::ZLabelSet {
            labels: vec![pb::Label {
                name: n.into(),
                value: v.into(),
            }],
        })
    };
    let ts = Some(prost_types::Timestamp {
        seconds: 5,
        nanos: 1,
    });
    let alert = pb::Alert {
        state: pb::AlertState::Firing as i32,
        name: "A".into(),
        query: "up == 1".into(),
        duration_seconds: 60.0,
        labels: set("severity", "page"),
        annotations: set("summary", "s"),
        alerts: vec![pb::AlertInstance {
            labels: set("job", "x"),
            annotations: set("summary", "s"),
            state: pb::AlertState::Pending as i32,
            active_at: ts,
            value: "1e+00".into(),
            partial_response_strategy: 1,
        }],
        health: "ok".into(),
        last_error: "e".into(),
        evaluation_duration_seconds: 0.5,
        last_evaluation: ts,
        keep_firing_for_seconds: 30.0,
    };
    let recording = pb::RecordingRule {
        name: "r".into(),
        query: "sum(up)".into(),
        labels: set("a", "b"),
        health: "ok".into(),
        last_error: "e".into(),
        evaluation_duration_seconds: 0.5,
        last_evaluation: ts,
    };
    let resp = pb::RulesResponse {
        result: Some(pb::rules_response::Result::Group(pb::RuleGroup {
            name: "g".into(),
            file: "f.yml".into(),
            rules: vec![
                pb::Rule {
                    result: Some(pb::rule::Result::Alert(alert)),
                },
                pb::Rule {
                    result: Some(pb::rule::Result::Recording(recording)),
                },
            ],
            interval: 1.0,
            evaluation_duration_seconds: 0.5,
            last_evaluation: ts,
            partial_response_strategy: 1,
            limit: 3,
        })),
    }
    .encode_to_vec();
    check_against(RULES_RESPONSE, &resp, &["group"]);
    let g = &nested(&resp, 1)[0];
    check_against(
        RULE_GROUP,
        g,
        &[
            "name",
            "file",
            "rules",
            "interval",
            "evaluation_duration_seconds",
            "last_evaluation",
            "PartialResponseStrategy",
            "limit",
        ],
    );
    let rules = nested(g, 3);
    check_against(RULE, &rules[0], &["alert"]);
    check_against(RULE, &rules[1], &["recording"]);
    let alert = &nested(&rules[0], 2)[0];
    let every: Vec<&str> = ALERT.iter().map(|(n, _, _)| *n).collect();
    check_against(ALERT, alert, &every);
    let every: Vec<&str> = ALERT_INSTANCE.iter().map(|(n, _, _)| *n).collect();
    check_against(ALERT_INSTANCE, &nested(alert, 7)[0], &every);
    let every: Vec<&str> = RECORDING_RULE.iter().map(|(n, _, _)| *n).collect();
    check_against(RECORDING_RULE, &nested(&rules[1], 1)[0], &every);
    // Thanos' alert states: UNKNOWN 0, INACTIVE 1, PENDING 2, FIRING 3.
    assert_eq!(
        [
            pb::AlertState::Unknown as i32,
            pb::AlertState::Inactive as i32,
            pb::AlertState::Pending as i32,
            pb::AlertState::Firing as i32
        ],
        [0, 1, 2, 3]
    );
}
