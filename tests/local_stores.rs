//! Stores in the querier's own process, reached by direct calls instead of
//! loopback gRPC: a replica pair deduplicated as over the network, and a
//! querier stacked over another querier in the same process. No socket is
//! opened.

use std::sync::Arc;

#[path = "support/registry.rs"]
mod registry_support;

use actix::Actor;
use futures::StreamExt;

use skein::actors::registry::{LocalStore, SubscribeTopology};
use skein::actors::system::ActorSystem;
use skein::actors::{RegistryConfig, StoreRegistry};
use skein::model::{Labels, MatchOp, Matcher, Sample, Series};
use skein::query::merge::decode_series;
use skein::query::{Querier, QueryConfig};
use skein::store::{MemStore, PeerType, SeriesFrame, SeriesRequest, Store, StoreInfo};
use skein::synthetic::{generate, GeneratorConfig};

const END: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

fn replica(name: &str, gap: (i64, i64)) -> Arc<dyn Store> {
    let labels = Labels::from_pairs([("replica", name)]).unwrap();
    let mut series = generate(&GeneratorConfig {
        seed: 3,
        targets: 2,
        interval_ms: 15_000,
        start_ms: END - HOUR,
        end_ms: END,
        gaps: vec![gap],
        external_labels: labels.clone(),
    })
    .unwrap();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let info = StoreInfo {
        label_sets: vec![labels],
        min_time: END - HOUR,
        max_time: END,
        peer_type: PeerType::Source,
        store_group_id: String::new(),
        component: "sidecar".into(),
        supports_without_replica_labels: true,
    };
    Arc::new(MemStore::new(info, series).unwrap())
}

/// A querier over `stores`, once every one of them was checked healthy.
async fn querier(stores: Vec<LocalStore>) -> (Querier, ActorSystem) {
    let n = stores.len();
    let mut rc = RegistryConfig::for_test();
    rc.local = stores;
    let rt = tokio::runtime::Handle::current();
    let (system, registry) =
        ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
    registry_support::wait_healthy(&registry, n).await;
    let topology = registry.send(SubscribeTopology).await.unwrap();
    let cfg = QueryConfig {
        replica_labels: vec!["replica".into()],
        ..Default::default()
    };
    (Querier::new(topology, cfg), system)
}

async fn read(q: &Querier, dedup: bool) -> Vec<(Labels, Vec<Sample>)> {
    let req = SeriesRequest::new(
        END - 2 * HOUR,
        END,
        vec![Matcher::new(MatchOp::Regex, "job", ".+").unwrap()],
    );
    let opts = q.options(Some(dedup), None, Some(false));
    let mut s = q.series_with(req, opts).await.unwrap();
    let mut out = Vec::new();
    while let Some(f) = s.next().await {
        match f.unwrap() {
            SeriesFrame::Series(Series { labels, chunks }) => {
                let mut v = Vec::new();
                decode_series(&chunks, &mut v).unwrap();
                out.push((labels, v));
            }
            SeriesFrame::Warning(w) => panic!("warning: {w}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queriers_over_stores_in_their_own_process() {
    let local = |name: &str, store| LocalStore {
        name: name.into(),
        store,
    };
    let (q, _system) = querier(vec![
        local(
            "local:a",
            replica("a", (END - 40 * MINUTE, END - 30 * MINUTE)),
        ),
        local(
            "local:b",
            replica("b", (END - 20 * MINUTE, END - 10 * MINUTE)),
        ),
    ])
    .await;

    // Deduplicated: one gap-free series per label set, replica label gone.
    let got = read(&q, true).await;
    assert!(!got.is_empty());
    for (labels, samples) in &got {
        assert!(labels.get("replica").is_none(), "{labels}");
        assert!(
            samples.windows(2).all(|w| w[1].t - w[0].t <= 45_000),
            "{labels} has a gap"
        );
    }
    // Not deduplicated: both replicas, each with its gap.
    assert_eq!(read(&q, false).await.len(), 2 * got.len());

    // A querier whose only store is the first one, called directly: the
    // same answer, one hop further.
    let (stacked, _system2) = querier(vec![local("local:querier", Arc::new(q.clone()))]).await;
    let again = read(&stacked, true).await;
    assert_eq!(again.len(), got.len());
    assert!(again == got, "the stacked querier answers differently");
}
