//! The Store API server's own protection, with the generated Thanos
//! client on the other end: a caller that stops reading loses its stream
//! and frees its slot, slots are bounded, and deadlines (the caller's
//! `grpc-timeout` and the server's own) end requests with
//! DEADLINE_EXCEEDED.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use skein::model::{Chunk, Labels, Sample, Series};
use skein::proto::thanos as pb;
use skein::proto::thanos::store_client::StoreClient;
use skein::store::{
    LabelsRequest, LabelsResponse, MemStore, PeerType, SeriesRequest, SeriesStream, ServeLimits,
    Store, StoreError, StoreInfo,
};

fn info() -> StoreInfo {
    StoreInfo {
        label_sets: vec![],
        min_time: 0,
        max_time: i64::MAX,
        peer_type: PeerType::Store,
        store_group_id: String::new(),
        component: "store".into(),
        supports_without_replica_labels: true,
    }
}

/// Enough series, with noisy values, that one answer is megabytes: more
/// than the transport buffers between a server and a caller who stopped
/// reading.
fn big_store() -> MemStore {
    let series = (0..3_000)
        .map(|i| {
            let samples: Vec<Sample> = (0..600)
                .map(|j| Sample {
                    t: j * 15_000,
                    v: ((i * 7919 + j * 104_729) % 1_000_003) as f64 / 7.0,
                })
                .collect();
            let name = format!("s{i:05}");
            Series {
                labels: Labels::from_pairs([("__name__", "x"), ("i", name.as_str())]).unwrap(),
                chunks: Chunk::encode_xor(&samples, 120).unwrap(),
            }
        })
        .collect();
    MemStore::new(info(), series).unwrap()
}

/// A store whose answers never come.
struct Stalled;

#[async_trait]
impl Store for Stalled {
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        Ok(info())
    }

    async fn series(&self, _req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        Ok(Box::pin(futures::stream::pending()))
    }

    async fn label_names(&self, _req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        futures::future::pending().await
    }

    async fn label_values(&self, _req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        futures::future::pending().await
    }
}

async fn start(store: Arc<dyn Store>, limits: ServeLimits) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(skein::store::serve_limited(
        listener,
        store,
        limits,
        stop.clone(),
    ));
    (addr, stop)
}

fn all_series() -> pb::SeriesRequest {
    pb::SeriesRequest {
        min_time: 0,
        max_time: i64::MAX,
        matchers: vec![pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Eq as i32,
            name: "__name__".into(),
            value: "x".into(),
        }],
        ..Default::default()
    }
}

async fn client(addr: &str) -> StoreClient<tonic::transport::Channel> {
    StoreClient::connect(addr.to_string())
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
}

/// Reads a whole Series answer; the number of series.
async fn count_series(addr: &str, timeout: Duration) -> Result<usize, tonic::Status> {
    let mut req = tonic::Request::new(all_series());
    req.set_timeout(timeout);
    let mut stream = client(addr).await.series(req).await?.into_inner();
    let mut n = 0;
    while let Some(frame) = stream.next().await {
        if let Some(pb::series_response::Result::Series(_)) = frame?.result {
            n += 1;
        }
    }
    Ok(n)
}

/// `n` callers that open a Series answer, read one frame and stop reading.
async fn idle_callers(addr: &str, n: usize) -> Vec<tonic::Streaming<pb::SeriesResponse>> {
    let mut idle = Vec::new();
    for _ in 0..n {
        let mut s = client(addr)
            .await
            .series(all_series())
            .await
            .unwrap()
            .into_inner();
        assert!(s.next().await.unwrap().is_ok());
        idle.push(s);
    }
    idle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_stop_reading_lose_their_slot() {
    let limits = ServeLimits {
        max_concurrent: 2,
        send_timeout: Duration::from_millis(300),
        request_timeout: Duration::ZERO,
    };
    let (addr, stop) = start(Arc::new(big_store()), limits).await;
    // Two callers take every slot, read one frame each, and stop.
    let idle = idle_callers(&addr, 2).await;
    // A third is answered in full once the idle ones are dropped by the
    // server, long before its own deadline.
    let started = Instant::now();
    let n = count_series(&addr, Duration::from_secs(20)).await.unwrap();
    assert_eq!(n, 3_000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The idle callers' streams were ended: reading on gets them at most
    // what was already in flight, then an end or an error, never all.
    for mut s in idle {
        let mut got = 1;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), s.next()).await {
            got += 1;
        }
        assert!(got < 3_000, "an abandoned stream was still served in full");
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_send_timeout_idle_callers_hold_their_slots() {
    // The control: the same layout with the timeout off leaves the third
    // caller waiting until the deadline (the server's, shorter than the
    // caller's), so the test above can fail.
    let limits = ServeLimits {
        max_concurrent: 2,
        send_timeout: Duration::ZERO,
        request_timeout: Duration::from_secs(1),
    };
    let (addr, stop) = start(Arc::new(big_store()), limits).await;
    let idle = idle_callers(&addr, 2).await;
    let err = count_series(&addr, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("--grpc.max-concurrent-requests"),
        "{err:?}"
    );
    drop(idle);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_end_stalled_requests() {
    let limits = ServeLimits {
        max_concurrent: 4,
        send_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_millis(800),
    };
    let (addr, stop) = start(Arc::new(Stalled), limits).await;
    // The caller's grpc-timeout, shorter than the server's bound.
    let started = Instant::now();
    let err = count_series(&addr, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // No grpc-timeout: the server's own bound ends it.
    let started = Instant::now();
    let mut stream = client(&addr)
        .await
        .series(all_series())
        .await
        .unwrap()
        .into_inner();
    let err = loop {
        match stream.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("a stalled answer ended without an error"),
        }
    };
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("--grpc.request-timeout"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Label requests too.
    let err = client(&addr)
        .await
        .label_names(pb::LabelNamesRequest {
            start: 0,
            end: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    // Four stalled requests never hold the server: every slot came back.
    for _ in 0..6 {
        let e = count_series(&addr, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
    }
    stop.cancel();
}
