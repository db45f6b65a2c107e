//! The sidecar in front of a Prometheus that misbehaves: garbage from
//! remote read and HTTP errors become gRPC errors that name the cause; a
//! Prometheus without external labels is refused at start.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use skein::model::{MatchOp, Matcher};
use skein::sidecar::{self, SidecarConfig};
use skein::store::{ClientConfig, RemoteStore, SeriesRequest, Store};

/// A fake Prometheus: ready, with the given external labels, and a remote
/// read endpoint that answers `read`.
async fn fake_prometheus(
    external_labels: &'static str,
    read: (StatusCode, &'static str, &'static [u8]),
) -> SocketAddr {
    let yaml = format!("global:\n  scrape_interval: 15s\n{external_labels}");
    let config = serde_json::json!({"status": "success", "data": {"yaml": yaml}}).to_string();
    let app = Router::new()
        .route(
            "/-/ready",
            get(|| async { "Prometheus Server is Ready.\n" }),
        )
        .route(
            "/api/v1/status/config",
            get(move || {
                let c = config.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], c) }
            }),
        )
        .route(
            "/api/v1/status/flags",
            get(|| async {
                r#"{"status":"success","data":{"storage.tsdb.retention.time":"15d","storage.tsdb.min-block-duration":"2h","storage.tsdb.max-block-duration":"1d"}}"#
            }),
        )
        .route(
            "/api/v1/read",
            post(move || async move {
                (read.0, [(header::CONTENT_TYPE, read.1)], read.2).into_response()
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn config(prom: SocketAddr) -> SidecarConfig {
    SidecarConfig {
        prometheus: skein::sidecar::client::PromClientConfig::plain(&format!("http://{prom}"))
            .unwrap(),
        grpc_address: "127.0.0.1:0".into(),
        grpc_limits: Default::default(),
        security: Default::default(),
        http_address: "127.0.0.1:0".into(),
        cluster: None,
        refresh_interval: Duration::from_millis(200),
        prometheus_timeout: Duration::from_secs(2),
        shipper: None,
        store_group_id: String::new(),
        read_blocks: None,
        chunk_cache_bytes: 0,
    }
}

async fn series_error(read: (StatusCode, &'static str, &'static [u8])) -> String {
    let prom = fake_prometheus("  external_labels:\n    replica: a\n", read).await;
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(sidecar::run(config(prom), stop.clone(), move |b| {
        let _ = tx.send(b);
    }));
    let bound = rx.await.unwrap();
    let client =
        RemoteStore::connect_lazy(&bound.grpc.to_string(), &ClientConfig::default()).unwrap();
    // Wait until the sidecar has read Prometheus' state.
    let start = std::time::Instant::now();
    while client.info().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sidecar never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let req = SeriesRequest::new(
        0,
        1_000,
        vec![Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()],
    );
    let err = match client.series(req).await {
        Err(e) => e.to_string(),
        Ok(s) => s
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .find_map(|f| f.err())
            .map(|e| e.to_string())
            .unwrap_or_default(),
    };
    stop.cancel();
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_http_errors_become_errors_with_the_cause() {
    let streamed = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
    let err = series_error((StatusCode::OK, streamed, b"\x05\x00\x00\x00\x00hello")).await;
    assert!(err.contains("checksum"), "{err}");
    let err = series_error((
        StatusCode::OK,
        "application/x-protobuf",
        b"not snappy at all",
    ))
    .await;
    assert!(err.contains("snappy"), "{err}");
    let err = series_error((
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain",
        b"tsdb is on fire",
    ))
    .await;
    assert!(
        err.contains("tsdb is on fire") && err.contains("500"),
        "{err}"
    );
    let err = series_error((StatusCode::BAD_REQUEST, "text/plain", b"bad matchers")).await;
    assert!(err.contains("bad matchers"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_without_external_labels_is_refused() {
    let prom = fake_prometheus("", (StatusCode::OK, "text/plain", b"")).await;
    let stop = CancellationToken::new();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        sidecar::run(config(prom), stop, |_| {}),
    )
    .await
    .expect("the sidecar stops by itself");
    let err = result.expect_err("refused").to_string();
    assert!(err.contains("no external labels"), "{err}");
}

/// A server that does not stream answers with samples: they arrive as XOR
/// chunks all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_samples_answer_is_reencoded_into_chunks() {
    use prost::Message;
    use skein::proto::prometheus as prom;
    let resp = prom::ReadResponse {
        results: vec![prom::QueryResult {
            timeseries: vec![prom::TimeSeries {
                labels: vec![prom::Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: (0..300)
                    .map(|i| prom::Sample {
                        value: i as f64,
                        timestamp: i * 1_000,
                    })
                    .collect(),
            }],
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&resp.encode_to_vec())
        .unwrap();
    let body: &'static [u8] = Box::leak(body.into_boxed_slice());
    let prom = fake_prometheus(
        "  external_labels:\n    replica: a\n",
        (StatusCode::OK, "application/x-protobuf", body),
    )
    .await;
    let rr = skein::sidecar::remote_read::RemoteRead::new(
        &format!("http://{prom}"),
        Duration::from_secs(2),
    )
    .unwrap();
    let matchers = [Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()];
    let got: Vec<_> = rr
        .read(&matchers, 0, 300_000, None)
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(got.len(), 1);
    let s = got.into_iter().next().unwrap().unwrap();
    assert_eq!(s.chunks.len(), 3, "120-sample chunks");
    let mut v = Vec::new();
    skein::query::merge::decode_series(&s.chunks, &mut v).unwrap();
    assert_eq!(v.len(), 300);
    assert!(v
        .iter()
        .enumerate()
        .all(|(i, x)| x.t == i as i64 * 1_000 && x.v == i as f64));
}

/// Uploading from a Prometheus that compacts its own blocks could merge
/// blocks before they are shipped: the sidecar refuses with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipper_refuses_a_compacting_prometheus() {
    let prom = fake_prometheus(
        "  external_labels:\n    replica: a\n",
        (StatusCode::OK, "text/plain", b""),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(prom);
    cfg.shipper = Some(sidecar::ShipperConfig {
        bucket: skein::objstore::BucketConfig::parse(&format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            dir.path().join("bucket").display()
        ))
        .unwrap(),
        tsdb_path: dir.path().to_path_buf(),
        upload_compacted: false,
        interval: Duration::from_millis(100),
    });
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        sidecar::run(cfg.clone(), CancellationToken::new(), |_| {}),
    )
    .await
    .expect("the sidecar should stop");
    let e = format!("{:#}", r.unwrap_err());
    assert!(
        e.contains("compacts its blocks") && e.contains("--storage.tsdb.min-block-duration"),
        "{e}"
    );

    // A tsdb path that does not exist once Prometheus is ready is refused.
    cfg.shipper.as_mut().unwrap().tsdb_path = dir.path().join("missing");
    let e = format!(
        "{:#}",
        sidecar::run(cfg, CancellationToken::new(), |_| {})
            .await
            .unwrap_err()
    );
    assert!(e.contains("--tsdb.path"), "{e}");
}
