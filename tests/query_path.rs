//! The query path against in-process stores served over real gRPC, which can
//! be made slow, stalled mid-stream or failing: hedging within STORE groups,
//! resuming broken answers, SOURCE fan-out, deduplication and partial
//! responses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use skein::actors::registry::GetRegistry;
use skein::actors::system::ActorSystem;
use skein::actors::{RegistryConfig, StoreRegistry};
use skein::model::{Labels, MatchOp, Matcher, Sample, Series};
use skein::query::merge::decode_series;
use skein::query::{HedgeMode, Querier, QueryConfig, RouteConfig, SeriesOptions};
use skein::store::{
    Fault, FaultyStore, MemStore, PeerType, SeriesFrame, SeriesRequest, SeriesStream, StoreError,
    StoreInfo,
};
use skein::synthetic::{generate, GeneratorConfig};

const END: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// Generated series, sorted as a store sends them.
fn data(seed: u64, labels: &[(&str, &str)], gaps: Vec<(i64, i64)>) -> Vec<Series> {
    let mut v = generate(&GeneratorConfig {
        seed,
        targets: 3,
        interval_ms: 15_000,
        start_ms: END - HOUR,
        end_ms: END,
        gaps,
        external_labels: Labels::from_pairs(labels.iter().copied()).unwrap(),
    })
    .unwrap();
    v.sort_by(|a, b| a.labels.cmp(&b.labels));
    v
}

/// Compares without printing megabytes of chunks on failure.
fn same(got: &[Series], want: &[Series]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(a, b)| a == b)
}

async fn serve(
    series: Vec<Series>,
    labels: &[(&str, &str)],
    peer_type: PeerType,
    group: &str,
    fault: Fault,
    stop: &CancellationToken,
) -> String {
    let info = StoreInfo {
        label_sets: vec![Labels::from_pairs(labels.iter().copied()).unwrap()],
        min_time: END - HOUR,
        max_time: END,
        peer_type,
        store_group_id: group.into(),
        component: peer_type.component().into(),
        supports_without_replica_labels: true,
    };
    let store = FaultyStore::new(MemStore::new(info, series).unwrap(), fault);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(skein::store::serve(listener, Arc::new(store), stop.clone()));
    addr
}

struct Setup {
    querier: Querier,
    registry: Addr<StoreRegistry>,
    _system: ActorSystem,
}

async fn querier(endpoints: Vec<String>, route: RouteConfig, replica_labels: &[&str]) -> Setup {
    let mut rc = RegistryConfig::for_test();
    let n = endpoints.len();
    rc.endpoints = endpoints;
    let rt = tokio::runtime::Handle::current();
    let (system, registry) =
        ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
    let querier = Querier::new(
        registry.clone(),
        system.arbiter(),
        QueryConfig {
            route,
            replica_labels: replica_labels.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    );
    let start = Instant::now();
    loop {
        let r = registry.send(GetRegistry).await.unwrap();
        let healthy = r
            .groups
            .iter()
            .flat_map(|g| &g.members)
            .filter(|m| m.health == skein::actors::Health::Healthy)
            .count();
        if r.first_round_done && healthy == n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "stores did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Setup {
        querier,
        registry,
        _system: system,
    }
}

fn route(hedge: HedgeMode, response_timeout: Duration) -> RouteConfig {
    RouteConfig {
        hedge,
        response_timeout,
        hedge_min_delay: Duration::from_millis(5),
        hedge_max_delay: Duration::from_millis(100),
        hedge_quantile: 0.9,
    }
}

fn all() -> SeriesRequest {
    SeriesRequest::new(
        END - 2 * HOUR,
        END,
        vec![Matcher::new(MatchOp::Regex, "job", ".+").unwrap()],
    )
}

async fn collect(s: SeriesStream) -> (Vec<Series>, Vec<String>, Option<StoreError>) {
    let mut series = Vec::new();
    let mut warnings = Vec::new();
    let mut s = s;
    while let Some(f) = s.next().await {
        match f {
            Ok(SeriesFrame::Series(x)) => series.push(x),
            Ok(SeriesFrame::Warning(w)) => warnings.push(w),
            Err(e) => return (series, warnings, Some(e)),
        }
    }
    (series, warnings, None)
}

fn opts(q: &Querier, dedup: bool, partial: bool) -> SeriesOptions {
    q.options(Some(dedup), None, Some(partial))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_member_does_not_stall_its_store_group() {
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let want = data(1, &labels, vec![]);
    let good = serve(
        want.clone(),
        &labels,
        PeerType::Store,
        "bucket",
        Fault::None,
        &stop,
    )
    .await;
    let stalled = serve(
        want.clone(),
        &labels,
        PeerType::Store,
        "bucket",
        Fault::StallAfter(0),
        &stop,
    )
    .await;
    for hedge in [HedgeMode::Adaptive, HedgeMode::Race, HedgeMode::Off] {
        let s = querier(
            vec![good.clone(), stalled.clone()],
            route(hedge, Duration::from_millis(500)),
            &[],
        )
        .await;
        for _ in 0..6 {
            let start = Instant::now();
            let (got, warnings, err) = collect(
                s.querier
                    .series_with(all(), opts(&s.querier, false, true))
                    .await
                    .unwrap(),
            )
            .await;
            let took = start.elapsed();
            assert!(
                err.is_none() && warnings.is_empty(),
                "{hedge:?}: {err:?} {warnings:?}"
            );
            assert!(
                same(&got, &want),
                "{hedge:?}: incomplete answer ({} of {} series)",
                got.len(),
                want.len()
            );
            // The per-frame timeout bounds even the mode without hedging.
            assert!(
                took < Duration::from_millis(1_500),
                "{hedge:?} took {took:?}"
            );
        }
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_breaks_off_resumes_on_another_member() {
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let want = data(2, &labels, vec![]);
    for fault in [Fault::StallAfter(5), Fault::FailAfter(7)] {
        let a = serve(want.clone(), &labels, PeerType::Store, "b", fault, &stop).await;
        let b = serve(
            want.clone(),
            &labels,
            PeerType::Store,
            "b",
            Fault::Delay(Duration::from_millis(30)),
            &stop,
        )
        .await;
        // Race would hide the fault; the mode without hedging must resume.
        let s = querier(
            vec![a, b],
            route(HedgeMode::Off, Duration::from_millis(300)),
            &[],
        )
        .await;
        for _ in 0..4 {
            let (got, warnings, err) = collect(
                s.querier
                    .series_with(all(), opts(&s.querier, false, true))
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                err.is_none() && warnings.is_empty(),
                "{fault:?}: {err:?} {warnings:?}"
            );
            assert_eq!(got.len(), want.len(), "{fault:?}: every series once");
            assert!(same(&got, &want), "{fault:?}: answer differs");
        }
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_no_answer_is_a_warning_or_an_error() {
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let d = data(3, &labels, vec![]);
    let a = serve(d.clone(), &labels, PeerType::Store, "b", Fault::Fail, &stop).await;
    let b = serve(
        d.clone(),
        &labels,
        PeerType::Store,
        "b",
        Fault::FailAfter(2),
        &stop,
    )
    .await;
    let other = [("region", "us")];
    let healthy = serve(
        data(4, &other, vec![]),
        &other,
        PeerType::Store,
        "c",
        Fault::None,
        &stop,
    )
    .await;
    let s = querier(
        vec![a.clone(), b.clone(), healthy],
        route(HedgeMode::Adaptive, Duration::from_millis(300)),
        &[],
    )
    .await;

    let (got, warnings, err) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, false, true))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&a) && warnings[0].contains(&b),
        "names both peers: {}",
        warnings[0]
    );
    // The healthy group's data, and what the broken group sent before it broke.
    assert!(got.iter().any(|x| x.labels.get("region") == Some("us")));

    let (_, _, err) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, false, false))
            .await
            .unwrap(),
    )
    .await;
    let err = err.expect("partial response off: an error");
    assert!(err.to_string().contains(&a), "{err}");
    stop.cancel();
}

fn replica_data(replica: &str, gaps: Vec<(i64, i64)>) -> Vec<Series> {
    data(9, &[("replica", replica)], gaps)
}

/// A SOURCE pair: replica "a" and replica "b" (with `b_fault`) served
/// over gRPC; their addresses.
async fn replica_pair(
    a: Vec<Series>,
    b: Vec<Series>,
    b_fault: Fault,
    stop: &CancellationToken,
) -> (String, String) {
    let a = serve(
        a,
        &[("replica", "a")],
        PeerType::Source,
        "",
        Fault::None,
        stop,
    )
    .await;
    let b = serve(b, &[("replica", "b")], PeerType::Source, "", b_fault, stop).await;
    (a, b)
}

fn samples(s: &Series) -> Vec<Sample> {
    let mut out = Vec::new();
    decode_series(&s.chunks, &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_deduplicated_into_gap_free_series() {
    let stop = CancellationToken::new();
    let (a, b) = replica_pair(
        replica_data("a", vec![(END - 40 * 60_000, END - 30 * 60_000)]),
        replica_data("b", vec![(END - 20 * 60_000, END - 10 * 60_000)]),
        Fault::None,
        &stop,
    )
    .await;
    let s = querier(
        vec![a, b],
        route(HedgeMode::Adaptive, Duration::from_secs(2)),
        &["replica"],
    )
    .await;

    let (got, warnings, err) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, true, true))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none() && warnings.is_empty(), "{err:?} {warnings:?}");
    let plain = data(9, &[], vec![]);
    assert_eq!(got.len(), plain.len(), "one series per label set");
    for (g, p) in got.iter().zip(&plain) {
        assert_eq!(g.labels, p.labels, "replica label removed");
        let v = samples(g);
        // Both replicas scrape on the same grid: a switch costs at most two
        // samples (the penalty window), the 10-minute gaps are gone.
        for w in v.windows(2) {
            assert!(
                w[1].t - w[0].t <= 45_000,
                "gap in {} at {}",
                g.labels,
                w[0].t
            );
        }
        let full = samples(p);
        assert!(
            v.len() + 4 >= full.len() && v.len() <= full.len(),
            "{}: {} of {}",
            g.labels,
            v.len(),
            full.len()
        );
    }

    // dedup=false: both replicas, with their replica labels.
    let (got, _, _) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, false, true))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.len(), 2 * plain.len());
    assert!(got.iter().all(|x| x.labels.get("replica").is_some()));
    let sorted = got.windows(2).all(|w| w[0].labels < w[1].labels);
    assert!(sorted);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_source_replica_gives_a_warning_and_the_other_replicas_data() {
    let stop = CancellationToken::new();
    let (a, b) = replica_pair(
        replica_data("a", vec![]),
        replica_data("b", vec![]),
        Fault::Fail,
        &stop,
    )
    .await;
    let s = querier(
        vec![a, b.clone()],
        route(HedgeMode::Adaptive, Duration::from_secs(2)),
        &["replica"],
    )
    .await;
    let (got, warnings, err) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, true, true))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains(&b), "{}", warnings[0]);
    assert_eq!(got.len(), data(9, &[], vec![]).len());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_show_no_false_reset_across_a_replica_switch() {
    let stop = CancellationToken::new();
    // Replica b runs 2 behind replica a; a has a gap, so the output switches.
    let mk = |replica: &str, lag: f64, gap: Option<(i64, i64)>| -> Vec<Series> {
        let labels =
            Labels::from_pairs([("__name__", "c_total"), ("job", "j"), ("replica", replica)])
                .unwrap();
        let samples: Vec<Sample> = (0..240)
            .map(|i| {
                (
                    END - HOUR + i * 15_000 + if lag > 0.0 { 3_000 } else { 0 },
                    i as f64 * 10.0 - lag,
                )
            })
            .filter(|(t, _)| !gap.is_some_and(|(a, b)| *t >= a && *t < b))
            .map(|(t, v)| Sample { t, v })
            .collect();
        vec![Series {
            labels,
            chunks: skein::model::Chunk::encode_xor(&samples, 120).unwrap(),
        }]
    };
    let (a, b) = replica_pair(
        mk("a", 0.0, Some((END - 30 * 60_000, END - 20 * 60_000))),
        mk("b", 2.0, None),
        Fault::None,
        &stop,
    )
    .await;
    let s = querier(
        vec![a, b],
        route(HedgeMode::Adaptive, Duration::from_secs(2)),
        &["replica"],
    )
    .await;
    let mut o = opts(&s.querier, true, true);
    o.counter = true;
    let (got, _, _) = collect(s.querier.series_with(all(), o).await.unwrap()).await;
    assert_eq!(got.len(), 1);
    let v = samples(&got[0]);
    for w in v.windows(2) {
        assert!(
            w[1].v >= w[0].v,
            "false reset {} -> {} at {}",
            w[0].v,
            w[1].v,
            w[1].t
        );
    }
    stop.cancel();
    let _ = &s.registry;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_endpoint_that_is_down_counts_as_failed() {
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let up = serve(
        data(6, &labels, vec![]),
        &labels,
        PeerType::Store,
        "a",
        Fault::None,
        &stop,
    )
    .await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut rc = RegistryConfig::for_test();
    rc.endpoints = vec![up];
    rc.strict_endpoints = vec![down.clone()];
    let rt = tokio::runtime::Handle::current();
    let (system, registry) =
        ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
    let q = Querier::new(
        registry.clone(),
        system.arbiter(),
        QueryConfig {
            route: route(HedgeMode::Adaptive, Duration::from_secs(1)),
            ..Default::default()
        },
    );
    let start = Instant::now();
    while !registry.send(GetRegistry).await.unwrap().first_round_done {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (got, warnings, err) = collect(
        q.series_with(all(), q.options(Some(false), None, Some(true)))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert!(!got.is_empty(), "the healthy store's data");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&down),
        "names the strict endpoint: {}",
        warnings[0]
    );
    let (_, _, err) = collect(
        q.series_with(all(), q.options(Some(false), None, Some(false)))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_some_and(|e| e.to_string().contains(&down)));
    stop.cancel();
    drop(system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queriers_that_ask_each_other_stop_at_the_hop_limit() {
    // Two queriers, each configured with the other as an --endpoint; the
    // first also has a real store, so both have data to ask each other for.
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let aa = la.local_addr().unwrap().to_string();
    let ab = lb.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let real = serve(
        data(8, &labels, vec![]),
        &labels,
        PeerType::Store,
        "s",
        Fault::None,
        &stop,
    )
    .await;
    let mut systems = Vec::new();
    let mut queriers = Vec::new();
    for (listener, others) in [(la, vec![ab.clone(), real]), (lb, vec![aa.clone()])] {
        let mut rc = RegistryConfig::for_test();
        rc.endpoints = others;
        let rt = tokio::runtime::Handle::current();
        let (system, registry) =
            ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
        let cfg = QueryConfig {
            route: route(HedgeMode::Off, Duration::from_secs(5)),
            ..Default::default()
        };
        let q = Querier::new(registry, system.arbiter(), cfg);
        tokio::spawn(skein::store::serve(
            listener,
            Arc::new(q.clone()),
            stop.clone(),
        ));
        systems.push(system);
        queriers.push(q);
    }
    // Info answers travel around the loop within a few health checks.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let start = Instant::now();
    let opts = queriers[0].options(Some(false), None, Some(false));
    let (_, _, err) = collect(queriers[0].series_with(all(), opts).await.unwrap()).await;
    let err = err.expect("a loop is an error");
    assert!(err.to_string().contains("loop"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    stop.cancel();
}
