//! PromQL latency of the skein querier next to Prometheus 2.42 on the same
//! data: one Prometheus holds a generated dataset (thousands of series over
//! 6h), a sidecar serves it to a querier, and each query class runs N times
//! against both, alternating. Prints p50/p90 per class and the ratio of the
//! medians.
//!
//! `cargo build --release && cargo bench -p skein-cluster-tests --bench
//! promql_latency`. The skein binary is `SKEIN_BIN`, or the workspace's
//! release build. Knobs: `SKEIN_BENCH_RUNS` (default 20),
//! `SKEIN_BENCH_INSTANCES` (default 100, 49 series each), and
//! `SKEIN_PROMQL_DIFF_TARGET=prometheus` to measure a second Prometheus in
//! skein's place (a check of the bench itself). `SKEIN_BENCH_HOLD_SECS`
//! keeps the processes running that long afterwards, for profiling.

use std::time::{Duration, Instant};

use skein_cluster_tests::env_usize;
use skein_cluster_tests::promql_data::{write_bench_dataset, BENCH_SPAN, T0};
use skein_cluster_tests::promql_diff::{classify, compare, parse_answer};
use skein_cluster_tests::promql_setup::{
    bench_setup, instant, range, Answer, PromqlCluster, Target,
};

const M: i64 = 60_000;
const H: i64 = 60 * M;
const TIMEOUT: Duration = Duration::from_secs(120);

enum Eval {
    Instant(i64),
    Range(i64, i64, i64),
}

struct Class {
    name: &'static str,
    query: &'static str,
    eval: Eval,
}

fn classes() -> Vec<Class> {
    let end = T0 + BENCH_SPAN;
    vec![
        Class {
            name: "instant selector",
            query: "bench_requests_total{job=\"api\"}",
            eval: Eval::Instant(end - H),
        },
        Class {
            name: "rate, range 5h",
            query: "rate(bench_requests_total{job=\"api\"}[5m])",
            eval: Eval::Range(T0 + H, end, M),
        },
        Class {
            name: "sum by, range 1h",
            query: "sum by (job, code) (rate(bench_requests_total[5m]))",
            eval: Eval::Range(end - 2 * H, end - H, M),
        },
        Class {
            name: "histogram_quantile, range 1h",
            query: "histogram_quantile(0.99, sum by (le, job) (rate(bench_latency_seconds_bucket[5m])))",
            eval: Eval::Range(end - 2 * H, end - H, M),
        },
        Class {
            name: "binary join",
            query: "sum by (instance) (rate(bench_cpu_seconds_total{mode!=\"idle\"}[5m])) * on(instance) group_left(zone, team) bench_instance_info",
            eval: Eval::Instant(end - H),
        },
        Class {
            name: "subquery",
            query: "max_over_time(sum by (job) (rate(bench_requests_total[5m]))[1h:1m])",
            eval: Eval::Instant(end - H),
        },
        Class {
            name: "topk",
            query: "topk(10, sum by (instance) (rate(bench_requests_total[5m])))",
            eval: Eval::Instant(end - H),
        },
    ]
}

fn ask(addr: std::net::SocketAddr, c: &Class) -> (Duration, anyhow::Result<Answer>) {
    let t = Instant::now();
    let a = match c.eval {
        Eval::Instant(at) => instant(addr, c.query, at, TIMEOUT),
        Eval::Range(start, end, step) => range(addr, c.query, start, end, step, TIMEOUT),
    };
    (t.elapsed(), a)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let Some((prometheus, promtool, target)) = bench_setup()? else {
        return Ok(());
    };
    let runs = env_usize("SKEIN_BENCH_RUNS", 20).max(1);
    let instances = env_usize("SKEIN_BENCH_INSTANCES", 100).max(1);
    let cluster = PromqlCluster::start(&prometheus, &promtool, ("127.0.5", 0), target, |p| {
        write_bench_dataset(p, instances)
    })?;
    let name = target.name();
    let classes = classes();

    // Warm-up, and a check that both sides answer alike.
    let mut notes = Vec::new();
    for c in &classes {
        let (_, p) = ask(cluster.prometheus, c);
        let (_, s) = ask(cluster.target, c);
        let p = p.map_or_else(
            |e| skein_cluster_tests::promql_diff::Outcome::Invalid(e.to_string()),
            |a| parse_answer(a.status, &a.body),
        );
        let s = s.map_or_else(
            |e| skein_cluster_tests::promql_diff::Outcome::Invalid(e.to_string()),
            |a| parse_answer(a.status, &a.body),
        );
        let diff = compare(&p, &s, false, ("prometheus", name), 4);
        notes.push(if diff.is_empty() {
            "same".to_string()
        } else {
            classify(&p, &s, ("prometheus", name))
        });
    }

    let mut times: Vec<(Vec<Duration>, Vec<Duration>)> = vec![Default::default(); classes.len()];
    let mut failures = vec![(0usize, 0usize); classes.len()];
    for _ in 0..runs {
        for (i, c) in classes.iter().enumerate() {
            let (d, a) = ask(cluster.prometheus, c);
            if a.as_ref().is_ok_and(|a| a.status == 200) {
                times[i].0.push(d);
            } else {
                failures[i].0 += 1;
            }
            let (d, a) = ask(cluster.target, c);
            if a.as_ref().is_ok_and(|a| a.status == 200) {
                times[i].1.push(d);
            } else {
                failures[i].1 += 1;
            }
        }
    }

    println!(
        "\nPromQL latency: {} series, {} samples over 6h; {runs} runs per class; prometheus vs {name}\n",
        cluster.dataset.series, cluster.dataset.samples
    );
    let short = match target {
        Target::Skein => "skein",
        Target::Prometheus => "copy",
        Target::Store => "store",
    };
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>9} {:>7}  answers",
        "class",
        "prom p50",
        "prom p90",
        format!("{short} p50"),
        format!("{short} p90"),
        "ratio"
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "", "ms", "ms", "ms", "ms", "p50"
    );
    for (i, c) in classes.iter().enumerate() {
        let (mut p, mut s) = times[i].clone();
        p.sort();
        s.sort();
        let cell = |v: &[Duration], q: f64| {
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1}", ms(percentile(v, q)))
            }
        };
        let ratio = if p.is_empty() || s.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{:.2}",
                ms(percentile(&s, 0.5)) / ms(percentile(&p, 0.5)).max(1e-6)
            )
        };
        let mut note = notes[i].clone();
        if failures[i] != (0, 0) {
            note.push_str(&format!(
                "; failed runs: prometheus {}, {name} {}",
                failures[i].0, failures[i].1
            ));
        }
        println!(
            "{:<30} {:>9} {:>9} {:>9} {:>9} {:>7}  {note}",
            c.name,
            cell(&p, 0.5),
            cell(&p, 0.9),
            cell(&s, 0.5),
            cell(&s, 0.9),
            ratio
        );
    }
    println!();
    // For profiling: keep the processes up and say where they listen.
    let hold = env_usize("SKEIN_BENCH_HOLD_SECS", 0);
    if hold > 0 {
        println!(
            "holding for {hold} s: prometheus http://{}  {name} http://{}",
            cluster.prometheus, cluster.target
        );
        std::thread::sleep(Duration::from_secs(hold as u64));
    }
    drop(cluster);
    Ok(())
}
