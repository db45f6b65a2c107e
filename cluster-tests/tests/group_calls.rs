//! Calls to a STORE group of two `skein store` gateways on one bucket,
//! through a querier: label calls are hedged like Series, so a member that
//! stalls (SIGSTOP) under a steady label-API load costs no failed call and
//! little latency; an error that would fail again (a gateway's series
//! limit) ends the request naming the store, with no second member asked.
//! Loopback ranges 127.0.23.x and 127.0.24.x.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use skein_cluster_tests::load::{Load, StopOnDrop};
use skein_cluster_tests::promql_setup::copy_dir;
use skein_cluster_tests::{get_json, healthy_members, http_get, start_node, wait_for, Process};

/// A querier and two gateways on a copy of the promtool fixture bucket,
/// found by gossip through the querier on `{net}.1`.
fn cluster(dir: &Path, net: &str, gateway_flags: &[&str]) -> (Process, Vec<Process>) {
    let bucket = dir.join("bucket");
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/promtool-2.42-blocks");
    copy_dir(&fixtures, &bucket).unwrap();
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let seed = format!("{net}.1:10900");
    let querier = start_node(
        "query",
        "query",
        &format!("{net}.1"),
        None,
        &["--store.health-check-interval", "500ms"],
    )
    .unwrap();
    let gateways: Vec<Process> = (2..=3)
        .map(|n| {
            let data = dir.join(format!("data-{n}"));
            let mut args = vec![
                "--objstore.config",
                &objstore,
                "--data-dir",
                data.to_str().unwrap(),
            ];
            args.extend_from_slice(gateway_flags);
            start_node(
                &format!("store-{n}"),
                "store",
                &format!("{net}.{n}"),
                Some(&seed),
                &args,
            )
            .unwrap()
        })
        .collect();
    let http = querier.http;
    wait_for(
        "two healthy gateways in one group",
        Duration::from_secs(60),
        || healthy_members(http) == Some((1, 2)),
    )
    .unwrap();
    (querier, gateways)
}

/// The sum of a counter's samples on a node's `/metrics`.
fn counter_sum(http: SocketAddr, name: &str) -> f64 {
    let (_, body) = http_get(http, "/metrics").unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn label_calls_ride_out_a_stalled_member() {
    let dir = tempfile::tempdir().unwrap();
    let (querier, gateways) = cluster(dir.path(), "127.0.23", &[]);
    let http = querier.http;
    let names = get_json(http, "/api/v1/labels").unwrap();
    let name = names["data"]
        .as_array()
        .and_then(|n| {
            n.iter()
                .filter_map(|n| n.as_str())
                .find(|n| *n != "__name__")
        })
        .unwrap_or_else(|| panic!("no label besides __name__: {names}"))
        .to_string();
    let values = format!("/api/v1/label/{name}/values");
    let paths = ["/api/v1/labels", "/api/v1/label/__name__/values", &values];
    let loads: Vec<Load> = paths
        .iter()
        .map(|p| {
            let want = get_json(http, p).unwrap();
            assert_eq!(want["status"], "success", "{p}: {want}");
            assert!(
                want["data"].as_array().is_some_and(|d| !d.is_empty()),
                "{p}: {want}"
            );
            Load::new(p, want["data"].clone())
        })
        .collect();
    let running = AtomicBool::new(true);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&running);
        for load in &loads {
            for _ in 0..2 {
                let running = &running;
                s.spawn(move || {
                    while running.load(Ordering::Relaxed) {
                        load.query(http);
                    }
                });
            }
        }
        let phase = |name: &str| -> (usize, Vec<String>, f64) {
            let mut n = 0;
            let mut failures = Vec::new();
            let mut p99: f64 = 0.0;
            for (load, path) in loads.iter().zip(paths) {
                let mut p = load.take(&format!("{name}: {path}"));
                n += p.queries;
                p.failures.truncate(3);
                failures.extend(p.failures);
                p99 = p99.max(p.p99_ms);
            }
            (n, failures, p99)
        };
        std::thread::sleep(Duration::from_secs(4));
        let (n, failures, healthy_p99) = phase("both members healthy");
        assert!(n > 0 && failures.is_empty(), "{failures:?}");

        gateways[0].signal("STOP").unwrap();
        std::thread::sleep(Duration::from_secs(6));
        let (n, failures, stalled_p99) = phase("one member stopped (SIGSTOP)");
        gateways[0].signal("CONT").unwrap();
        running.store(false, Ordering::Relaxed);
        assert!(n > 0 && failures.is_empty(), "stall: {failures:?}");
        // Within 1.5x of healthy, plus the hedge delay's floor and some
        // scheduling noise of a small machine at this scale (a few ms).
        assert!(
            stalled_p99 <= 1.5 * healthy_p99 + 10.0,
            "stalled p99 {stalled_p99:.1} ms against healthy {healthy_p99:.1} ms"
        );
    });
}

#[test]
fn a_limit_error_ends_the_request_naming_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (querier, gateways) = cluster(dir.path(), "127.0.24", &["--store.series-limit", "2"]);
    let http = querier.http;
    let fallbacks = |q: SocketAddr| counter_sum(q, "skein_query_fallbacks_total");
    let before = fallbacks(http);
    let started = Instant::now();
    let (status, body) = http_get(
        http,
        "/api/v1/query?query=count(%7B__name__%3D~%22.%2B%22%7D)&time=1700003000",
    )
    .unwrap();
    let took = started.elapsed();
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "error", "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("--store.series-limit"), "{error}");
    assert!(
        gateways.iter().any(|g| error.contains(&g.grpc.to_string())),
        "the error names the store: {error}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(fallbacks(http), before, "the other member was asked");
    // Within the limit, the same group answers.
    let ok = get_json(
        http,
        "/api/v1/query?query=count(up%7Binstance%3D~%22.%2B%22%7D)%20or%20vector(0)&time=1700003000",
    );
    assert!(ok.is_ok(), "{ok:?}");
}
