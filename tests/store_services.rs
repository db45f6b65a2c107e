//! The services beside Series between two processes' worth of gRPC: a
//! client asks a peer for exemplars (the same holds for metadata, targets
//! and rules) only while the peer's Info has not said it does not offer
//! them, so a querier's fan-out costs gateways nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use skein::model::Labels;
use skein::store::{
    ClientConfig, LabelsRequest, LabelsResponse, PartialResponse, PeerType, RemoteStore,
    SeriesRequest, SeriesStream, Store, StoreError, StoreInfo,
};
use skein::storeapi::exemplars::{Exemplar, ExemplarSeries, ExemplarsRequest, ExemplarsResponse};

/// A store that counts the exemplar calls it gets and answers one
/// exemplar.
struct Counting {
    component: &'static str,
    calls: AtomicUsize,
}

#[async_trait]
impl Store for Counting {
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        Ok(StoreInfo {
            label_sets: vec![],
            min_time: 0,
            max_time: i64::MAX,
            peer_type: PeerType::Source,
            store_group_id: String::new(),
            component: self.component.into(),
            supports_without_replica_labels: true,
        })
    }

    async fn series(&self, _req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        Ok(Box::pin(futures::stream::empty()))
    }

    async fn label_names(&self, _req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        Ok(LabelsResponse::default())
    }

    async fn label_values(&self, _req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        Ok(LabelsResponse::default())
    }

    async fn exemplars(&self, _req: ExemplarsRequest) -> Result<ExemplarsResponse, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(ExemplarsResponse {
            series: vec![ExemplarSeries {
                series_labels: Labels::from_pairs([("__name__", "x")]).unwrap(),
                exemplars: vec![Exemplar {
                    labels: Labels::from_pairs([("trace_id", "t")]).unwrap(),
                    value: 1.5,
                    ts: 1_000,
                }],
            }],
            warnings: vec![],
        })
    }
}

async fn serve(component: &'static str) -> (Arc<Counting>, RemoteStore, CancellationToken) {
    let store = Arc::new(Counting {
        component,
        calls: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    tokio::spawn(skein::store::serve(listener, store.clone(), stop.clone()));
    let client = RemoteStore::connect_lazy(&addr, &ClientConfig::default()).unwrap();
    (store, client, stop)
}

fn request() -> ExemplarsRequest {
    ExemplarsRequest {
        query: "x".into(),
        start: 0,
        end: 2_000,
        partial_response: PartialResponse::Warn,
        hops: 0,
        deadline: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_asked_of_the_peers_that_offer_them() {
    // A sidecar offers exemplars: asked before and after its Info, and
    // its answer crosses the wire whole.
    let (store, client, stop) = serve("sidecar").await;
    let first = client.exemplars(request()).await.unwrap();
    assert_eq!(first.exemplar_count(), 1);
    assert_eq!(first.series[0].exemplars[0].value, 1.5);
    let info = client.info().await.unwrap();
    assert_eq!(info.component, "sidecar");
    client.exemplars(request()).await.unwrap();
    assert_eq!(store.calls.load(Ordering::SeqCst), 2);
    stop.cancel();

    // A gateway's Info offers none of them: before Info the call goes out
    // (and is served, since this store has exemplars); after it, the
    // client answers `Unsupported` itself.
    let (store, client, stop) = serve("store").await;
    client.exemplars(request()).await.unwrap();
    client.info().await.unwrap();
    let after = client.exemplars(request()).await;
    assert!(
        matches!(after, Err(StoreError::Unsupported(_))),
        "{after:?}"
    );
    assert_eq!(store.calls.load(Ordering::SeqCst), 1);
    stop.cancel();
}
