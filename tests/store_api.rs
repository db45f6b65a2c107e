//! The Store API over real gRPC: a synthetic store on a loopback port, asked
//! by the generated tonic client (as a Thanos component would ask) and by
//! skein's own remote client.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

use skein::model::{Labels, MatchOp, Matcher, Sample};
use skein::proto::thanos as pb;
use skein::proto::thanos::info::info_client::InfoClient;
use skein::proto::thanos::store_client::StoreClient;
use skein::store::{
    ClientConfig, LabelsRequest, PartialResponse, PeerType, RemoteStore, SeriesFrame,
    SeriesRequest, Store, StoreError,
};
use skein::synthetic::{self, GeneratorConfig, SyntheticConfig, SERIES_PER_TARGET};

const END: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn config() -> SyntheticConfig {
    SyntheticConfig {
        grpc_address: "127.0.0.1:0".into(),
        grpc_limits: Default::default(),
        security: Default::default(),
        http_address: "127.0.0.1:0".into(),
        cluster: None,
        peer_type: PeerType::Store,
        store_group_id: "bucket-1".into(),
        generator: GeneratorConfig {
            seed: 42,
            targets: 3,
            interval_ms: 15_000,
            start_ms: END - 2 * HOUR,
            end_ms: END,
            gaps: vec![(END - HOUR, END - HOUR + 300_000)],
            external_labels: Labels::from_pairs([("region", "eu"), ("replica", "a")]).unwrap(),
        },
        follow: false,
        series_delay_file: None,
    }
}

struct Running {
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(cfg: SyntheticConfig) -> Running {
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(synthetic::run(cfg, shutdown.clone(), move |b| {
        let _ = tx.send(b);
    }));
    let bound = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("store started in time")
        .expect("store bound its ports");
    Running {
        grpc: bound.grpc,
        http: bound.http,
        shutdown,
        task,
    }
}

fn expected() -> Vec<(Labels, Vec<Sample>)> {
    let mut all: Vec<_> = synthetic::generate(&config().generator)
        .unwrap()
        .into_iter()
        .map(|s| {
            let samples = synthetic::generator::samples(&s).unwrap();
            (s.labels, samples)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn same_samples(a: &[Sample], b: &[Sample]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.t == y.t && x.v.to_bits() == y.v.to_bits())
}

#[tokio::test]
async fn thanos_client_reads_everything_back() {
    let running = start(config()).await;
    let mut client = StoreClient::connect(format!("http://{}", running.grpc))
        .await
        .unwrap();

    let info = client.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.store_type, pb::StoreType::Store as i32);
    assert_eq!(info.peer_type, pb::PeerType::Store as i32);
    assert_eq!(info.store_group_id, "bucket-1");
    assert_eq!(info.label_sets.len(), 1);
    assert_eq!(info.label_sets[0].labels.len(), 2);
    // The last sample lies on the scrape grid, within one interval of END.
    assert!(info.min_time >= END - 2 * HOUR);
    assert!(info.max_time <= END && info.max_time > END - 15_000);

    let mut info_client = InfoClient::connect(format!("http://{}", running.grpc))
        .await
        .unwrap();
    let info2 = info_client
        .info(pb::info::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info2.component_type, "store");
    assert_eq!(info2.store.unwrap().max_time, info.max_time);

    let req = pb::SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Re as i32,
            name: "job".into(),
            value: ".+".into(),
        }],
        ..Default::default()
    };
    let mut stream = client.series(req).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(frame) = stream.next().await {
        match frame.unwrap().result.unwrap() {
            pb::series_response::Result::Series(s) => got.push(s),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    let want = expected();
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), 3 * SERIES_PER_TARGET);
    for (s, (labels, samples)) in got.iter().zip(&want) {
        // Labels arrive sorted, series arrive sorted.
        let names: Vec<_> = s.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let got_labels =
            Labels::from_pairs(s.labels.iter().map(|l| (l.name.clone(), l.value.clone()))).unwrap();
        assert_eq!(&got_labels, labels);
        let mut decoded = Vec::new();
        for c in &s.chunks {
            let raw = c.raw.as_ref().unwrap();
            assert_eq!(raw.r#type, pb::chunk::Encoding::Xor as i32);
            let part = skein::model::chunk::xor::decode_all(&raw.data).unwrap();
            assert_eq!(part.first().unwrap().t, c.min_time);
            assert_eq!(part.last().unwrap().t, c.max_time);
            decoded.extend(part);
        }
        assert!(same_samples(&decoded, samples), "samples of {labels}");
    }

    let names = client
        .label_names(pb::LabelNamesRequest {
            start: i64::MIN,
            end: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        names.names,
        ["__name__", "code", "instance", "job", "le", "region", "replica"]
    );
    let values = client
        .label_values(pb::LabelValuesRequest {
            label: "instance".into(),
            start: i64::MIN,
            end: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(values.values, ["target-0000", "target-0001", "target-0002"]);

    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn series_come_in_batches_when_the_caller_asks() {
    let running = start(config()).await;
    let client = StoreClient::connect(format!("http://{}", running.grpc))
        .await
        .unwrap();
    let req = |batch: i64| pb::SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Re as i32,
            name: "job".into(),
            value: ".+".into(),
        }],
        response_batch_size: batch,
        ..Default::default()
    };
    // (series per frame, in order) for a batch size.
    let frames_for = |batch: i64| {
        let mut client = client.clone();
        async move {
            let mut stream = client.series(req(batch)).await.unwrap().into_inner();
            let (mut sizes, mut names) = (Vec::new(), Vec::new());
            while let Some(frame) = stream.next().await {
                let series = match frame.unwrap().result.unwrap() {
                    pb::series_response::Result::Series(s) => vec![s],
                    pb::series_response::Result::Batch(b) => b.series,
                    other => panic!("unexpected frame {other:?}"),
                };
                sizes.push(series.len());
                names.extend(series.into_iter().map(|s| format!("{:?}", s.labels)));
            }
            (sizes, names)
        }
    };
    let total = 3 * SERIES_PER_TARGET;
    let (single, order) = frames_for(0).await;
    assert_eq!(single, vec![1; total]);
    let (batched, batched_order) = frames_for(10).await;
    assert_eq!(
        batched_order, order,
        "batching changed the series or their order"
    );
    assert_eq!(batched.iter().sum::<usize>(), total);
    assert!(batched.iter().all(|&n| n <= 10), "{batched:?}");
    assert!(
        batched.len() < total,
        "no frame carried several series: {batched:?}"
    );
}

#[tokio::test]
async fn remote_store_selects_by_matchers_and_time() {
    let running = start(config()).await;
    let remote =
        RemoteStore::connect_lazy(&running.grpc.to_string(), &ClientConfig::default()).unwrap();
    let info = remote.info().await.unwrap();
    assert_eq!(info.peer_type, PeerType::Store);
    assert_eq!(info.store_group_id, "bucket-1");

    let mint = END - 30 * 60_000;
    let req = SeriesRequest::new(
        mint,
        END,
        vec![
            Matcher::new(MatchOp::Equal, "__name__", "http_requests_total").unwrap(),
            Matcher::new(MatchOp::NotRegex, "instance", "target-000[12]").unwrap(),
        ],
    );
    let frames: Vec<_> = remote.series(req).await.unwrap().collect().await;
    let want: Vec<_> = expected()
        .into_iter()
        .filter(|(l, _)| {
            l.get("__name__") == Some("http_requests_total")
                && l.get("instance") == Some("target-0000")
        })
        .collect();
    assert_eq!(frames.len(), 2);
    for (frame, (labels, samples)) in frames.into_iter().zip(want) {
        let SeriesFrame::Series(s) = frame.unwrap() else {
            panic!("warning frame")
        };
        assert_eq!(s.labels, labels);
        // Whole chunks that overlap the range come back, nothing older.
        assert!(s.chunks.iter().all(|c| c.max_time >= mint));
        let decoded: Vec<Sample> = s.chunks.iter().flat_map(|c| c.samples().unwrap()).collect();
        let first = decoded[0].t;
        let tail: Vec<Sample> = samples.into_iter().filter(|x| x.t >= first).collect();
        assert!(same_samples(&decoded, &tail));
    }

    // skip_chunks gives labels only; limit caps the count.
    let mut req = SeriesRequest::new(i64::MIN, i64::MAX, vec![]);
    req.skip_chunks = true;
    req.limit = 5;
    let frames: Vec<_> = remote.series(req).await.unwrap().collect().await;
    assert_eq!(frames.len(), 5);
    for f in frames {
        let SeriesFrame::Series(s) = f.unwrap() else {
            panic!()
        };
        assert!(s.chunks.is_empty());
    }

    // Nothing outside the store's time range.
    let req = SeriesRequest::new(END + 1, END + HOUR, vec![]);
    assert_eq!(remote.series(req).await.unwrap().count().await, 0);

    let values = remote
        .label_values(LabelsRequest {
            name: "code".into(),
            start: i64::MIN,
            end: i64::MAX,
            matchers: vec![],
            partial_response: PartialResponse::Warn,
            limit: 0,
            hops: 0,
            deadline: None,
            without_replica_labels: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(values.values, ["200", "500"]);

    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_requests_get_invalid_argument() {
    let running = start(config()).await;
    let mut client = StoreClient::connect(format!("http://{}", running.grpc))
        .await
        .unwrap();
    let cases = [
        pb::SeriesRequest {
            max_time: 10,
            matchers: vec![pb::LabelMatcher {
                r#type: pb::label_matcher::Type::Re as i32,
                name: "job".into(),
                value: "(unclosed".into(),
            }],
            ..Default::default()
        },
        pb::SeriesRequest {
            max_time: 10,
            matchers: vec![pb::LabelMatcher {
                r#type: 17,
                name: "job".into(),
                value: "x".into(),
            }],
            ..Default::default()
        },
        pb::SeriesRequest {
            min_time: 10,
            max_time: 5,
            ..Default::default()
        },
        pb::SeriesRequest {
            max_time: 10,
            max_resolution_window: -1,
            ..Default::default()
        },
        pb::SeriesRequest {
            max_time: 10,
            aggregates: vec![9],
            ..Default::default()
        },
    ];
    for req in cases {
        let status = match client.series(req.clone()).await {
            Ok(mut s) => s.get_mut().next().await.unwrap().unwrap_err(),
            Err(s) => s,
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{req:?}: {status}");
    }
    let status = client
        .label_values(pb::LabelValuesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // The process is unharmed.
    let info = client.info(pb::InfoRequest {}).await.unwrap();
    assert_eq!(info.get_ref().store_group_id, "bucket-1");

    // Health, readiness and metrics over HTTP.
    let body = http_get(running.http, "/-/ready").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let body = http_get(running.http, "/metrics").await;
    assert!(
        body.contains("skein_store_grpc_requests_total{rpc=\"series\",code=\"bad_data\"}"),
        "{body}"
    );
    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    out
}

/// A peer that speaks the protocol but sends garbage inside it.
struct Garbage;

#[tonic::async_trait]
impl pb::store_server::Store for Garbage {
    async fn info(
        &self,
        _: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        Ok(Response::new(pb::InfoResponse {
            peer_type: 99,
            ..Default::default()
        }))
    }

    type SeriesStream = Pin<Box<dyn Stream<Item = Result<pb::SeriesResponse, Status>> + Send>>;

    async fn series(
        &self,
        _: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let bad_chunk = pb::Series {
            labels: vec![pb::Label {
                name: "a".into(),
                value: "1".into(),
            }],
            chunks: vec![pb::AggrChunk {
                min_time: 0,
                max_time: 10,
                raw: Some(pb::Chunk {
                    r#type: 7,
                    data: vec![1, 2, 3].into(),
                    hash: 0,
                }),
                ..Default::default()
            }],
        };
        let dup_labels = pb::Series {
            labels: vec![
                pb::Label {
                    name: "a".into(),
                    value: "1".into(),
                },
                pb::Label {
                    name: "a".into(),
                    value: "2".into(),
                },
            ],
            chunks: vec![],
        };
        let frames = vec![
            Ok(pb::SeriesResponse {
                result: Some(pb::series_response::Result::Series(bad_chunk)),
            }),
            Ok(pb::SeriesResponse {
                result: Some(pb::series_response::Result::Series(dup_labels)),
            }),
            Ok(pb::SeriesResponse { result: None }),
        ];
        Ok(Response::new(Box::pin(futures::stream::iter(frames))))
    }

    async fn label_names(
        &self,
        _: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        Err(Status::internal("boom"))
    }

    async fn label_values(
        &self,
        _: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        Err(Status::unavailable("down"))
    }
}

#[tokio::test]
async fn garbage_from_a_peer_is_an_error_not_a_panic() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::store_server::StoreServer::new(Garbage))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown.clone().cancelled_owned(),
            ),
    );
    let remote = RemoteStore::connect_lazy(&addr.to_string(), &ClientConfig::default()).unwrap();
    // No thanos.info service: falls back to Store/Info, whose peer type is bad.
    assert!(matches!(
        remote.info().await,
        Err(StoreError::Protocol { .. })
    ));
    let frames: Vec<_> = remote
        .series(SeriesRequest::new(0, 10, vec![]))
        .await
        .unwrap()
        .collect()
        .await;
    // The first bad frame ends the answer (errors end a stream).
    assert_eq!(frames.len(), 1);
    for f in frames {
        let err = f.unwrap_err();
        assert!(matches!(err, StoreError::Protocol { .. }), "{err}");
        assert!(
            err.to_string().contains(&addr.to_string()),
            "names the peer: {err}"
        );
    }
    let req = LabelsRequest {
        name: "a".into(),
        start: 0,
        end: 1,
        matchers: vec![],
        partial_response: PartialResponse::Warn,
        limit: 0,
        hops: 0,
        deadline: None,
        without_replica_labels: Vec::new(),
    };
    assert!(remote.label_names(req.clone()).await.is_err());
    let err = remote.label_values(req).await.unwrap_err();
    assert!(err.is_retryable());
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_port_that_is_not_grpc_is_unavailable() {
    // A plain TCP listener that answers every connection with junk.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn
                .write_all(b"HTTP/1.0 200 OK\r\n\r\nnot grpc at all")
                .await;
        }
    });
    let remote = RemoteStore::connect_lazy(&addr.to_string(), &ClientConfig::default()).unwrap();
    let err = remote.info().await.unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(remote
        .series(SeriesRequest::new(0, 1, vec![]))
        .await
        .is_err());
    // An address that cannot be parsed is refused up front.
    assert!(
        RemoteStore::connect_lazy("bad address with spaces", &ClientConfig::default()).is_err()
    );
}

/// The newest sample a store holds for `up`-like series: the largest chunk
/// max time over all series.
async fn newest_sample(remote: &RemoteStore) -> i64 {
    let req = SeriesRequest::new(0, i64::MAX, vec![]);
    let frames: Vec<_> = remote.series(req).await.unwrap().collect().await;
    frames
        .into_iter()
        .filter_map(|f| match f.unwrap() {
            SeriesFrame::Series(s) => s.chunks.iter().map(|c| c.max_time).max(),
            _ => None,
        })
        .max()
        .expect("some series")
}

#[tokio::test]
async fn a_following_store_keeps_its_window_ending_now() {
    let now = skein::model::time::now_ms();
    let mut cfg = config();
    cfg.follow = true;
    cfg.generator.interval_ms = 100;
    cfg.generator.start_ms = now - 60_000;
    cfg.generator.end_ms = now;
    cfg.generator.gaps.clear();
    let running = start(cfg).await;
    let remote =
        RemoteStore::connect_lazy(&running.grpc.to_string(), &ClientConfig::default()).unwrap();
    // A live source: no upper bound on its time range.
    assert_eq!(remote.info().await.unwrap().max_time, i64::MAX);
    let first = newest_sample(&remote).await;
    assert!(first <= now + 100, "{first} > {now}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let newest = newest_sample(&remote).await;
        if newest >= first + 500 {
            // The oldest samples slid out as new ones came in.
            let req = SeriesRequest::new(0, now - 59_000, vec![]);
            let old: Vec<_> = remote.series(req).await.unwrap().collect().await;
            let oldest = old
                .into_iter()
                .filter_map(|f| match f.unwrap() {
                    SeriesFrame::Series(s) => s.chunks.first().map(|c| c.min_time),
                    _ => None,
                })
                .min();
            assert!(oldest.is_none_or(|t| t > now - 60_000), "{oldest:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "newest sample stayed at {newest}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

/// A client that keeps an idle HTTP/2 connection open, never answering the
/// server's GOAWAY, cannot hold a stopping store: the drain is bounded.
#[tokio::test]
async fn an_idle_client_connection_does_not_hold_shutdown() {
    use tokio::io::AsyncWriteExt;
    let running = start(config()).await;
    let mut conn = tokio::net::TcpStream::connect(running.grpc).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.shutdown.cancel();
    let bound = skein::shutdown::DRAIN_TIMEOUT + Duration::from_secs(5);
    tokio::time::timeout(bound, running.task)
        .await
        .expect("the store stopped within the drain timeout")
        .unwrap()
        .unwrap();
    drop(conn);
}
