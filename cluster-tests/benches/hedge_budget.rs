//! The hedge budget under the slowdowns it is for: a STORE group of two
//! synthetic stores whose Series answers can be slowed
//! (`--series-delay-file`: health checks stay fast, as with a slow bucket),
//! each behind a proxy that can stall it, asked by three queriers in turn
//! under the same dashboard load (4 clients): one with
//! `--query.hedge-budget=10%` (the default), one with no budget, one that
//! does not hedge. Phases: healthy; one member +500 ms; both members 5x
//! slower than healthy; one member stalled. Each phase is measured twice
//! per querier: over the first 10 s after the change (the transition: the
//! hedge budget's window still holds the previous phase) and over the
//! next seconds (steady). For each: p50, p99, failed queries, extra
//! requests (hedges and fallbacks) as a share of primary requests, probes
//! of demoted members, hedges the budget refused. After the +500 ms phase
//! the member heals and the time until each querier readmits it (under
//! load) is printed.
//!
//! `cargo build --release && cargo bench -p skein-cluster-tests --bench
//! hedge_budget`. `SKEIN_BENCH_SECONDS` per phase and querier (default 8).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use skein_cluster_tests::load::dashboard;
use skein_cluster_tests::proxy::Proxy;
use skein_cluster_tests::{
    env_usize, healthy_members, metric_at, use_release_binary, wait_for, Process,
};

/// The first part of each phase, measured apart.
const TRANSITION_SECS: u64 = 10;

const IP: &str = "127.0.44";
use skein_cluster_tests::load::DASHBOARD_QUERIES as QUERIES;

struct Phase {
    ok: usize,
    failed: usize,
    p50: Duration,
    p99: Duration,
    extra: f64,
    probes: f64,
    refused: f64,
}

fn requests(q: SocketAddr, role: &str) -> f64 {
    metric_at(
        q,
        &format!("skein_query_store_requests_total{{peer_type=\"store\",role=\"{role}\"}}"),
    )
}

fn refused(q: SocketAddr) -> f64 {
    metric_at(
        q,
        "skein_query_extra_requests_refused_total{kind=\"hedge\",reason=\"budget\"}",
    )
}

fn run(q: SocketAddr, secs: u64) -> Phase {
    let counts = || {
        (
            requests(q, "primary"),
            requests(q, "hedge") + requests(q, "fallback"),
            requests(q, "probe"),
            refused(q),
        )
    };
    let (p0, e0, pr0, r0) = counts();
    let d = dashboard(q, &QUERIES, 4, secs, 3 * 3600);
    let (p1, e1, pr1, r1) = counts();
    let p = (p1 - p0).max(1.0);
    Phase {
        ok: d.times.len(),
        failed: d.failed,
        p50: d.at(0.5),
        p99: d.at(0.99),
        extra: (e1 - e0) / p,
        probes: (pr1 - pr0) / p,
        refused: r1 - r0,
    }
}

fn store(name: &str, host: u8, delay_file: &std::path::Path) -> anyhow::Result<Process> {
    let addr = format!("{IP}.{host}:0");
    let delay_file = delay_file.display().to_string();
    Process::start(
        name,
        &[
            "synthetic",
            "--series-delay-file",
            &delay_file,
            "--grpc-address",
            &addr,
            "--http-address",
            &addr,
            "--cluster.disable",
            "--peer-type",
            "store",
            "--store-group-id",
            "bucket-1",
            "--label",
            "cluster=eu",
            "--seed",
            "5",
            "--targets",
            "20",
            "--window",
            "4h",
        ],
    )
}

fn querier(host: u8, endpoints: &[String], extra: &[&str]) -> anyhow::Result<Process> {
    let addr = format!("{IP}.{host}:0");
    let mut args = vec![
        "query",
        "--grpc-address",
        &addr,
        "--http-address",
        &addr,
        "--cluster.disable",
        "--store.health-check-interval",
        "500ms",
        "--store.response-timeout",
        "5s",
    ];
    for e in endpoints {
        args.push("--endpoint");
        args.push(e);
    }
    args.extend_from_slice(extra);
    Process::start(&format!("query-{host}"), &args)
}

fn main() -> anyhow::Result<()> {
    use_release_binary()?;
    let secs = env_usize("SKEIN_BENCH_SECONDS", 8) as u64;
    let dir = tempfile::tempdir()?;
    let delays = [dir.path().join("a"), dir.path().join("b")];
    let slow = |i: usize, d: &str| std::fs::write(&delays[i], d);
    let stores = [
        store("store-a", 2, &delays[0])?,
        store("store-b", 3, &delays[1])?,
    ];
    let proxies = [
        Proxy::start(&format!("{IP}.4:0"), stores[0].grpc)?,
        Proxy::start(&format!("{IP}.5:0"), stores[1].grpc)?,
    ];
    let endpoints: Vec<String> = proxies.iter().map(|p| p.addr.to_string()).collect();
    let configs = [
        (
            "budget 10%",
            querier(11, &endpoints, &["--query.hedge-budget", "10%"])?,
        ),
        (
            "no budget",
            querier(12, &endpoints, &["--query.hedge-budget", "none"])?,
        ),
        (
            "no hedging",
            querier(13, &endpoints, &["--query.hedge", "off"])?,
        ),
    ];
    for (_, q) in &configs {
        wait_for("a group of two", Duration::from_secs(60), || {
            healthy_members(q.http) == Some((1, 2))
        })?;
        run(q.http, 2); // warm-up
    }
    let mut rows: Vec<(&str, String, Phase)> = Vec::new();
    let measure = |phase: &str, rows: &mut Vec<(&str, String, Phase)>| {
        for (name, q) in &configs {
            rows.push((
                name,
                format!("{phase}, first 10 s"),
                run(q.http, TRANSITION_SECS),
            ));
            rows.push((name, format!("{phase}, steady"), run(q.http, secs)));
        }
    };
    for (name, q) in &configs {
        rows.push((name, "healthy".to_string(), run(q.http, secs)));
    }
    let healthy_p50 = rows[0].2.p50;

    slow(0, "500ms")?;
    measure("one +500 ms", &mut rows);
    let demoted: Vec<f64> = configs
        .iter()
        .map(|(_, q)| metric_at(q.http, "skein_query_demoted_members"))
        .collect();

    // Healed: how long until each querier readmits the member, all three
    // under load at once.
    slow(0, "0s")?;
    let t0 = Instant::now();
    let readmitted: Vec<Option<Duration>> = std::thread::scope(|s| {
        let waits: Vec<_> = configs
            .iter()
            .map(|(_, q)| {
                let http = q.http;
                s.spawn(move || {
                    while t0.elapsed() < Duration::from_secs(90) {
                        dashboard(http, &QUERIES, 1, 1, 3 * 3600);
                        if metric_at(http, "skein_query_demoted_members") == 0.0 {
                            return Some(t0.elapsed());
                        }
                    }
                    None
                })
            })
            .collect();
        waits.into_iter().map(|w| w.join().ok().flatten()).collect()
    });

    // 5x slower end to end: each store answers four healthy query times
    // later.
    let extra = (healthy_p50 * 4).max(Duration::from_millis(2));
    let extra_text = format!("{}us", extra.as_micros());
    slow(0, &extra_text)?;
    slow(1, &extra_text)?;
    measure("both 5x slower", &mut rows);

    slow(0, "0s")?;
    slow(1, "0s")?;
    proxies[0].set_partitioned(true);
    measure("one stalled", &mut rows);
    proxies[0].set_partitioned(false);

    println!(
        "\nSTORE group of two, 4 clients, {secs} s steady per phase and querier; \
         both members 5x slower = +{:.1} ms each\n",
        extra.as_secs_f64() * 1000.0
    );
    println!(
        "{:<12} {:<28} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>9}",
        "querier", "phase", "queries", "failed", "p50 ms", "p99 ms", "extra", "probes", "refused"
    );
    for (name, phase, r) in &rows {
        println!(
            "{:<12} {:<28} {:>8} {:>7} {:>9.1} {:>9.1} {:>7.1}% {:>7.1}% {:>9}",
            name,
            phase,
            r.ok,
            r.failed,
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
            r.extra * 100.0,
            r.probes * 100.0,
            r.refused
        );
    }
    println!("\nthe +500 ms member, healed: demoted at the end of its phase, and readmitted after");
    for (((name, _), w), d) in configs.iter().zip(readmitted).zip(demoted) {
        if d == 0.0 {
            println!(
                "  {name:<12} never demoted: its rare requests (the cost order already kept it last) \
                 were too few for the view"
            );
            continue;
        }
        print!("  {name:<12} demoted members {d}: ");
        match w {
            Some(w) => println!("readmitted after {:.1} s", w.as_secs_f64()),
            None => println!("not readmitted within 90 s"),
        }
    }
    println!();
    Ok(())
}
