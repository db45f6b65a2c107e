//! `skein frontend` in a gossip cluster of real processes: it finds three
//! queriers by gossip (and is never taken for a store), spreads a
//! dashboard's range queries over them, and rides out one querier stalled
//! with SIGSTOP: no query fails, hedges are sent.

use std::net::SocketAddr;
use std::time::Duration;

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
    let queries = dashboard();
    let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
    let d = skein_cluster_tests::load::dashboard(fe, &queries, threads, secs, 3 * 3600);
    (d.times.len(), d.failed, d.at(0.5), d.at(0.99))
}

/// A store of generated data under `region`, gossiping through `seed`.
fn region_store(
    name: &str,
    ip: &str,
    seed: &str,
    group: &str,
    region: &str,
    end: i64,
    window: &str,
) -> Process {
    let label = format!("region={region}");
    start_node(
        name,
        "synthetic",
        ip,
        Some(seed),
        &[
            "--peer-type",
            "store",
            "--store-group-id",
            group,
            "--label",
            &label,
            "--seed",
            "1",
            "--targets",
            "2",
            "--end",
            &end.to_string(),
            "--window",
            window,
        ],
    )
    .unwrap()
}

/// Waits until `fe` knows `queriers` queriers and is ready.
fn frontend_ready(fe: &Process, queriers: f64) {
    wait_for("the frontend to be ready", Duration::from_secs(60), || {
        metric_at(fe.http, "skein_frontend_queriers") == queriers
            && http_get(fe.http, "/-/ready").is_ok_and(|(s, _)| s == 200)
    })
    .unwrap();
}

/// A range query posted to `addr`: the answer's JSON (status 200 checked).
fn post_range(
    addr: SocketAddr,
    query: &str,
    start: i64,
    end: i64,
    step: &str,
) -> serde_json::Value {
    let body = form(&[
        ("query", query),
        ("start", &start.to_string()),
        ("end", &end.to_string()),
        ("step", step),
    ]);
    let (status, out) = http_request(
        addr,
        "POST",
        "/api/v1/query_range",
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
        Duration::from_secs(30),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(status, 200, "{v}");
    v
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
    let fe = skein_cluster_tests::start_frontend(
        "frontend",
        &fe_ip,
        &seed(),
        &[
            "--query-range.split-interval",
            "1h",
            "--query-range.response-cache-max-size",
            "0",
            "--query-frontend.hedge-min-delay",
            "50ms",
        ],
    )
    .unwrap();
    frontend_ready(&fe, 3.0);
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

/// A range query through `url`'s frontend: the answer's series labels.
fn range_labels(fe: SocketAddr, query: &str, start: i64, end: i64) -> Vec<serde_json::Value> {
    post_range(fe, query, start, end, "1800")["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"].clone())
        .collect()
}

/// Cached answers and a store that joins with older data for another
/// label set: the next answer has its data, and cached answers it cannot
/// alter (other labels, later steps) stay cached.
#[test]
fn frontend_cache_drops_exactly_what_a_new_store_changes() {
    const IP2: &str = "127.0.39";
    const END: i64 = 1_700_000_000;
    let seed = format!("{IP2}.1:10900");
    let q = start_node(
        "query",
        "query",
        &format!("{IP2}.1"),
        None,
        &["--store.health-check-interval", "1s"],
    )
    .unwrap();
    let store = |name: &str, host: u8, group: &str, region: &str, end: i64, window: &str| {
        region_store(
            name,
            &format!("{IP2}.{host}"),
            &seed,
            group,
            region,
            end,
            window,
        )
    };
    let _eu = store("store-eu", 2, "a", "eu", END, "48h");
    let fe_ip = format!("{IP2}.9");
    let fe = skein_cluster_tests::start_frontend(
        "frontend",
        &fe_ip,
        &seed,
        &[
            "--query-range.split-interval",
            "6h",
            "--query-frontend.change-settle-time",
            "3s",
        ],
    )
    .unwrap();
    frontend_ready(&fe, 1.0);
    wait_for("the querier ready", Duration::from_secs(60), || {
        skein_cluster_tests::healthy_members(q.http) == Some((1, 1))
    })
    .unwrap();
    // The store's joining is a change too: let it settle.
    std::thread::sleep(Duration::from_secs(4));

    let (start, end) = (END - 48 * 3600, END);
    let all = "count by (region) (http_requests_total)";
    let eu = "count(http_requests_total{region=\"eu\"})";
    let hits = || metric_at(fe.http, "skein_frontend_cache_hits_total");
    let misses = || metric_at(fe.http, "skein_frontend_cache_misses_total");
    for query in [all, eu] {
        range_labels(fe.http, query, start, end);
    }
    let (h0, m0) = (hits(), misses());
    for query in [all, eu] {
        range_labels(fe.http, query, start, end);
    }
    let (h1, m1) = (hits(), misses());
    assert_eq!(m1, m0, "the second run is all from the cache");
    assert!(h1 - h0 >= 16.0, "{} hits", h1 - h0);

    // A store with older data for another region joins.
    let _us = store("store-us", 3, "b", "us", END - 24 * 3600, "24h");
    let took = wait_for(
        "the new region in the answer",
        Duration::from_secs(30),
        || {
            range_labels(fe.http, all, start, end)
                .iter()
                .any(|m| m["region"] == "us")
        },
    )
    .unwrap();
    println!("the new store's data was in the answer after {took:?}");
    std::thread::sleep(Duration::from_secs(4));
    let (h2, m2) = (hits(), misses());
    range_labels(fe.http, all, start, end);
    let (h3, m3) = (hits(), misses());
    assert!(
        m3 > m2,
        "pieces the new store's time range alters were asked again"
    );
    assert!(
        h3 > h2,
        "later pieces, which it cannot alter, stayed cached"
    );
    range_labels(fe.http, eu, start, end);
    assert_eq!(misses(), m3, "answers for other labels stayed cached");
    let invalidated = metric_at(fe.http, "skein_frontend_cache_invalidated_total");
    println!("dropped {invalidated} cached answers; hits {h3}, misses {m3}");
    assert!(invalidated > 0.0);
}

/// Points of a range answer's series in `[from, to]` (seconds).
fn points_between(fe: SocketAddr, query: &str, start: i64, end: i64, from: i64, to: i64) -> usize {
    post_range(fe, query, start, end, "600")["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .filter(|p| {
            p[0].as_f64()
                .is_some_and(|t| t >= from as f64 && t <= to as f64)
        })
        .count()
}

/// A block backfilled into a gateway's bucket: once the gateway has
/// synced it and gossiped the change, the frontend's next answer has its
/// data, and cached pieces far from its time range stay cached.
#[test]
fn frontend_cache_follows_a_backfilled_block() {
    const IP3: &str = "127.0.40";
    const BACKFILLED: &str = "01M80AZ7GJPGNRJVRQSFG42X9R";
    let dir = tempfile::tempdir().unwrap();
    let objstore = skein_cluster_tests::fixture_bucket(dir.path()).unwrap();
    // The bucket first lacks one block, held aside.
    let aside = dir.path().join("aside");
    std::fs::rename(dir.path().join("bucket").join(BACKFILLED), &aside).unwrap();
    let seed = format!("{IP3}.1:10900");
    let q = start_node(
        "query",
        "query",
        &format!("{IP3}.1"),
        None,
        &["--store.health-check-interval", "1s"],
    )
    .unwrap();
    let data = dir.path().join("data");
    let _gw = start_node(
        "store",
        "store",
        &format!("{IP3}.2"),
        Some(&seed),
        &[
            "--objstore.config",
            &objstore,
            "--data-dir",
            data.to_str().unwrap(),
            "--sync-block-duration",
            "1s",
        ],
    )
    .unwrap();
    let fe_ip = format!("{IP3}.9");
    let fe = skein_cluster_tests::start_frontend(
        "frontend",
        &fe_ip,
        &seed,
        &[
            "--query-range.split-interval",
            "1h",
            "--query-frontend.change-settle-time",
            "3s",
        ],
    )
    .unwrap();
    frontend_ready(&fe, 1.0);
    wait_for("the querier ready", Duration::from_secs(60), || {
        skein_cluster_tests::healthy_members(q.http) == Some((1, 1))
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(4));

    let query = "count({__name__=~\".+\"})";
    let (start, end) = (1_700_000_000, 1_700_028_800);
    // The held-back block covers 1700014135..1700019545.
    let (gap_from, gap_to) = (1_700_014_800, 1_700_019_000);
    assert_eq!(
        points_between(fe.http, query, start, end, gap_from, gap_to),
        0
    );
    let hits = || metric_at(fe.http, "skein_frontend_cache_hits_total");
    let misses = || metric_at(fe.http, "skein_frontend_cache_misses_total");
    let m0 = misses();
    assert_eq!(
        points_between(fe.http, query, start, end, gap_from, gap_to),
        0
    );
    assert_eq!(misses(), m0, "cached");

    // Backfill: the block's files, its meta.json last.
    let target = dir.path().join("bucket").join(BACKFILLED);
    skein_cluster_tests::promql_setup::copy_dir(&aside, &target).unwrap();
    let took = wait_for(
        "the backfilled block's data in the answer",
        Duration::from_secs(30),
        || points_between(fe.http, query, start, end, gap_from, gap_to) > 0,
    )
    .unwrap();
    println!("backfilled data answered after {took:?}");
    // Every step, through the frontend, as the querier answers it.
    let whole = |at: SocketAddr| points_between(at, query, start, end, start, end);
    assert_eq!(whole(fe.http), whole(q.http));
    std::thread::sleep(Duration::from_secs(4));
    let (h1, m1) = (hits(), misses());
    let n = points_between(fe.http, query, start, end, gap_from, gap_to);
    let direct = points_between(q.http, query, start, end, gap_from, gap_to);
    assert_eq!(n, direct, "the frontend answers as the querier does");
    assert!(n > 0);
    let (h2, m2) = (hits(), misses());
    assert!(m2 > m1, "pieces over the block were asked again");
    assert!(h2 > h1, "pieces far from it stayed cached");
    assert!(metric_at(fe.http, "skein_frontend_cache_invalidated_total") > 0.0);
}

/// Two frontends sharing a results cache in a real memcached: what one
/// cached, the other answers from it; after a store joins with data the
/// cached answers lack, neither takes them any more.
#[test]
fn frontends_share_a_cache_in_memcached_and_both_follow_changes() {
    const IP4: &str = "127.0.42";
    const END: i64 = 1_700_000_000;
    let Some(memcached) = skein_cluster_tests::require_binary("memcached") else {
        assert!(
            std::env::var("SKEIN_REQUIRE_MEMCACHED").as_deref() != Ok("1"),
            "memcached is required (SKEIN_REQUIRE_MEMCACHED=1)"
        );
        return;
    };
    let mc_addr = format!("{IP4}.5:11211");
    let mut cmd = std::process::Command::new(memcached);
    cmd.args([
        "-l",
        &format!("{IP4}.5"),
        "-p",
        "11211",
        "-U",
        "0",
        "-u",
        "root",
        "-m",
        "64",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    skein_cluster_tests::die_with_parent(&mut cmd);
    let _mc = skein_cluster_tests::Spawned(cmd.spawn().unwrap());
    wait_for("memcached", Duration::from_secs(10), || {
        std::net::TcpStream::connect(&mc_addr).is_ok()
    })
    .unwrap();
    let seed = format!("{IP4}.1:10900");
    let q = start_node(
        "query",
        "query",
        &format!("{IP4}.1"),
        None,
        &["--store.health-check-interval", "1s"],
    )
    .unwrap();
    let store = |name: &str, host: u8, group: &str, region: &str, end: i64, window: &str| {
        region_store(
            name,
            &format!("{IP4}.{host}"),
            &seed,
            group,
            region,
            end,
            window,
        )
    };
    let _eu = store("store-eu", 2, "a", "eu", END, "48h");
    let frontend = |host: u8| {
        let ip = format!("{IP4}.{host}");
        skein_cluster_tests::start_frontend(
            &format!("frontend-{host}"),
            &ip,
            &seed,
            &[
                "--query-range.split-interval",
                "6h",
                "--query-frontend.change-settle-time",
                "2s",
                "--query-range.memcached-addresses",
                &mc_addr,
            ],
        )
        .unwrap()
    };
    let (a, b) = (frontend(8), frontend(9));
    for fe in [&a, &b] {
        frontend_ready(fe, 1.0);
    }
    wait_for("the querier ready", Duration::from_secs(60), || {
        skein_cluster_tests::healthy_members(q.http) == Some((1, 1))
    })
    .unwrap();
    // Entries are trusted when made past a change (the store's joining)
    // by more than the settle time and the clock-skew margin (5 s).
    std::thread::sleep(Duration::from_secs(7));

    let all = "count by (region) (http_requests_total)";
    let (start, end) = (END - 48 * 3600, END);
    let from_a = range_labels(a.http, all, start, end);
    std::thread::sleep(Duration::from_millis(500)); // the background writes
    let from_b = range_labels(b.http, all, start, end);
    assert_eq!(from_a, from_b);
    let shared = metric_at(b.http, "skein_frontend_shared_cache_hits_total");
    assert!(
        shared >= 8.0,
        "b answered from what a cached: {shared} pieces"
    );

    let _us = store("store-us", 3, "b", "us", END - 24 * 3600, "24h");
    for fe in [&a, &b] {
        wait_for(
            "the new region through each frontend",
            Duration::from_secs(30),
            || {
                range_labels(fe.http, all, start, end)
                    .iter()
                    .any(|m| m["region"] == "us")
            },
        )
        .unwrap();
    }
}
