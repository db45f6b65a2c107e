//! Series latency through a querier when one member of a two-member group
//! is slow or stalled, per hedging mode, against "wait for all" (a querier
//! that does not know the members are interchangeable). Stores run over
//! real gRPC on loopback. Prints a table.
//!
//!     cargo bench --bench hedging
//!
//! SKEIN_BENCH_QUERIES (default 1000) and SKEIN_BENCH_CONCURRENCY (16).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use skein::actors::registry::{GetRegistry, SubscribeTopology};
use skein::actors::system::ActorSystem;
use skein::actors::{Health, RegistryConfig, StoreRegistry};
use skein::model::{Labels, MatchOp, Matcher};
use skein::query::{HedgeMode, Querier, QueryConfig, RouteConfig};
use skein::store::{Fault, FaultyStore, MemStore, PeerType, SeriesFrame, SeriesRequest, StoreInfo};
use skein::synthetic::{generate, GeneratorConfig};

const END: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

async fn store(
    peer_type: PeerType,
    fault: Fault,
    stop: &CancellationToken,
) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    let labels = Labels::from_pairs([("region", "eu")]).unwrap();
    let series = generate(&GeneratorConfig {
        seed: 5,
        targets: 5,
        interval_ms: 15_000,
        start_ms: END - HOUR,
        end_ms: END,
        gaps: vec![],
        external_labels: labels.clone(),
    })
    .expect("generate");
    let info = StoreInfo {
        label_sets: vec![labels],
        min_time: END - HOUR,
        max_time: END,
        peer_type,
        store_group_id: "bucket".into(),
        component: peer_type.component().into(),
        supports_without_replica_labels: true,
    };
    let store = FaultyStore::new(MemStore::new(info, series).expect("store"), fault);
    let calls = store.calls();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(skein::store::serve(listener, Arc::new(store), stop.clone()));
    (addr, calls)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

struct Row {
    scenario: &'static str,
    mode: &'static str,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    extra: f64,
    warnings: usize,
}

async fn run(
    scenario: &'static str,
    fault: Fault,
    mode: &'static str,
    queries: usize,
    concurrency: usize,
) -> Row {
    let stop = CancellationToken::new();
    // Wait-for-all: the same two stores, treated as replicas to ask both.
    let peer_type = if mode == "wait-for-all" {
        PeerType::Source
    } else {
        PeerType::Store
    };
    let (a, calls_a) = store(peer_type, Fault::None, &stop).await;
    let (b, calls_b) = store(peer_type, fault, &stop).await;
    let mut rc = RegistryConfig::for_test();
    rc.endpoints = vec![a, b];
    let rt = tokio::runtime::Handle::current();
    let (system, registry) =
        ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).expect("actors");
    loop {
        let r = registry.send(GetRegistry).await.expect("registry");
        if r.groups
            .iter()
            .flat_map(|g| &g.members)
            .filter(|m| m.health == Health::Healthy)
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hedge = match mode {
        "race" => HedgeMode::Race,
        "adaptive" => HedgeMode::Adaptive,
        _ => HedgeMode::Off,
    };
    let querier = Querier::new(
        registry.send(SubscribeTopology).await.unwrap(),
        QueryConfig {
            route: RouteConfig {
                hedge,
                response_timeout: RESPONSE_TIMEOUT,
                hedge_min_delay: Duration::from_millis(2),
                hedge_max_delay: Duration::from_millis(200),
                hedge_quantile: 0.9,
                // Hedging as such, without a budget (the cluster bench
                // `hedge_budget` measures the budget).
                budget: skein::query::budget::BudgetConfig {
                    ratio: None,
                    burst: 0,
                },
                ..RouteConfig::default()
            },
            ..Default::default()
        },
    );
    let req = SeriesRequest::new(
        END - HOUR,
        END,
        vec![Matcher::new(MatchOp::Regex, "job", ".+").expect("matcher")],
    );
    let started_calls = calls_a.load(Ordering::Relaxed) + calls_b.load(Ordering::Relaxed);
    let results: Vec<(Duration, usize)> = futures::stream::iter(0..queries)
        .map(|i| {
            let q = querier.clone();
            let req = req.clone();
            async move {
                let start = Instant::now();
                let opts = q.options(Some(false), None, Some(true));
                let mut s = q.series_with(req, opts).await.expect("series");
                let mut warnings = 0;
                while let Some(f) = s.next().await {
                    if let Ok(SeriesFrame::Warning(_)) = f {
                        warnings += 1;
                    }
                }
                let took = start.elapsed();
                if std::env::var_os("SKEIN_BENCH_TRACE").is_some()
                    && took > Duration::from_millis(50)
                {
                    eprintln!("slow query #{i}: {took:?}");
                }
                (took, warnings)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let calls = calls_a.load(Ordering::Relaxed) + calls_b.load(Ordering::Relaxed) - started_calls;
    stop.cancel();
    drop(querier);
    system.stop();
    let mut lat: Vec<Duration> = results.iter().map(|r| r.0).collect();
    lat.sort_unstable();
    Row {
        scenario,
        mode,
        p50: percentile(&lat, 0.5),
        p90: percentile(&lat, 0.9),
        p99: percentile(&lat, 0.99),
        extra: calls as f64 / queries as f64 - 1.0,
        warnings: results.iter().map(|r| r.1).sum(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let queries: usize = std::env::var("SKEIN_BENCH_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let concurrency: usize = std::env::var("SKEIN_BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    println!("{queries} Series requests per row, {concurrency} at a time; 55 series x 1 h each; response timeout {RESPONSE_TIMEOUT:?}\n");
    println!(
        "| member b | mode | p50 ms | p90 ms | p99 ms | extra store requests | partial answers |"
    );
    println!("|---|---|---|---|---|---|---|");
    let only = std::env::var("SKEIN_BENCH_ONLY").ok();
    for (scenario, fault) in [
        ("healthy", Fault::None),
        ("+500 ms", Fault::Delay(Duration::from_millis(500))),
        ("stalled", Fault::StallAfter(0)),
    ] {
        for mode in ["race", "adaptive", "off", "wait-for-all"] {
            if only
                .as_deref()
                .is_some_and(|o| o != format!("{scenario}/{mode}"))
            {
                continue;
            }
            let r = run(scenario, fault, mode, queries, concurrency).await;
            println!(
                "| {} | {} | {} | {} | {} | {:.0}% | {} |",
                r.scenario,
                r.mode,
                ms(r.p50),
                ms(r.p90),
                ms(r.p99),
                r.extra * 100.0,
                r.warnings
            );
        }
    }
}
