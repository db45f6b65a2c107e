//! `skein frontend` in a gossip cluster of real processes: it finds three
//! queriers by gossip (and is never taken for a store), spreads a
//! dashboard's range queries over them, and rides out one querier stalled
//! with SIGSTOP: no query fails, hedges are sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skein_cluster_tests::promql_setup::form;
use skein_cluster_tests::{
    get_json, http_get, http_request, metric_at, start_node, wait_for, Process,
};

const IP: &str = "127.0.38";

fn seed() -> String {
    format!("{IP}.1:10900")
}

/// Range queries of a dashboard over the last hours of the data.
fn dashboard() -> Vec<String> {
    [
        "sum by (instance) (rate(http_requests_total[5m]))",
        "sum(rate(http_requests_total{code=\"500\"}[5m]))",
        "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        "max by (instance) (http_requests_total)",
        "count(http_requests_total)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `threads` clients asking the dashboard's queries in turn for `secs`;
/// (answered, failed, p50, p99).
fn load(fe: SocketAddr, threads: usize, secs: u64) -> (usize, usize, Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, failed) = (stop.clone(), failed.clone());
            std::thread::spawn(move || {
                let queries = dashboard();
                let mut times = Vec::new();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let (start, end) = ((now - 3 * 3600).to_string(), now.to_string());
                    let body = form(&[
                        ("query", &queries[i % queries.len()]),
                        ("start", &start),
                        ("end", &end),
                        ("step", "60"),
                    ]);
                    let t0 = Instant::now();
                    let r = http_request(
                        fe,
                        "POST",
                        "/api/v1/query_range",
                        Some(("application/x-www-form-urlencoded", body.as_bytes())),
                        Duration::from_secs(30),
                    );
                    match r {
                        Ok((200, b)) if !String::from_utf8_lossy(&b).contains("\"warnings\"") => {
                            times.push(t0.elapsed())
                        }
                        other => {
                            eprintln!("failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                }
                times
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut times: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    times.sort();
    let at = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (
        times.len(),
        failed.load(Ordering::Relaxed),
        at(0.5),
        at(0.99),
    )
}

#[test]
fn frontend_finds_queriers_by_gossip_and_rides_out_a_stalled_one() {
    let queriers: Vec<_> = (1..=3)
        .map(|i| {
            let ip = format!("{IP}.{i}");
            let s = seed();
            let seed = (i > 1).then_some(s.as_str());
            start_node(
                &format!("query-{i}"),
                "query",
                &ip,
                seed,
                &[
                    "--query.replica-label",
                    "replica",
                    "--store.response-timeout",
                    "5s",
                ],
            )
            .unwrap()
        })
        .collect();
    let _sources: Vec<_> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ip = format!("{IP}.{}", 11 + i);
            let replica = format!("replica={r}");
            start_node(
                &format!("source-{r}"),
                "synthetic",
                &ip,
                Some(&seed()),
                &[
                    "--peer-type",
                    "source",
                    "--seed",
                    "3",
                    "--targets",
                    "5",
                    "--window",
                    "4h",
                    "--label",
                    &replica,
                ],
            )
            .unwrap()
        })
        .collect();
    let fe_ip = format!("{IP}.20");
    let fe = Process::start(
        "frontend",
        &[
            "frontend",
            "--http-address",
            &format!("{fe_ip}:0"),
            "--cluster.listen-address",
            &format!("{fe_ip}:10900"),
            "--cluster.gossip-interval",
            "200ms",
            "--cluster.peers",
            &seed(),
            "--query-range.split-interval",
            "1h",
            "--query-range.response-cache-max-size",
            "0",
            "--query-frontend.hedge-min-delay",
            "50ms",
        ],
    )
    .unwrap();
    wait_for(
        "the frontend to know three queriers",
        Duration::from_secs(60),
        || {
            metric_at(fe.http, "skein_frontend_queriers") == 3.0
                && http_get(fe.http, "/-/ready").is_ok_and(|(s, _)| s == 200)
        },
    )
    .unwrap();
    for q in &queriers {
        wait_for(
            "the querier to see both sources",
            Duration::from_secs(60),
            || skein_cluster_tests::healthy_members(q.http) == Some((2, 2)),
        )
        .unwrap();
        // The frontend gossips, is listed, and is never a store member.
        let v = get_json(q.http, "/api/v1/cluster").unwrap();
        let members = v["data"]["members"].as_array().unwrap();
        assert!(members.iter().any(|m| m["component"] == "frontend"), "{v}");
        let groups = v["data"]["groups"].as_array().unwrap();
        assert!(
            groups
                .iter()
                .flat_map(|g| g["members"].as_array().unwrap())
                .all(|m| m["endpoint"] != fe.http.to_string()),
            "{v}"
        );
    }

    let (ok, failed, p50, p99) = load(fe.http, 4, 6);
    println!("healthy: {ok} queries, {failed} failed, p50 {p50:?}, p99 {p99:?}");
    assert_eq!(failed, 0);
    assert!(ok > 20, "{ok}");
    let spread: Vec<f64> = queriers
        .iter()
        .map(|q| {
            metric_at(
                q.http,
                "skein_http_requests_total{handler=\"/api/v1/query_range\",code=\"200\"}",
            )
        })
        .collect();
    println!("answered by each querier: {spread:?}");

    let sent_before = metric_at(fe.http, "skein_frontend_hedges_total{outcome=\"sent\"}");
    queriers[1].signal("STOP").unwrap();
    let (ok, failed, p50s, p99s) = load(fe.http, 4, 8);
    queriers[1].signal("CONT").unwrap();
    let hedges = metric_at(fe.http, "skein_frontend_hedges_total{outcome=\"sent\"}") - sent_before;
    println!("one querier stalled: {ok} queries, {failed} failed, p50 {p50s:?}, p99 {p99s:?}, {hedges} hedges");
    assert_eq!(failed, 0, "no query fails while a querier is stalled");
    assert!(ok > 20, "{ok}");
    assert!(hedges > 0.0, "the stalled querier's requests were hedged");
}
