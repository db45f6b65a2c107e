//! Faults of a running cluster, with real processes and a steady query
//! load: a rolling restart of every querier, a SOURCE replica that dies,
//! and a store cut off from the network. Each reports the queries sent,
//! those that failed and the p99 latency per phase. Loopback ranges
//! 127.0.14.x (restarts), 127.0.15.x (replica), 127.0.16.x (partition).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use skein_cluster_tests::load::{Load, StopOnDrop};
use skein_cluster_tests::proxy::Proxy;
use skein_cluster_tests::{
    get_json, healthy_members, http_get_with_head, start_node, wait_for, Process,
};

/// A query over the synthetic data at `time_ms`, which every store of these
/// tests holds alike: its answer does not depend on which replica or member
/// answers.
fn query_path(time_ms: i64) -> String {
    format!(
        "/api/v1/query?query=sum%20by%20(job)%20(http_requests_total)&time={}",
        time_ms / 1000
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A synthetic store on `ip`, generated up to a fixed end so that every
/// process of a test holds the same samples.
fn synthetic(name: &str, ip: &str, seed: Option<&str>, end: i64, extra: &[&str]) -> Process {
    let end = (end / 1000).to_string();
    let mut args = vec![
        "--seed",
        "3",
        "--targets",
        "5",
        "--window",
        "1h",
        "--end",
        &end,
    ];
    args.extend_from_slice(extra);
    start_node(name, "synthetic", ip, seed, &args).unwrap()
}

fn querier(name: &str, ip: &str, seed: Option<&str>) -> Process {
    start_node(
        name,
        "query",
        ip,
        seed,
        &[
            "--store.health-check-interval",
            "500ms",
            "--query.replica-label",
            "replica",
            "--store.unhealthy-timeout",
            "8s",
        ],
    )
    .unwrap()
}

/// Gossip members a querier sees, from `/api/v1/cluster`.
fn members(http: SocketAddr) -> usize {
    get_json(http, "/api/v1/cluster")
        .ok()
        .and_then(|v| v["data"]["members"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn rolling_restart_of_every_querier_fails_no_query_on_the_others() {
    const SEED: &str = "127.0.14.1:10900";
    let end = now_ms() - 60_000;
    let path = query_path(end);
    let mut queriers: Vec<Process> = (1..=3)
        .map(|i| {
            let seed = (i > 1).then_some(SEED);
            querier(&format!("query-{i}"), &format!("127.0.14.{i}"), seed)
        })
        .collect();
    let _stores: Vec<Process> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let label = format!("replica={r}");
            synthetic(
                &format!("source-{r}"),
                &format!("127.0.14.{}", 11 + i),
                Some(SEED),
                end,
                &["--label", &label],
            )
        })
        .collect();
    // Gossip members: 3 queriers and 2 stores.
    let converged = |q: &Process| members(q.http) == 5 && healthy_members(q.http) == Some((2, 2));
    for q in &queriers {
        wait_for("the cluster formed", Duration::from_secs(30), || {
            converged(q)
        })
        .unwrap();
    }
    let want = get_json(queriers[0].http, &path).unwrap();
    assert_eq!(want["status"], "success", "{want}");
    assert!(!want["data"]["result"].as_array().unwrap().is_empty());
    let load = Load::new(&path, want["data"].clone());

    // Clients ask every querier that is up; the restarting one is taken
    // out of their list before it stops and put back once it is ready.
    let live: RwLock<Vec<SocketAddr>> = RwLock::new(queriers.iter().map(|q| q.http).collect());
    let running = AtomicBool::new(true);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&running);
        for t in 0..3 {
            let (live, running, load) = (&live, &running, &load);
            s.spawn(move || {
                let mut n = t;
                while running.load(Ordering::Relaxed) {
                    let target = {
                        let l = live.read().unwrap();
                        l[n % l.len()]
                    };
                    load.query(target);
                    n += 1;
                }
            });
        }
        let p = {
            std::thread::sleep(Duration::from_secs(2));
            load.take("all queriers up")
        };
        assert!(p.queries > 0 && p.failures.is_empty(), "{:?}", p.failures);
        for (i, slot) in queriers.iter_mut().enumerate() {
            let old = slot.http;
            live.write().unwrap().retain(|a| *a != old);
            slot.signal("TERM").unwrap();
            wait_for("the querier stopped", Duration::from_secs(20), || {
                !slot.is_running()
            })
            .unwrap();
            let seed = if i == 0 { "127.0.14.2:10900" } else { SEED };
            *slot = querier(
                &format!("query-{}", i + 1),
                &format!("127.0.14.{}", i + 1),
                Some(seed),
            );
            let restarted = &*slot;
            wait_for(
                "the restarted querier rejoined",
                Duration::from_secs(30),
                || converged(restarted),
            )
            .unwrap();
            live.write().unwrap().push(restarted.http);
            let p = load.take(&format!("query-{} restarted", i + 1));
            assert!(p.queries > 0, "no queries while query-{} restarted", i + 1);
            assert!(
                p.failures.is_empty(),
                "query-{}: {:?}",
                i + 1,
                &p.failures[..p.failures.len().min(3)]
            );
        }
        std::thread::sleep(Duration::from_secs(1));
        running.store(false, Ordering::Relaxed);
    });
    let p = load.take("after the rolling restart");
    assert!(p.failures.is_empty(), "{:?}", p.failures);
    // Gossip re-converged: every querier sees every node again.
    for q in &queriers {
        wait_for("gossip re-converged", Duration::from_secs(30), || {
            converged(q)
        })
        .unwrap();
    }
}

#[test]
fn a_dead_source_replica_gives_a_marked_partial_answer_with_the_others_data() {
    const SEED: &str = "127.0.15.1:10900";
    let end = now_ms() - 60_000;
    let path = query_path(end);
    let q = querier("query", "127.0.15.1", None);
    let _a = synthetic(
        "source-a",
        "127.0.15.2",
        Some(SEED),
        end,
        &["--label", "replica=a"],
    );
    let mut b = synthetic(
        "source-b",
        "127.0.15.3",
        Some(SEED),
        end,
        &["--label", "replica=b"],
    );
    wait_for("both replicas healthy", Duration::from_secs(30), || {
        healthy_members(q.http) == Some((2, 2))
    })
    .unwrap();
    let (status, head, body) = http_get_with_head(q.http, &path).unwrap();
    assert_eq!(status, 200);
    assert!(
        !head.contains("no-store"),
        "a whole answer may be cached: {head}"
    );
    let whole: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(whole["warnings"].is_null(), "{whole}");

    b.kill();
    // Until health checks and gossip bury it, the querier still asks it:
    // the answer says what is missing and must not be cached, and its data
    // (the replicas are identical) is still whole.
    let (status, head, body) = http_get_with_head(q.http, &path).unwrap();
    assert_eq!(status, 200);
    let partial: serde_json::Value = serde_json::from_str(&body).unwrap();
    let warnings = partial["warnings"].to_string();
    assert!(
        warnings.contains("127.0.15.3"),
        "warning names the dead replica: {partial}"
    );
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert_eq!(partial["data"], whole["data"]);
    println!("dead replica: warning {warnings}");
    // Gossip buries it within seconds, but it died without leaving: answers
    // keep saying what is missing until --store.unhealthy-timeout (8s).
    let killed = std::time::Instant::now();
    wait_for(
        "gossip to bury the dead replica",
        Duration::from_secs(30),
        || members(q.http) == 2,
    )
    .unwrap();
    let v = get_json(q.http, &path).unwrap();
    if killed.elapsed() < Duration::from_secs(7) {
        assert!(
            v["warnings"].to_string().contains("127.0.15.3"),
            "a dead member's absence is still reported after gossip forgot it: {v}"
        );
    }
    // Then it is forgotten, and answers are clean again.
    let took = wait_for(
        "the dead replica forgotten",
        Duration::from_secs(30),
        || {
            get_json(q.http, &path)
                .is_ok_and(|v| v["warnings"].is_null() && v["data"] == whole["data"])
        },
    )
    .unwrap();
    assert!(
        killed.elapsed() >= Duration::from_secs(8),
        "forgotten {:?} after the kill, before the timeout (waited {took:?})",
        killed.elapsed()
    );
}

#[test]
fn a_partitioned_store_costs_no_query_and_is_used_again_once_healed() {
    // Two identical STORE members: one found by gossip, one reached only
    // through a proxy that can cut its network (it does not gossip).
    const SEED: &str = "127.0.16.1:10900";
    let end = now_ms() - 60_000;
    let path = query_path(end);
    let group = [
        "--peer-type",
        "store",
        "--store-group-id",
        "bucket-x",
        "--label",
        "cluster=x",
    ];
    let mut direct = synthetic("store-direct", "127.0.16.2", Some(SEED), end, &group);
    let mut cut_off_args = group.to_vec();
    cut_off_args.push("--cluster.disable");
    let cut_off = synthetic("store-cut", "127.0.16.3", None, end, &cut_off_args);
    let proxy = Proxy::start("127.0.16.4:0", cut_off.grpc).unwrap();
    let endpoint = proxy.addr.to_string();
    let q = start_node(
        "query",
        "query",
        "127.0.16.1",
        None,
        &[
            "--store.health-check-interval",
            "500ms",
            "--store.response-timeout",
            "2s",
            "--endpoint",
            &endpoint,
        ],
    )
    .unwrap();
    wait_for(
        "one group of two healthy members",
        Duration::from_secs(30),
        || healthy_members(q.http) == Some((1, 2)),
    )
    .unwrap();
    let want = get_json(q.http, &path).unwrap();
    assert_eq!(want["status"], "success", "{want}");
    let load = Load::new(&path, want["data"].clone());
    let running = AtomicBool::new(true);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&running);
        for _ in 0..3 {
            s.spawn(|| {
                while running.load(Ordering::Relaxed) {
                    load.query(q.http);
                }
            });
        }
        std::thread::sleep(Duration::from_secs(3));
        let healthy = load.take("both members reachable");
        assert!(
            healthy.queries > 0 && healthy.failures.is_empty(),
            "{:?}",
            healthy.failures
        );

        proxy.set_partitioned(true);
        std::thread::sleep(Duration::from_secs(6));
        let cut = load.take("one member partitioned");
        assert!(cut.queries > 0, "no queries during the partition");
        assert!(
            cut.failures.is_empty(),
            "partition: {:?}",
            &cut.failures[..cut.failures.len().min(3)]
        );
        // Bounded by the hedge (at most --query.hedge-max-delay, 1s) plus a
        // normal answer; the querier stops picking the silent member.
        assert!(
            cut.p99_ms < healthy.p99_ms + 1500.0,
            "partition p99 {} ms",
            cut.p99_ms
        );

        // Healed, it is healthy again within a few health checks, and it
        // serves the group alone once the other member dies: the penalties
        // it gathered while silent fade instead of keeping routing off it.
        proxy.set_partitioned(false);
        wait_for("the healed member healthy", Duration::from_secs(10), || {
            healthy_members(q.http) == Some((1, 2))
        })
        .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let healed = load.take("healed");
        assert!(healed.failures.is_empty(), "{:?}", healed.failures);
        let before = proxy.forwarded_bytes();
        direct.kill();
        std::thread::sleep(Duration::from_secs(4));
        let alone = load.take("the healed member alone (the other killed)");
        assert!(alone.queries > 0, "no queries after the kill");
        assert!(
            alone.failures.is_empty(),
            "healed member alone: {:?}",
            &alone.failures[..alone.failures.len().min(3)]
        );
        let moved = proxy.forwarded_bytes() - before;
        assert!(
            moved > 10_000,
            "only {moved} bytes through the healed member"
        );
        running.store(false, Ordering::Relaxed);
    });
}
