//! Routing decisions made together and against the clock, with real
//! processes: queriers share what they learn of a slow member by gossip,
//! so one that starts late routes around it from its first query, and the
//! member gets its share back once it recovers; hedges and fallbacks are
//! not sent when the query's deadline leaves no time for them, and stores
//! see that deadline.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use skein_cluster_tests::load::dashboard;
use skein_cluster_tests::promql_setup::form;
use skein_cluster_tests::{
    get_json, healthy_members, http_request, metric_at, start_node, wait_for, Process,
};

const QUERIES: [&str; 3] = [
    "sum by (instance) (rate(http_requests_total[5m]))",
    "max by (instance) (http_requests_total)",
    "count(http_requests_total)",
];

/// A STORE group member of generated data whose Series answers wait as
/// long as `delay_file` says.
fn store(name: &str, ip: &str, seed: &str, delay_file: &Path) -> Process {
    let delay_file = delay_file.display().to_string();
    start_node(
        name,
        "synthetic",
        ip,
        Some(seed),
        &[
            "--peer-type",
            "store",
            "--store-group-id",
            "bucket-1",
            "--label",
            "cluster=eu",
            "--seed",
            "7",
            "--targets",
            "5",
            "--window",
            "4h",
            "--series-delay-file",
            &delay_file,
        ],
    )
    .expect("store starts")
}

/// What querier `q` says of the member at `grpc`: (demoted, requests that
/// were not probes, probes).
fn member(q: SocketAddr, grpc: SocketAddr) -> Option<(bool, u64, u64)> {
    let v = get_json(q, "/api/v1/cluster").ok()?;
    let endpoint = grpc.to_string();
    let m = v["data"]["groups"]
        .as_array()?
        .iter()
        .filter_map(|g| g["members"].as_array())
        .flatten()
        .find(|m| m["endpoint"] == endpoint.as_str())?
        .clone();
    let requests = m["requests"].as_u64()?;
    let probes = m["probes"].as_u64()?;
    Some((m["demoted"] == true, requests - probes, probes))
}

/// One instant query with `timeout`; (status, body, time taken).
fn instant(q: SocketAddr, query: &str, timeout: &str) -> (u16, String, Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    let body = form(&[("query", query), ("time", &now), ("timeout", timeout)]);
    let t0 = Instant::now();
    let (status, b) = http_request(
        q,
        "POST",
        "/api/v1/query",
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
        Duration::from_secs(30),
    )
    .expect("query answered");
    (
        status,
        String::from_utf8_lossy(&b).into_owned(),
        t0.elapsed(),
    )
}

#[test]
fn a_late_querier_avoids_a_slow_member_from_its_first_query_and_readmits_it() {
    const IP: &str = "127.0.45";
    let seed = format!("{IP}.11:10900");
    let dir = tempfile::tempdir().unwrap();
    let (slow_file, fast_file) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&slow_file, "500ms").unwrap();
    std::fs::write(&fast_file, "0s").unwrap();
    let q1 = start_node("query-1", "query", &format!("{IP}.11"), None, &[]).unwrap();
    let q2 = start_node("query-2", "query", &format!("{IP}.12"), Some(&seed), &[]).unwrap();
    let slow = store("store-slow", &format!("{IP}.2"), &seed, &slow_file);
    let _fast = store("store-fast", &format!("{IP}.3"), &seed, &fast_file);
    for q in [&q1, &q2] {
        wait_for("one group of two", Duration::from_secs(60), || {
            healthy_members(q.http) == Some((1, 2))
        })
        .unwrap();
    }
    // Both queriers serve a load until the shared view demotes the member
    // whose Series answers take 500 ms (its health checks stay fast).
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the slow member was not demoted: {:?} {:?}",
            member(q1.http, slow.grpc),
            member(q2.http, slow.grpc)
        );
        for q in [&q1, &q2] {
            dashboard(q.http, &QUERIES, 2, 1, 3600);
        }
        if [&q1, &q2]
            .iter()
            .all(|q| member(q.http, slow.grpc).is_some_and(|m| m.0))
        {
            break;
        }
    }
    eprintln!("demoted by both queriers after {:?}", t0.elapsed());

    // A third querier joins: before its first query it knows the member
    // is slow, from its peers' records alone.
    let q3 = start_node("query-3", "query", &format!("{IP}.13"), Some(&seed), &[]).unwrap();
    wait_for(
        "the late querier to see the group and its peers' view",
        Duration::from_secs(30),
        || {
            healthy_members(q3.http) == Some((1, 2))
                && member(q3.http, slow.grpc).is_some_and(|m| m.0 && m.1 == 0)
                && metric_at(q3.http, "skein_query_shared_view_peers") == 2.0
        },
    )
    .unwrap();
    for i in 0..20 {
        let (status, body, took) = instant(q3.http, QUERIES[i % QUERIES.len()], "10s");
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("warnings"), "{body}");
        assert!(
            took < Duration::from_millis(400),
            "query {i} took {took:?}: it waited for the slow member"
        );
    }
    let (_, asked, probes) = member(q3.http, slow.grpc).unwrap();
    assert_eq!(
        asked, 0,
        "the late querier's first 20 queries asked the slow member"
    );
    eprintln!("late querier: 20 queries, 0 asked of the slow member, {probes} probes on the side");

    // The member recovers: under load, every querier readmits it and it
    // answers queries again.
    std::fs::write(&slow_file, "0s").unwrap();
    let healed = Instant::now();
    let before: Vec<u64> = [&q1, &q2, &q3]
        .iter()
        .map(|q| member(q.http, slow.grpc).map_or(0, |m| m.1))
        .collect();
    let back = loop {
        assert!(
            healed.elapsed() < Duration::from_secs(60),
            "the recovered member was not readmitted within 60 s: {:?}",
            [&q1, &q2, &q3].map(|q| member(q.http, slow.grpc))
        );
        for q in [&q1, &q2, &q3] {
            dashboard(q.http, &QUERIES, 1, 1, 3600);
        }
        let now: Vec<Option<(bool, u64, u64)>> = [&q1, &q2, &q3]
            .iter()
            .map(|q| member(q.http, slow.grpc))
            .collect();
        if now
            .iter()
            .zip(&before)
            .all(|(m, b)| m.is_some_and(|m| !m.0 && m.1 > *b))
        {
            break healed.elapsed();
        }
    };
    eprintln!("readmitted by all three queriers, and asked again, {back:?} after recovering");
}

#[test]
fn hedges_respect_the_query_deadline_and_stores_see_it() {
    const IP: &str = "127.0.46";
    let seed = format!("{IP}.11:10900");
    let dir = tempfile::tempdir().unwrap();
    let files = [dir.path().join("a"), dir.path().join("b")];
    for f in &files {
        std::fs::write(f, "1500ms").unwrap();
    }
    let q = start_node("query", "query", &format!("{IP}.11"), None, &[]).unwrap();
    let stores = [
        store("store-a", &format!("{IP}.2"), &seed, &files[0]),
        store("store-b", &format!("{IP}.3"), &seed, &files[1]),
    ];
    wait_for("one group of two", Duration::from_secs(60), || {
        healthy_members(q.http) == Some((1, 2))
    })
    .unwrap();

    // Queries with a 2 s deadline against members that answer in 1.5 s.
    for i in 0..8 {
        let (status, body, took) = instant(q.http, QUERIES[i % QUERIES.len()], "2s");
        assert_eq!(status, 200, "query {i}: {body}");
        assert!(!body.contains("warnings"), "query {i}: {body}");
        assert!(took < Duration::from_secs(2), "query {i} took {took:?}");
    }
    let bucket = |s: &Process, le: &str| {
        metric_at(
            s.http,
            &format!(
                "skein_store_grpc_caller_deadline_seconds_bucket{{rpc=\"series\",le=\"{le}\"}}"
            ),
        )
    };
    let mut seen = 0.0;
    for s in &stores {
        let count = metric_at(
            s.http,
            "skein_store_grpc_caller_deadline_seconds_count{rpc=\"series\"}",
        );
        let served: f64 = ["ok", "canceled", "timeout"]
            .iter()
            .map(|code| {
                metric_at(
                    s.http,
                    &format!("skein_store_grpc_requests_total{{rpc=\"series\",code=\"{code}\"}}"),
                )
            })
            .sum();
        // Every Series request carried the query's deadline, none more
        // than 2 s, and none was sent with less than 0.5 s left.
        assert_eq!(count, served, "{}: requests without a deadline", s.name());
        assert_eq!(bucket(s, "2.5"), count, "{}: a deadline over 2 s", s.name());
        assert_eq!(
            bucket(s, "0.5"),
            0.0,
            "{}: a request with <= 0.5 s left",
            s.name()
        );
        seen += count;
    }
    assert!(seen >= 8.0, "{seen}");
    let refused = metric_at(
        q.http,
        "skein_query_extra_requests_refused_total{kind=\"hedge\",reason=\"deadline\"}",
    );
    let sent = metric_at(q.http, "skein_query_hedges_total{outcome=\"sent\"}");
    eprintln!("hedges sent {sent}, refused for the deadline {refused}");
    assert!(
        refused > 0.0,
        "once the group's answer time is known, a hedge with less time left than it is refused"
    );

    // A query whose deadline is shorter than the members' answers fails
    // in time, and the stores give up on it.
    let (status, body, took) = instant(q.http, QUERIES[0], "1s");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("timeout"), "{body}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    wait_for(
        "the stores to drop the request",
        Duration::from_secs(5),
        || {
            stores.iter().any(|s| {
                metric_at(
                    s.http,
                    "skein_store_grpc_requests_total{rpc=\"series\",code=\"timeout\"}",
                ) + metric_at(
                    s.http,
                    "skein_store_grpc_requests_total{rpc=\"series\",code=\"canceled\"}",
                ) >= 1.0
            })
        },
    )
    .unwrap();
}
