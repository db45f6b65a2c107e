//! Throughput of small instant queries: a querier over two store gateways
//! on the PromQL bench dataset (blocks written by promtool 2.42), next to
//! Prometheus 2.42 serving the same blocks. Each side gets the same steady
//! load from a fixed number of client threads, each sending one query after
//! another for a fixed time; the table shows queries per second, p50 and
//! p99, and the ratio to Prometheus. Small queries measure the fixed cost
//! of a query: planning, routing and the calls to stores, not evaluation.
//!
//! `cargo build --release && cargo bench -p skein-cluster-tests --bench
//! querier_throughput`. The skein binary is `SKEIN_BIN`, or the workspace's
//! release build. Knobs: `SKEIN_BENCH_SECONDS` (default 10 per side and
//! query), `SKEIN_BENCH_CONCURRENCY` (default 8), `SKEIN_BENCH_INSTANCES`
//! (default 20, 49 series each).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skein_cluster_tests::promql_data::{write_bench_dataset, BENCH_SPAN, T0};
use skein_cluster_tests::promql_setup::{instant, PromqlCluster, Target};
use skein_cluster_tests::{cpu_time, env_usize, require_binary, use_release_binary};

const H: i64 = 3_600_000;
const TIMEOUT: Duration = Duration::from_secs(30);

struct Load {
    queries: usize,
    failed: usize,
    qps: f64,
    p50: Duration,
    p99: Duration,
}

/// `threads` clients asking `query` at `at` one after another for `secs`.
fn load(addr: SocketAddr, query: &str, at: i64, threads: usize, secs: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            let query = query.to_string();
            std::thread::spawn(move || {
                let (mut times, mut failed) = (Vec::new(), 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match instant(addr, &query, at, TIMEOUT) {
                        Ok(a) if a.status == 200 => times.push(t.elapsed()),
                        _ => failed += 1,
                    }
                }
                (times, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs as u64));
    stop.store(true, Ordering::Relaxed);
    let (mut times, mut failed) = (Vec::new(), 0);
    for h in handles {
        let (t, f) = h.join().expect("load thread");
        times.extend(t);
        failed += f;
    }
    let elapsed = start.elapsed();
    times.sort();
    let pick = |p: f64| {
        times
            .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Load {
        queries: times.len(),
        failed,
        qps: times.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

fn main() -> anyhow::Result<()> {
    let (Some(prometheus), Some(promtool)) =
        (require_binary("prometheus"), require_binary("promtool"))
    else {
        return Ok(());
    };
    use_release_binary()?;
    let secs = env_usize("SKEIN_BENCH_SECONDS", 10).max(1);
    let threads = env_usize("SKEIN_BENCH_CONCURRENCY", 8).max(1);
    let instances = env_usize("SKEIN_BENCH_INSTANCES", 20).max(1);
    let cluster = PromqlCluster::start(
        &prometheus,
        &promtool,
        ("127.0.28", 0),
        Target::Store,
        |p| write_bench_dataset(p, instances),
    )?;
    let at = T0 + BENCH_SPAN - H;
    let queries = [
        (
            "one series",
            "bench_instance_info{instance=\"host-000:9100\"}",
        ),
        (
            "5 series",
            "bench_requests_total{job=\"api\",code=\"200\",method=\"GET\"}",
        ),
        ("no match", "bench_requests_total{job=\"nothing\"}"),
    ];
    // Warm-up: caches filled, connections open.
    for (_, q) in queries {
        load(cluster.prometheus, q, at, threads, 1);
        load(cluster.target, q, at, threads, 1);
    }
    println!(
        "\nSmall instant queries: {threads} clients, {secs} s per side and query; prometheus vs querier over 2 store gateways\n"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>10} {:>10}",
        "query",
        "prom q/s",
        "prom p50",
        "prom p99",
        "skein q/s",
        "skein p50",
        "skein p99",
        "ratio",
        "prom cpu",
        "skein cpu"
    );
    let (prom_pid, skein_pids) = cluster.pids();
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_time(*p)).sum::<Duration>();
    // CPU per answered query, all of the side's processes together.
    let per_query = |used: Duration, l: &Load| {
        format!(
            "{:.0}us",
            used.as_secs_f64() * 1e6 / l.queries.max(1) as f64
        )
    };
    for (name, q) in queries {
        let before = cpu(&[prom_pid]);
        let p = load(cluster.prometheus, q, at, threads, secs);
        let p_cpu = cpu(&[prom_pid]).saturating_sub(before);
        let before = cpu(&skein_pids);
        let s = load(cluster.target, q, at, threads, secs);
        let s_cpu = cpu(&skein_pids).saturating_sub(before);
        let ms = |d: Duration| format!("{:.2}ms", d.as_secs_f64() * 1000.0);
        println!(
            "{:<12} {:>10.0} {:>10} {:>10} {:>10.0} {:>10} {:>10} {:>7.2} {:>10} {:>10}",
            name,
            p.qps,
            ms(p.p50),
            ms(p.p99),
            s.qps,
            ms(s.p50),
            ms(s.p99),
            s.qps / p.qps.max(f64::MIN_POSITIVE),
            per_query(p_cpu, &p),
            per_query(s_cpu, &s)
        );
        if p.failed + s.failed > 0 {
            println!(
                "{:<12} failed: prometheus {}, skein {} (of {} and {})",
                "", p.failed, s.failed, p.queries, s.queries
            );
        }
    }
    println!(
        "\nratio: skein queries per second / Prometheus' (higher is better); cpu: CPU time per query of the side's processes (querier and gateways together)"
    );
    Ok(())
}
