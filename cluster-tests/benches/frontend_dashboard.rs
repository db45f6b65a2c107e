//! A dashboard through `skein frontend`: ten range queries over a 5 h
//! window refreshed every 30 s (the window slides 30 s at each refresh;
//! refreshes run back to back), against Prometheus 2.42 answering the same
//! queries on the same blocks. The frontend sits in front of a querier
//! over two store gateways. Prints the median latency of each side before
//! and after the cache is warm, and checks every answer against
//! Prometheus'.
//!
//! `cargo build --release && cargo bench -p skein-cluster-tests --bench
//! frontend_dashboard`. Knobs: `SKEIN_BENCH_REFRESHES` (default 20),
//! `SKEIN_BENCH_INSTANCES` (default 100, 49 series each).

use std::time::{Duration, Instant};

use skein_cluster_tests::promql_data::{write_bench_dataset, T0};
use skein_cluster_tests::promql_diff::{compare, parse_answer};
use skein_cluster_tests::promql_setup::{bench_setup, range, PromqlCluster, Target};
use skein_cluster_tests::{env_usize, http_get, wait_for, Process};

const M: i64 = 60_000;
const H: i64 = 60 * M;
const TIMEOUT: Duration = Duration::from_secs(120);

const PANELS: [&str; 10] = [
    "sum by (job) (rate(bench_requests_total[5m]))",
    "sum by (code) (rate(bench_requests_total{job=\"api\"}[5m]))",
    "histogram_quantile(0.99, sum by (le, job) (rate(bench_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, sum by (le) (rate(bench_latency_seconds_bucket[5m])))",
    "topk(5, sum by (instance) (rate(bench_cpu_seconds_total{mode!=\"idle\"}[5m])))",
    "avg by (mode) (rate(bench_cpu_seconds_total[5m]))",
    "sum by (zone) (rate(bench_cpu_seconds_total{mode=\"user\"}[5m]) * on(instance) group_left(zone) bench_instance_info)",
    "max_over_time(sum by (job) (rate(bench_requests_total[5m]))[30m:1m])",
    "count by (team) (bench_instance_info)",
    "sum(rate(bench_requests_total{code=~\"5..\"}[5m])) / sum(rate(bench_requests_total[5m]))",
];

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let Some((prometheus, promtool, _)) = bench_setup()? else {
        return Ok(());
    };
    skein_cluster_tests::use_release_binary()?;
    let refreshes = env_usize("SKEIN_BENCH_REFRESHES", 20).max(3);
    let instances = env_usize("SKEIN_BENCH_INSTANCES", 100).max(1);
    let cluster = PromqlCluster::start(
        &prometheus,
        &promtool,
        ("127.0.41", 0),
        Target::Store,
        |p| write_bench_dataset(p, instances),
    )?;
    let downstream = format!("http://{}", cluster.target);
    let fe = Process::start(
        "frontend",
        &[
            "frontend",
            "--http-address",
            "127.0.41.9:0",
            "--cluster.disable",
            "--query-frontend.downstream-url",
            &downstream,
            "--query-range.split-interval",
            "1h",
        ],
    )?;
    wait_for("the frontend", Duration::from_secs(30), || {
        http_get(fe.http, "/-/ready").is_ok_and(|(s, _)| s == 200)
    })?;

    let (mut prom_cold, mut fe_cold, mut prom_warm, mut fe_warm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut differ = 0;
    for r in 0..refreshes as i64 {
        let start = T0 + 30 * M + r * 30_000;
        let end = start + 5 * H;
        for q in PANELS {
            let t = Instant::now();
            let p = range(cluster.prometheus, q, start, end, M, TIMEOUT)?;
            let tp = t.elapsed();
            let t = Instant::now();
            let s = range(fe.http, q, start, end, M, TIMEOUT)?;
            let ts = t.elapsed();
            let (p, s) = (
                parse_answer(p.status, &p.body),
                parse_answer(s.status, &s.body),
            );
            if !compare(&p, &s, false, ("prometheus", "frontend"), 3).is_empty() {
                differ += 1;
                eprintln!("differs: {q} at refresh {r}");
            }
            // Each phase of the 60 s grid is cold once (refreshes 0 and 1).
            if r < 2 {
                prom_cold.push(tp);
                fe_cold.push(ts);
            } else {
                prom_warm.push(tp);
                fe_warm.push(ts);
            }
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (pc, fc, pw, fw) = (
        median(&mut prom_cold),
        median(&mut fe_cold),
        median(&mut prom_warm),
        median(&mut fe_warm),
    );
    println!(
        "\nDashboard: {} panels over 5 h at 60 s steps, {refreshes} refreshes sliding 30 s; {} series\n",
        PANELS.len(),
        cluster.dataset.series
    );
    println!(
        "{:<28} {:>14} {:>14} {:>7}",
        "", "prometheus ms", "frontend ms", "ratio"
    );
    println!(
        "{:<28} {:>14.1} {:>14.1} {:>7.2}",
        "cold (first two refreshes)",
        ms(pc),
        ms(fc),
        ms(fc) / ms(pc)
    );
    println!(
        "{:<28} {:>14.1} {:>14.1} {:>7.2}",
        "warm (median after them)",
        ms(pw),
        ms(fw),
        ms(fw) / ms(pw)
    );
    println!(
        "answers differing from Prometheus: {differ} of {}\n",
        refreshes * PANELS.len()
    );
    drop(fe);
    drop(cluster);
    anyhow::ensure!(differ == 0, "{differ} answers differ from Prometheus");
    Ok(())
}
