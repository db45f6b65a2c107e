//! The rules for extra requests to a STORE group, against in-process
//! stores over real gRPC that can be slowed or made to fail: the hedge
//! budget holds hedges to its share, never a fallback that saves data, and
//! no hedge is sent when the query's deadline leaves the group no time to
//! answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/registry.rs"]
mod registry_support;

use actix::Actor;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use skein::actors::registry::SubscribeTopology;
use skein::actors::system::ActorSystem;
use skein::actors::{RegistryConfig, StoreRegistry};
use skein::model::{Labels, MatchOp, Matcher};
use skein::query::budget::BudgetConfig;
use skein::query::{HedgeMode, Querier, QueryConfig, RouteConfig};
use skein::store::{Fault, FaultyStore, MemStore, PeerType, SeriesFrame, SeriesRequest, StoreInfo};
use skein::synthetic::{generate, GeneratorConfig};

const END: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// A member of one STORE group, served with `fault`; its address and its
/// Series call count.
async fn member(fault: Fault, stop: &CancellationToken) -> (String, Arc<AtomicU64>) {
    let labels = Labels::from_pairs([("region", "eu")]).unwrap();
    let series = generate(&GeneratorConfig {
        seed: 1,
        targets: 2,
        interval_ms: 15_000,
        start_ms: END - HOUR,
        end_ms: END,
        gaps: vec![],
        external_labels: labels.clone(),
    })
    .unwrap();
    let info = StoreInfo {
        label_sets: vec![labels],
        min_time: END - HOUR,
        max_time: END,
        peer_type: PeerType::Store,
        store_group_id: "bucket".into(),
        component: "store".into(),
        supports_without_replica_labels: true,
    };
    let store = FaultyStore::new(MemStore::new(info, series).unwrap(), fault);
    let calls = store.calls();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(skein::store::serve(listener, Arc::new(store), stop.clone()));
    (addr, calls)
}

async fn querier(endpoints: Vec<String>, route: RouteConfig) -> (Querier, ActorSystem) {
    let mut rc = RegistryConfig::for_test();
    let n = endpoints.len();
    rc.endpoints = endpoints;
    let rt = tokio::runtime::Handle::current();
    let (system, registry) =
        ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
    let querier = Querier::new(
        registry.send(SubscribeTopology).await.unwrap(),
        QueryConfig {
            route,
            ..Default::default()
        },
    );
    registry_support::wait_healthy(&registry, n).await;
    (querier, system)
}

/// Asks for every series; (series, warnings, error).
async fn ask(q: &Querier, deadline: Option<Instant>) -> (usize, Vec<String>, Option<String>) {
    let mut req = SeriesRequest::new(
        END - HOUR,
        END,
        vec![Matcher::new(MatchOp::Regex, "job", ".+").unwrap()],
    );
    req.deadline = deadline;
    let opts = q.options(Some(false), None, Some(true));
    let mut s = q.series_with(req, opts).await.unwrap();
    let (mut n, mut warnings) = (0, Vec::new());
    while let Some(f) = s.next().await {
        match f {
            Ok(SeriesFrame::Series(_)) => n += 1,
            Ok(SeriesFrame::Warning(w)) => warnings.push(w),
            Err(e) => return (n, warnings, Some(e.to_string())),
        }
    }
    (n, warnings, None)
}

fn route(hedge: HedgeMode, budget: BudgetConfig) -> RouteConfig {
    RouteConfig {
        hedge,
        response_timeout: Duration::from_secs(5),
        hedge_min_delay: Duration::from_millis(5),
        hedge_max_delay: Duration::from_millis(50),
        budget,
        ..RouteConfig::default()
    }
}

fn calls(c: &[Arc<AtomicU64>]) -> u64 {
    c.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_holds_hedges_but_never_a_fallback() {
    let stop = CancellationToken::new();
    let (a, ca) = member(Fault::Delay(Duration::from_millis(20)), &stop).await;
    let (b, cb) = member(Fault::Delay(Duration::from_millis(20)), &stop).await;
    let counters = [ca, cb];
    // Racing asks two members every time: without a budget, 2 calls a
    // request; with 0% and a burst of 3, three hedges in all.
    let unlimited = BudgetConfig {
        ratio: None,
        burst: 0,
    };
    let (q, _sys) = querier(
        vec![a.clone(), b.clone()],
        route(HedgeMode::Race, unlimited),
    )
    .await;
    let before = calls(&counters);
    for _ in 0..10 {
        let (n, w, e) = ask(&q, None).await;
        assert!(n > 0 && w.is_empty() && e.is_none(), "{w:?} {e:?}");
    }
    assert_eq!(calls(&counters) - before, 20);
    let tight = BudgetConfig {
        ratio: Some(0.0),
        burst: 3,
    };
    let (q, _sys2) = querier(vec![a, b], route(HedgeMode::Race, tight)).await;
    let before = calls(&counters);
    for _ in 0..10 {
        let (n, w, e) = ask(&q, None).await;
        assert!(n > 0 && w.is_empty() && e.is_none(), "{w:?} {e:?}");
    }
    assert_eq!(calls(&counters) - before, 13);

    // A member that fails: its group's answer moves to the other member
    // every time, however empty the budget.
    let (bad, _) = member(Fault::Fail, &stop).await;
    let (good, _) = member(Fault::None, &stop).await;
    let none = BudgetConfig {
        ratio: Some(0.0),
        burst: 0,
    };
    let (q, _sys3) = querier(vec![bad, good], route(HedgeMode::Off, none)).await;
    for _ in 0..10 {
        let (n, w, e) = ask(&q, None).await;
        assert!(n > 0 && w.is_empty() && e.is_none(), "{w:?} {e:?}");
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hedge_when_the_deadline_leaves_no_time() {
    let stop = CancellationToken::new();
    let (a, ca) = member(Fault::Delay(Duration::from_millis(300)), &stop).await;
    let (b, cb) = member(Fault::Delay(Duration::from_millis(300)), &stop).await;
    let counters = [ca, cb];
    let unlimited = BudgetConfig {
        ratio: None,
        burst: 0,
    };
    let (q, _sys) = querier(vec![a, b], route(HedgeMode::Adaptive, unlimited)).await;
    // Without a deadline the group learns it answers in 300 ms (hedging
    // after 50 ms every time).
    let before = calls(&counters);
    for _ in 0..4 {
        let (n, _, e) = ask(&q, None).await;
        assert!(n > 0 && e.is_none(), "{e:?}");
    }
    assert_eq!(calls(&counters) - before, 8);
    // With 400 ms to go, the hedge at 50 ms would have 350 ms: sent. With
    // 320 ms, it would have 270 ms, less than the group needs: not sent,
    // and the primary still answers in time.
    let before = calls(&counters);
    let (n, _, e) = ask(&q, Some(Instant::now() + Duration::from_millis(400))).await;
    assert!(n > 0 && e.is_none(), "{e:?}");
    assert_eq!(calls(&counters) - before, 2);
    let before = calls(&counters);
    let (n, w, e) = ask(&q, Some(Instant::now() + Duration::from_millis(320))).await;
    assert!(n > 0 && w.is_empty() && e.is_none(), "{w:?} {e:?}");
    assert_eq!(calls(&counters) - before, 1);
    // A deadline shorter than any answer: the query's timeout, not a
    // partial answer.
    let (_, w, e) = ask(&q, Some(Instant::now() + Duration::from_millis(100))).await;
    assert!(w.is_empty(), "{w:?}");
    assert!(
        e.as_deref().is_some_and(|e| e.contains("deadline")),
        "{e:?}"
    );
    stop.cancel();
}
