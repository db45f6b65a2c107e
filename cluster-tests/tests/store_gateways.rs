//! Three `skein store` gateways on one filesystem bucket, found by gossip,
//! form one STORE group behind a querier. Under a steady PromQL load, one
//! gateway stalls (SIGSTOP) and another crashes (SIGKILL): no query may
//! fail or come back partial, and the stall may cost no more than the
//! hedging bound. Loopback range 127.0.11.x.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use skein_cluster_tests::load::{Load, StopOnDrop};
use skein_cluster_tests::{get_json, healthy_members, start_node, wait_for, Process};

const SEED: &str = "127.0.11.1:10900";

const QUERY: &str = "/api/v1/query?query=count(%7B__name__%3D~%22.%2B%22%7D)&time=1700003000";

#[test]
fn gateways_stall_and_crash_without_failed_queries() {
    let dir = tempfile::tempdir().unwrap();
    let objstore = skein_cluster_tests::fixture_bucket(dir.path()).unwrap();

    let querier = start_node(
        "query",
        "query",
        "127.0.11.1",
        None,
        &[
            "--store.health-check-interval",
            "500ms",
            "--query.hedge",
            "adaptive",
        ],
    )
    .unwrap();
    let mut gateways: Vec<Process> = (2..=4)
        .map(|n| {
            let ip = format!("127.0.11.{n}");
            let data = dir.path().join(format!("data-{n}"));
            start_node(
                &format!("store-{n}"),
                "store",
                &ip,
                Some(SEED),
                &[
                    "--objstore.config",
                    &objstore,
                    "--data-dir",
                    data.to_str().unwrap(),
                ],
            )
            .unwrap()
        })
        .collect();
    let http = querier.http;
    wait_for(
        "three healthy gateways in one group",
        Duration::from_secs(60),
        || healthy_members(http) == Some((1, 3)),
    )
    .unwrap();

    let want = get_json(http, QUERY).unwrap();
    assert_eq!(want["status"], "success", "{want}");
    assert!(
        want["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{want}"
    );
    let load = Load::new(QUERY, want["data"].clone());
    let running = AtomicBool::new(true);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&running);
        for _ in 0..4 {
            s.spawn(|| {
                while running.load(Ordering::Relaxed) {
                    load.query(http);
                }
            });
        }
        let phase = |name: &str, secs: u64| {
            std::thread::sleep(Duration::from_secs(secs));
            let mut p = load.take(name);
            p.failures.truncate(3);
            (p.queries, p.failures, p.p99_ms)
        };
        let (n, failures, healthy_p99) = phase("all healthy", 3);
        assert!(n > 0 && failures.is_empty(), "{failures:?}");
        // Hedges that lose a race to a healthy member are no failures:
        // nobody is demoted and no record shows many failures.
        let members = get_json(http, "/api/v1/cluster").unwrap();
        for m in members["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["members"].as_array())
            .flatten()
        {
            let share = m["shared"]["failureShare"].as_f64().unwrap_or(0.0);
            assert!(
                m["demoted"] == false && share < 0.2,
                "a healthy member looks failing: {m}"
            );
        }

        // A stall: the process is alive and its connections open.
        gateways[0].signal("STOP").unwrap();
        let (n, failures, stalled_p99) = phase("one gateway stopped (SIGSTOP)", 6);
        gateways[0].signal("CONT").unwrap();
        assert!(n > 0 && failures.is_empty(), "stall: {failures:?}");
        // Bounded by the hedge (adaptive, at most --query.hedge-max-delay
        // = 1s) plus a normal answer.
        assert!(
            stalled_p99 < healthy_p99 + 1500.0,
            "stall p99 {stalled_p99} ms"
        );

        // A crash under load.
        gateways[1].kill();
        let (n, failures, _) = phase("one gateway killed (SIGKILL)", 6);
        assert!(n > 0 && failures.is_empty(), "crash: {failures:?}");
        running.store(false, Ordering::Relaxed);
    });
    // The stopped gateway is used again once it runs.
    wait_for(
        "the resumed gateway healthy again",
        Duration::from_secs(30),
        || {
            get_json(http, "/api/v1/stores")
                .is_ok_and(|v| v.to_string().contains(&gateways[0].grpc.to_string()))
                && healthy_members(http).is_some_and(|(_, h)| h >= 2)
        },
    )
    .unwrap();
}
