//! Entry points for fuzzing: one per decoder of bytes that come from
//! outside a node (peers, buckets, disks, users). Each takes arbitrary bytes
//! and must end in a value or an error: a panic, an abort or a hang is a
//! bug. The mutation tests (tests/fuzz.rs) and the coverage-guided targets
//! under fuzz/ call the same functions, and [`seeds`] gives each a corpus
//! made by skein's own writers.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;

use crate::cluster::keys::{check_node_size, decode_label_sets, NodeAdvert};
use crate::model::chunk::aggr;
use crate::model::chunk::xor::{decode_all, decode_into, decode_pair_into, encode_all, XorIter};
use crate::model::{Chunk, Label, Labels, Sample, Series};
use crate::proto::{self, prometheus as prom, thanos as pb};
use crate::sidecar::remote_read::RemoteRead;
use crate::store::{LabelsRequest, MemStore, PeerType, SeriesRequest, StoreInfo};
use crate::tsdb::{Block, BlockMeta, BlockWriter, IndexHeader, MemBlockFiles};

/// A fuzz target: a name (also its corpus directory) and its entry point.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// Words mutations splice in: the target's syntax.
    pub dictionary: &'static [&'static str],
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "xor_chunk",
        run: xor_chunk,
        dictionary: &[],
    },
    Target {
        name: "aggr_chunk",
        run: aggr_chunk,
        dictionary: &[],
    },
    Target {
        name: "series_frame",
        run: series_frame,
        dictionary: &[],
    },
    Target {
        name: "store_request",
        run: store_request,
        dictionary: &[],
    },
    Target {
        name: "info_response",
        run: info_response,
        dictionary: &[],
    },
    Target {
        name: "gossip_advert",
        run: gossip_advert,
        dictionary: &[
            "skein.",
            "\t",
            "\n",
            "true",
            "false",
            "STORE",
            "SOURCE",
            "QUERY",
            "[{}]",
            "\"a\":\"b\"",
            "127.0.0.1:",
            "[::1]:",
            "-9223372036854775808",
            "9223372036854775807",
        ],
    },
    Target {
        name: "remote_read_stream",
        run: remote_read_stream,
        dictionary: &[],
    },
    Target {
        name: "remote_read_samples",
        run: remote_read_samples,
        dictionary: &[],
    },
    Target {
        name: "tsdb_index",
        run: tsdb_index,
        dictionary: &[],
    },
    Target {
        name: "tsdb_chunks",
        run: tsdb_chunks,
        dictionary: &[],
    },
    Target {
        name: "index_header",
        run: index_header,
        dictionary: &[],
    },
    Target {
        name: "block_meta",
        run: block_meta,
        dictionary: &[
            "\"ulid\"",
            "\"minTime\"",
            "\"maxTime\"",
            "\"stats\"",
            "\"compaction\"",
            "\"level\"",
            "\"sources\"",
            "\"thanos\"",
            "\"labels\"",
            "\"downsample\"",
            "\"resolution\"",
            "\"version\"",
            "null",
            "1e308",
            "-1",
            "{}",
            "[]",
        ],
    },
    Target {
        name: "bucket_config",
        run: bucket_config,
        dictionary: &[
            "type: ",
            "config:\n  ",
            "S3",
            "GCS",
            "AZURE",
            "FILESYSTEM",
            "bucket: ",
            "endpoint: ",
            "prefix: ",
            "http_config:\n    ",
            "idle_conn_timeout: ",
            "1y2w3d",
            "sse_config:\n    type: ",
            "directory: ",
            "&a ",
            "*a",
            "<<: ",
            "- ",
            "!!binary ",
        ],
    },
    Target {
        name: "http_params",
        run: http_params,
        dictionary: &[
            "&",
            "=",
            "%",
            "match[]=",
            "start=",
            "end=",
            "time=",
            "step=",
            "timeout=",
            "limit=",
            "{",
            "}",
            "=~",
            "!~",
            "\"",
            "1e9",
            "-9223372036854",
            "2023-01-01T00:00:00Z",
            "5m",
            "1y",
        ],
    },
    Target {
        name: "promql",
        run: promql,
        dictionary: &[
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ":",
            ",",
            "=",
            "=~",
            "!=",
            "!~",
            "+",
            "-",
            "*",
            "/",
            "%",
            "^",
            "==",
            ">",
            "<=",
            " and ",
            " or ",
            " unless ",
            " by (job)",
            " without (a)",
            " on(job)",
            " ignoring(a)",
            " group_left",
            " group_right",
            " bool",
            " offset ",
            " @ ",
            "start()",
            "end()",
            "5m",
            "1y",
            "1ms",
            "0",
            "-1",
            "1e308",
            "NaN",
            "Inf",
            "sum",
            "rate",
            "histogram_quantile",
            "label_replace",
            "count_values",
            "topk",
            "quantile_over_time",
            "absent",
            "vector",
            "time()",
            "scalar",
            "x",
            "y",
            "le",
        ],
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// An XOR chunk: what decodes re-encodes to a chunk with the same samples.
pub fn xor_chunk(data: &[u8]) {
    if let Ok(samples) = decode_all(data) {
        if let Ok(again) = encode_all(&samples) {
            let back = decode_all(&again).unwrap_or_default();
            assert_eq!(back.len(), samples.len(), "re-encoded chunk decodes short");
        }
    }
    if let Ok(mut it) = XorIter::new(data) {
        let _ = it.seek(i64::MIN / 2);
        while let Ok(Some(_)) = it.next_sample() {}
    }
    // The input split in two and decoded as a pair gives what two single
    // decodes give: the same samples and the same error.
    let (a, b) = data.split_at(data.len() / 2);
    let mut want = Vec::new();
    let w = decode_into(a, &mut want).and_then(|()| decode_into(b, &mut want));
    let mut got = Vec::new();
    let g = decode_pair_into(a, b, &mut got);
    assert_eq!(format!("{w:?}"), format!("{g:?}"), "pair decode result");
    assert_eq!(got.len(), want.len(), "pair decode length");
    assert!(
        got.iter()
            .zip(&want)
            .all(|(x, y)| x.t == y.t && x.v.to_bits() == y.v.to_bits()),
        "pair decode samples"
    );
}

/// A downsampled chunk (its aggregates), materialized every way.
pub fn aggr_chunk(data: &[u8]) {
    let _ = aggr::parts(data);
    let chunk = Chunk {
        min_time: 0,
        max_time: i64::MAX,
        encoding: crate::model::ChunkEncoding::Aggr,
        data: Bytes::copy_from_slice(data),
    };
    let mut out = Vec::new();
    for f in [
        "rate",
        "count_over_time",
        "max_over_time",
        "avg_over_time",
        "",
    ] {
        out.clear();
        let _ = aggr::materialize(
            std::slice::from_ref(&chunk),
            aggr::AggrChoice::for_func(f),
            &mut out,
        );
    }
}

/// A Series response frame from a peer, to domain types and samples.
pub fn series_frame(data: &[u8]) {
    let Ok(frame) = pb::SeriesResponse::decode(data) else {
        return;
    };
    if let Some(pb::series_response::Result::Series(s)) = frame.result {
        if let Ok(series) = proto::series_from_pb(s, "fuzz") {
            for c in &series.chunks {
                let _ = c.samples();
            }
        }
    }
}

/// A Series, label names or label values request from a caller.
pub fn store_request(data: &[u8]) {
    if let Ok(r) = pb::SeriesRequest::decode(data) {
        let _ = SeriesRequest::try_from(r);
    }
    if let Ok(r) = pb::LabelNamesRequest::decode(data) {
        let _ = LabelsRequest::try_from(r);
    }
    if let Ok(r) = pb::LabelValuesRequest::decode(data) {
        let _ = LabelsRequest::try_from(r);
    }
}

/// An Info answer, of both services.
pub fn info_response(data: &[u8]) {
    if let Ok(r) = pb::info::InfoResponse::decode(data) {
        let _ = proto::info_from_info_pb(r, "fuzz");
    }
    if let Ok(r) = pb::InfoResponse::decode(data) {
        let _ = proto::info_from_store_pb(r, "fuzz");
    }
}

/// A node's gossiped key-values, one `key\tvalue` a line.
pub fn gossip_advert(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    if check_node_size(pairs.iter().map(|(k, v)| (*k, *v))).is_ok() {
        let _ = NodeAdvert::from_lookup(|k| pairs.get(k).copied());
    }
    let _ = decode_label_sets(&text);
}

fn remote_read_client() -> &'static RemoteRead {
    static CLIENT: OnceLock<RemoteRead> = OnceLock::new();
    CLIENT.get_or_init(|| {
        RemoteRead::new("http://127.0.0.1:9", Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("a client that never connects: {e}"))
    })
}

/// A streamed remote-read answer from Prometheus.
pub fn remote_read_stream(data: &[u8]) {
    if let Ok(series) = remote_read_client().decode_streamed(Bytes::copy_from_slice(data)) {
        for s in &series {
            for c in &s.chunks {
                let _ = c.samples();
            }
        }
    }
}

/// A SAMPLES remote-read answer from Prometheus (snappy-compressed).
pub fn remote_read_samples(data: &[u8]) {
    let _ = remote_read_client().decode_samples(data);
}

/// A small block written by skein's own writer: its files in memory.
fn block_files() -> &'static (BlockMeta, MemBlockFiles) {
    static FILES: OnceLock<(BlockMeta, MemBlockFiles)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("skein-fuzz-block-{}", std::process::id()));
        let mut w = BlockWriter::new(&dir).unwrap_or_else(|e| panic!("block writer: {e}"));
        for (i, job) in ["api", "db", "web"].iter().enumerate() {
            for code in ["200", "500"] {
                let labels = [
                    Label {
                        name: "__name__".into(),
                        value: "http_requests_total".into(),
                    },
                    Label {
                        name: "code".into(),
                        value: code.into(),
                    },
                    Label {
                        name: "job".into(),
                        value: (*job).into(),
                    },
                ];
                let samples = (0..300).map(|j| Sample {
                    t: 1_700_000_000_000 + j * 15_000,
                    v: (j * (i as i64 + 1)) as f64,
                });
                w.add_series(&labels, samples)
                    .unwrap_or_else(|e| panic!("block writer: {e}"));
            }
        }
        let meta = w.finish().unwrap_or_else(|e| panic!("block writer: {e}"));
        let files = MemBlockFiles::load_dir(&dir.join(&meta.ulid))
            .unwrap_or_else(|e| panic!("reading the block back: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        (meta, files)
    })
}

/// The bytes of a file of the fuzzing block (`index`, `chunks/000001`).
pub fn block_file(name: &str) -> Bytes {
    block_files().1.get(name).cloned().unwrap_or_default()
}

/// Opens a block, checks its index and reads everything in it.
fn read_block(files: MemBlockFiles) {
    let meta = block_files().0.clone();
    let run = async move {
        let Ok(block) = Block::open(meta, Arc::new(files), None).await else {
            return;
        };
        let _ = block.index().verify().await;
        for name in block.label_names() {
            let _ = block.label_values(&name);
        }
        use futures::TryStreamExt;
        if let Ok(all) = block
            .series(&[], i64::MIN, i64::MAX, false)
            .try_collect::<Vec<_>>()
            .await
        {
            for s in all {
                for c in &s.chunks {
                    let _ = c.samples();
                }
            }
        }
    };
    runtime().block_on(run);
}

/// A block's index file.
pub fn tsdb_index(data: &[u8]) {
    read_block(block_files().1.clone().with_file("index", data.to_vec()));
}

/// A block's chunk segment.
pub fn tsdb_chunks(data: &[u8]) {
    read_block(
        block_files()
            .1
            .clone()
            .with_file("chunks/000001", data.to_vec()),
    );
}

/// An index header from the disk cache.
pub fn index_header(data: &[u8]) {
    if let Ok(h) = IndexHeader::decode("fuzz", data) {
        for name in h.label_names() {
            for value in h.label_values(&name) {
                let _ = h.postings_range(&name, &value);
            }
        }
    }
}

/// A block's meta.json.
pub fn block_meta(data: &[u8]) {
    let _ = BlockMeta::parse("meta.json", data);
}

/// A bucket configuration file.
pub fn bucket_config(data: &[u8]) {
    let _ = crate::objstore::BucketConfig::parse(&String::from_utf8_lossy(data));
}

/// HTTP API parameters: a query string, and the same as a form body, with
/// every parameter read the way the API reads it.
pub fn http_params(data: &[u8]) {
    use crate::api::prom::params::{
        parse_bool, parse_duration, parse_selector, parse_time, Params,
    };
    let text = String::from_utf8_lossy(data);
    for p in [
        Params::new(Some(&text), None),
        Params::new(None, Some(data)),
    ] {
        for name in ["start", "end", "time"] {
            let _ = parse_time(p.get(name));
        }
        for name in ["step", "timeout", "lookback_delta"] {
            let _ = parse_duration(p.get(name));
        }
        let _ = parse_bool(p.get("dedup"));
        for m in p.all("match[]") {
            let _ = parse_selector(m);
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime for fuzzing: {e}"))
    })
}

fn engine() -> &'static crate::promql::Engine {
    static ENGINE: OnceLock<crate::promql::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let info = StoreInfo {
            label_sets: vec![],
            min_time: i64::MIN,
            max_time: i64::MAX,
            peer_type: PeerType::Store,
            store_group_id: String::new(),
            component: "store".into(),
            supports_without_replica_labels: true,
        };
        let mut data = Vec::new();
        for (name, extra) in [
            ("x", "a"),
            ("x", "b"),
            ("y", "a"),
            ("h_bucket", "0.5"),
            ("h_bucket", "+Inf"),
        ] {
            let label = if name == "h_bucket" { "le" } else { "a" };
            let labels = Labels::from_pairs([("__name__", name), ("job", "j"), (label, extra)])
                .unwrap_or_else(|e| panic!("labels: {e}"));
            let samples: Vec<Sample> = (0..40)
                .map(|i| Sample {
                    t: i * 15_000,
                    v: (i * i) as f64,
                })
                .collect();
            let chunks = Chunk::encode_xor(&samples, 120).unwrap_or_else(|e| panic!("chunk: {e}"));
            data.push(Series { labels, chunks });
        }
        let store = MemStore::new(info, data).unwrap_or_else(|e| panic!("store: {e}"));
        let cfg = crate::promql::EngineConfig {
            timeout: Duration::from_secs(2),
            max_samples: 1_000_000,
            ..crate::promql::EngineConfig::default()
        };
        crate::promql::Engine::new(
            Arc::new(crate::promql::source::StoreSource(Arc::new(store))),
            cfg,
        )
    })
}

/// PromQL text: parsed, planned and evaluated, instant and range, over a
/// small fixed store.
pub fn promql(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    let opts = crate::series::SeriesOptions {
        dedup: false,
        replica_labels: vec![],
        partial_response: true,
        counter: false,
        max_resolution_ms: 0,
        weigh_counts: false,
        deadline: None,
        lookback_ms: None,
    };
    let e = engine();
    runtime().block_on(async {
        let _ = e.instant(&query, 300_000, opts.clone()).await;
        let _ = e.range(&query, 0, 600_000, 30_000, opts).await;
    });
}

/// Seed inputs for `target`, made by skein's own writers and encoders.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let samples: Vec<Sample> = (0..130)
        .map(|i| Sample {
            t: 1_700_000_000_000 + i * 15_000 + (i % 7),
            v: if i % 11 == 0 {
                f64::NAN
            } else {
                i as f64 * 1.5
            },
        })
        .collect();
    let chunks = Chunk::encode_xor(&samples, 120).unwrap_or_default();
    let labels = Labels::from_pairs([("__name__", "up"), ("job", "api")])
        .unwrap_or_else(|_| Labels::empty());
    match target {
        "xor_chunk" => chunks.iter().map(|c| c.data.to_vec()).collect(),
        "aggr_chunk" => {
            let parts: Vec<Vec<u8>> = chunks.iter().map(|c| c.data.to_vec()).collect();
            let p = |i: usize| parts.get(i).map(Vec::as_slice);
            vec![
                aggr::encode_parts(&[p(0), p(0), p(0), p(0), p(0)]),
                aggr::encode_parts(&[p(1), None, p(1), None, p(1)]),
            ]
        }
        "series_frame" => {
            let s = proto::series_to_pb(Series {
                labels: labels.clone(),
                chunks: chunks.clone(),
            });
            vec![
                pb::SeriesResponse {
                    result: Some(pb::series_response::Result::Series(s)),
                }
                .encode_to_vec(),
                pb::SeriesResponse {
                    result: Some(pb::series_response::Result::Warning("w".into())),
                }
                .encode_to_vec(),
            ]
        }
        "store_request" => {
            let mut req = SeriesRequest::new(0, 1_000, vec![]);
            req.matchers = crate::api::prom::params::parse_selector("{job=~\"a.*\",x!=\"y\"}")
                .unwrap_or_default();
            req.max_resolution_ms = 300_000;
            let lr = LabelsRequest {
                name: "job".into(),
                start: 0,
                end: 1_000,
                matchers: req.matchers.clone(),
                partial_response: crate::store::PartialResponse::Warn,
                limit: 10,
                without_replica_labels: vec!["replica".into()],
                hops: 0,
                deadline: None,
            };
            vec![
                pb::SeriesRequest::from(&req).encode_to_vec(),
                pb::LabelNamesRequest::from(&lr).encode_to_vec(),
                pb::LabelValuesRequest::from(&lr).encode_to_vec(),
            ]
        }
        "info_response" => {
            let info = StoreInfo {
                label_sets: vec![labels.clone()],
                min_time: 0,
                max_time: 1_000,
                peer_type: PeerType::Source,
                store_group_id: "g".into(),
                component: "sidecar".into(),
                supports_without_replica_labels: true,
            };
            vec![
                proto::info_to_info_pb(&info).encode_to_vec(),
                proto::info_to_store_pb(&info).encode_to_vec(),
            ]
        }
        "gossip_advert" => {
            let advert = NodeAdvert {
                version: "1".into(),
                peer_type: PeerType::Store,
                component: "store".into(),
                label_sets: vec![labels.clone()],
                store_group_id: "g".into(),
                grpc_address: ([127, 0, 0, 1], 10_901).into(),
                http_address: ([127, 0, 0, 1], 10_902).into(),
                min_time: 0,
                max_time: 1_000,
                ready: true,
                leaving: false,
                incomplete: false,
            };
            let text: String = advert
                .to_pairs()
                .into_iter()
                .map(|(k, v)| format!("{k}\t{v}\n"))
                .collect();
            vec![text.into_bytes()]
        }
        "remote_read_stream" => {
            let msg = prom::ChunkedReadResponse {
                chunked_series: vec![prom::ChunkedSeries {
                    labels: labels
                        .iter()
                        .map(|l| prom::Label {
                            name: l.name.clone(),
                            value: l.value.clone(),
                        })
                        .collect(),
                    chunks: chunks
                        .iter()
                        .map(|c| prom::Chunk {
                            min_time_ms: c.min_time,
                            max_time_ms: c.max_time,
                            r#type: prom::chunk::Encoding::Xor as i32,
                            data: c.data.clone(),
                        })
                        .collect(),
                }],
                query_index: 0,
            }
            .encode_to_vec();
            vec![crate::sidecar::remote_read::encode_frame(&msg)]
        }
        "remote_read_samples" => {
            let resp = prom::ReadResponse {
                results: vec![prom::QueryResult {
                    timeseries: vec![prom::TimeSeries {
                        labels: vec![prom::Label {
                            name: "__name__".into(),
                            value: "up".into(),
                        }],
                        samples: samples
                            .iter()
                            .take(20)
                            .map(|s| prom::Sample {
                                value: s.v,
                                timestamp: s.t,
                            })
                            .collect(),
                    }],
                }],
            };
            snap::raw::Encoder::new()
                .compress_vec(&resp.encode_to_vec())
                .into_iter()
                .collect()
        }
        "tsdb_index" => vec![block_file("index").to_vec()],
        "tsdb_chunks" => vec![block_file("chunks/000001").to_vec()],
        "index_header" => IndexHeader::from_bytes("index", &block_file("index"))
            .map(|h| vec![h.encode()])
            .unwrap_or_default(),
        "block_meta" => vec![block_file("meta.json").to_vec()],
        "bucket_config" => [
            "type: FILESYSTEM\nconfig:\n  directory: /tmp/bucket\n",
            "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  insecure: true\n  http_config:\n    idle_conn_timeout: 90s\n  sse_config:\n    type: SSE-S3\nprefix: p\n",
            "type: GCS\nconfig:\n  bucket: b\n  service_account: '{}'\n",
            "type: AZURE\nconfig:\n  storage_account: a\n  storage_account_key: a2V5\n  container: c\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "http_params" => [
            "query=up&time=1700000000&timeout=5s",
            "match[]=up{job%3D%22a%22}&match[]={__name__%3D~%22.%2B%22}&start=2023-11-14T22:13:20Z&end=1700000000.5&limit=10",
            "query=rate(x[5m])&start=1699990000&end=1700000000&step=15s&dedup=false",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "promql" => [
            "sum by (job) (rate(x[5m]))",
            "histogram_quantile(0.9, sum by (le) (rate(h_bucket[1m])))",
            "max_over_time((x - y offset 1m)[5m:30s]) > bool 2",
            "label_replace(x, \"b\", \"$1\", \"a\", \"(.*)\") or on(job) group_left vector(1)",
            "count_values(\"v\", x) / scalar(sum(y)) @ start()",
            "topk(2, -x) unless absent(nope)",
            "quantile_over_time(0.5, x[10m] offset -1m) ^ 2 % 3",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        _ => Vec::new(),
    }
}
