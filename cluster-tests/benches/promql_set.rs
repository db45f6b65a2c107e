//! Every query of the PromQL differential set (cluster-tests/promql/
//! queries.txt, on its dataset) as a range query through skein and against
//! Prometheus 2.42 holding the same blocks: a light window (10 min at 10 s
//! steps) and a heavy one (the data's whole 3 h at 60 s steps). Each query's
//! latency is the best of three, asked of both sides in turn; the table
//! gives the distribution of the per-query ratios (skein / Prometheus) and
//! the answers that differ.
//!
//! `cargo build --release && cargo bench -p skein-cluster-tests --bench
//! promql_set`. `SKEIN_PROMQL_DIFF_TARGET=store` measures two store
//! gateways instead of the sidecar, `=prometheus` a second Prometheus (the
//! noise floor); `SKEIN_BENCH_RUNS` changes the three.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use skein_cluster_tests::env_usize;
use skein_cluster_tests::promql_data::{write_diff_dataset, DIFF_SPAN, T0};
use skein_cluster_tests::promql_diff::{compare, parse_answer, parse_queries, Outcome};
use skein_cluster_tests::promql_setup::{bench_setup, range, PromqlCluster};

const S: i64 = 1000;
const M: i64 = 60 * S;
const TIMEOUT: Duration = Duration::from_secs(60);

struct Window {
    name: &'static str,
    start: i64,
    end: i64,
    step: i64,
}

fn windows() -> [Window; 2] {
    [
        Window {
            name: "10 min, 10 s steps",
            start: T0 + 95 * M,
            end: T0 + 105 * M,
            step: 10 * S,
        },
        Window {
            name: "3 h, 60 s steps",
            start: T0,
            end: T0 + DIFF_SPAN,
            step: 60 * S,
        },
    ]
}

/// The fastest of `runs` answers, and the last answer.
fn best(addr: SocketAddr, q: &str, w: &Window, runs: usize) -> Option<(Duration, Outcome)> {
    let mut fastest = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let a = range(addr, q, w.start, w.end, w.step, TIMEOUT).ok()?;
        fastest = fastest.min(t.elapsed());
        last = Some(parse_answer(a.status, &a.body));
    }
    last.map(|o| (fastest, o))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn main() -> anyhow::Result<()> {
    let Some((prometheus, promtool, target)) = bench_setup()? else {
        return Ok(());
    };
    let runs = env_usize("SKEIN_BENCH_RUNS", 3).max(1);
    let queries = parse_queries(include_str!("../promql/queries.txt"));
    let cluster = PromqlCluster::start(
        &prometheus,
        &promtool,
        ("127.0.36", 0),
        target,
        write_diff_dataset,
    )?;
    let name = target.name();
    println!(
        "\nPromQL set: {} queries, {} series, {} samples; best of {runs}; prometheus vs {name}\n",
        queries.len(),
        cluster.dataset.series,
        cluster.dataset.samples
    );
    println!(
        "{:<20} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>11} {:>11} {:>7}",
        "window",
        "queries",
        "p10",
        "p25",
        "median",
        "p75",
        "p90",
        "prom total",
        "skein total",
        "differ"
    );
    for w in windows() {
        let mut ratios = Vec::new();
        let (mut total_p, mut total_s) = (Duration::ZERO, Duration::ZERO);
        let mut differ = Vec::new();
        for q in &queries {
            let (Some((tp, p)), Some((ts, s))) = (
                best(cluster.prometheus, q, &w, runs),
                best(cluster.target, q, &w, runs),
            ) else {
                differ.push(format!("{q}: a request failed"));
                continue;
            };
            if !compare(&p, &s, false, ("prometheus", name), 1).is_empty() {
                differ.push(q.clone());
            }
            // Queries both reject are parse errors: no evaluation to time.
            if matches!(p, Outcome::Success { .. }) {
                ratios.push(ts.as_secs_f64() / tp.as_secs_f64().max(1e-9));
                total_p += tp;
                total_s += ts;
            }
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{:<20} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.0}ms {:>9.0}ms {:>7}",
            w.name,
            ratios.len(),
            quantile(&ratios, 0.1),
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.75),
            quantile(&ratios, 0.9),
            total_p.as_secs_f64() * 1000.0,
            total_s.as_secs_f64() * 1000.0,
            differ.len()
        );
        for d in differ.iter().take(5) {
            println!("    differs: {d}");
        }
    }
    println!();
    drop(cluster);
    Ok(())
}
