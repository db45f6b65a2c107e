//! Hedging across queriers: `skein frontend` in front of three queriers
//! (found by gossip) over a replica pair, under a dashboard's range
//! queries from 4 clients, with every querier healthy and then with one
//! stalled (SIGSTOP), once with hedging and once without (two frontends,
//! the same load in turn). Prints p50/p99, failed queries, and the extra
//! requests (hedges and retries) as a share of the first ones.
//!
//! `cargo build --release && cargo bench -p skein-cluster-tests --bench
//! frontend_hedging`. `SKEIN_BENCH_SECONDS` per phase (default 8).

use std::net::SocketAddr;
use std::time::Duration;

use skein_cluster_tests::load::dashboard;
use skein_cluster_tests::{
    env_usize, healthy_members, http_get, metric_at, start_frontend, start_node,
    use_release_binary, wait_for, Process,
};

const IP: &str = "127.0.43";
use skein_cluster_tests::load::DASHBOARD_QUERIES as QUERIES;

struct Phase {
    ok: usize,
    failed: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    extra: f64,
}

fn run(fe: SocketAddr, secs: u64) -> Phase {
    let primary = || {
        metric_at(
            fe,
            "skein_frontend_downstream_requests_total{role=\"primary\"}",
        )
    };
    let hedges = || {
        metric_at(
            fe,
            "skein_frontend_downstream_requests_total{role=\"hedge\"}",
        )
    };
    let (p0, h0) = (primary(), hedges());
    let d = dashboard(fe, &QUERIES, 4, secs, 3 * 3600);
    let (p, h) = (primary() - p0, hedges() - h0);
    Phase {
        ok: d.times.len(),
        failed: d.failed,
        p50: d.at(0.5),
        p99: d.at(0.99),
        max: d.times.last().copied().unwrap_or_default(),
        extra: if p > 0.0 { h / p } else { 0.0 },
    }
}

fn frontend(host: u8, hedge: bool) -> anyhow::Result<Process> {
    start_frontend(
        &format!("frontend-{host}"),
        &format!("{IP}.{host}"),
        &format!("{IP}.1:10900"),
        &[
            "--query-range.response-cache-max-size",
            "0",
            "--query-frontend.hedge",
            if hedge { "true" } else { "false" },
            "--query-frontend.downstream-timeout",
            "5s",
        ],
    )
}

fn main() -> anyhow::Result<()> {
    use_release_binary()?;
    let secs = env_usize("SKEIN_BENCH_SECONDS", 8) as u64;
    let seed = format!("{IP}.1:10900");
    let queriers: Vec<Process> = (1..=3)
        .map(|i| {
            let s = seed.clone();
            start_node(
                &format!("query-{i}"),
                "query",
                &format!("{IP}.{i}"),
                (i > 1).then_some(s.as_str()),
                &["--query.replica-label", "replica"],
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let _sources: Vec<Process> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            start_node(
                &format!("source-{r}"),
                "synthetic",
                &format!("{IP}.{}", 11 + i),
                Some(&seed),
                &[
                    "--peer-type",
                    "source",
                    "--seed",
                    "3",
                    "--targets",
                    "20",
                    "--window",
                    "4h",
                    "--label",
                    &format!("replica={r}"),
                ],
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let (with, without) = (frontend(20, true)?, frontend(21, false)?);
    for fe in [&with, &without] {
        wait_for(
            "a frontend with three queriers",
            Duration::from_secs(60),
            || {
                metric_at(fe.http, "skein_frontend_queriers") == 3.0
                    && http_get(fe.http, "/-/ready").is_ok_and(|(s, _)| s == 200)
            },
        )?;
    }
    for q in &queriers {
        wait_for("both sources", Duration::from_secs(60), || {
            healthy_members(q.http) == Some((2, 2))
        })?;
    }
    let mut rows = Vec::new();
    for (name, fe) in [("hedging", &with), ("no hedging", &without)] {
        run(fe.http, 2); // warm-up
        rows.push((name, "healthy", run(fe.http, secs)));
    }
    for (name, fe) in [("hedging", &with), ("no hedging", &without)] {
        queriers[1].signal("STOP")?;
        rows.push((name, "one stalled", run(fe.http, secs)));
        queriers[1].signal("CONT")?;
        // Back in gossip and in both frontends' lists before the next.
        wait_for("the querier back", Duration::from_secs(60), || {
            metric_at(with.http, "skein_frontend_queriers") == 3.0
                && metric_at(without.http, "skein_frontend_queriers") == 3.0
        })?;
    }
    println!("\nFrontend over 3 queriers, 4 clients, {secs} s a phase\n");
    println!(
        "{:<12} {:<12} {:>8} {:>7} {:>10} {:>10} {:>10} {:>8}",
        "frontend", "phase", "queries", "failed", "p50 ms", "p99 ms", "max ms", "hedges"
    );
    for (name, phase, r) in rows {
        println!(
            "{:<12} {:<12} {:>8} {:>7} {:>10.1} {:>10.1} {:>10.1} {:>7.1}%",
            name,
            phase,
            r.ok,
            r.failed,
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
            r.max.as_secs_f64() * 1000.0,
            r.extra * 100.0
        );
    }
    println!();
    Ok(())
}
