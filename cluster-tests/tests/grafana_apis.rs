//! What Grafana asks a Prometheus for beyond queries, across the cluster:
//! two real Prometheus 2.42 (an HA pair scraping the same target) behind
//! sidecars, a querier that finds them by gossip, and a second querier
//! stacked on the first. The queriers' `/api/v1/metadata` equals what the
//! two Prometheus answer (merged, each entry once), and with one
//! Prometheus down the answer comes from the other with a warning naming
//! the missing one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use skein_cluster_tests::{
    get_json, healthy_members, require_binary, start_node, start_prometheus_pair, wait_for,
    Process, PrometheusPair,
};

type Metadata = BTreeMap<String, BTreeSet<(String, String, String)>>;

/// `/api/v1/metadata` (with `query`), as metric -> set of (type, help,
/// unit), and the warnings.
fn metadata(addr: SocketAddr, query: &str) -> Option<(Metadata, Vec<String>)> {
    let v = get_json(addr, &format!("/api/v1/metadata{query}")).ok()?;
    if v["status"] != "success" {
        return None;
    }
    let mut out = Metadata::new();
    for (metric, entries) in v["data"].as_object()? {
        let set = out.entry(metric.clone()).or_default();
        for e in entries.as_array()? {
            set.insert((
                e["type"].as_str()?.to_string(),
                e["help"].as_str()?.to_string(),
                e["unit"].as_str()?.to_string(),
            ));
        }
    }
    let warnings = v["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Some((out, warnings))
}

fn merged(a: &Metadata, b: &Metadata) -> Metadata {
    let mut out = a.clone();
    for (k, v) in b {
        out.entry(k.clone()).or_default().extend(v.iter().cloned());
    }
    out
}

#[test]
fn metadata_of_a_prometheus_pair_through_queriers() {
    let Some(prometheus) = require_binary("prometheus") else {
        return;
    };
    const IP: &str = "127.0.47";
    let dir = tempfile::tempdir().unwrap();
    // The scrape target: a skein process's own /metrics (HELP and TYPE
    // for every metric).
    let target_addr = format!("{IP}.30:0");
    let target = Process::start(
        "target",
        &[
            "synthetic",
            "--grpc-address",
            &target_addr,
            "--http-address",
            &target_addr,
            "--cluster.disable",
            "--targets",
            "1",
        ],
    )
    .unwrap();
    let seed = format!("{IP}.1:10900");
    let q1 = start_node(
        "query-1",
        "query",
        &format!("{IP}.1"),
        None,
        &[
            "--query.replica-label",
            "replica",
            "--store.response-timeout",
            "2s",
        ],
    )
    .unwrap();
    let PrometheusPair {
        mut proms,
        prom_addrs,
        sidecars: _sidecars,
    } = start_prometheus_pair(&prometheus, dir.path(), IP, &seed, target.http).unwrap();
    let q1_grpc = q1.grpc.to_string();
    let q2 = Process::start(
        "query-2",
        &[
            "query",
            "--grpc-address",
            &format!("{IP}.2:0"),
            "--http-address",
            &format!("{IP}.2:0"),
            "--cluster.disable",
            "--endpoint",
            &q1_grpc,
            "--query.replica-label",
            "replica",
        ],
    )
    .unwrap();
    wait_for("both sidecars healthy", Duration::from_secs(60), || {
        healthy_members(q1.http).is_some_and(|(_, h)| h == 2)
    })
    .unwrap();
    wait_for("the stacked querier", Duration::from_secs(60), || {
        healthy_members(q2.http).is_some_and(|(_, h)| h == 1)
    })
    .unwrap();
    // Both Prometheus have scraped the target, and their metadata settled.
    let mut want = Metadata::new();
    wait_for(
        "metadata in both Prometheus",
        Duration::from_secs(60),
        || {
            let (Some((a, _)), Some((b, _))) =
                (metadata(prom_addrs[0], ""), metadata(prom_addrs[1], ""))
            else {
                return false;
            };
            want = merged(&a, &b);
            a.contains_key("skein_store_grpc_requests_total") && a == b
        },
    )
    .unwrap();

    for (name, q) in [("querier", &q1), ("stacked querier", &q2)] {
        let (got, warnings) = metadata(q.http, "").unwrap();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(got, want, "{name}: metadata differs from Prometheus'");
        // One metric, and a limit, as Prometheus answers them.
        let one = "?metric=skein_store_grpc_requests_total";
        assert_eq!(
            metadata(q.http, one).unwrap().0,
            metadata(prom_addrs[0], one).unwrap().0,
            "{name}"
        );
        assert_eq!(metadata(q.http, "?limit=2").unwrap().0.len(), 2, "{name}");
        assert!(metadata(q.http, "?metric=no_such_metric")
            .unwrap()
            .0
            .is_empty());
    }
    let bad = get_json(q1.http, "/api/v1/metadata?limit=x");
    assert!(bad.is_err(), "a bad limit is a 400");

    // Prometheus b goes down: the answer comes from a, and says that b's
    // sidecar did not answer.
    proms[1].kill();
    wait_for(
        "a warning naming replica b",
        Duration::from_secs(30),
        || {
            metadata(q1.http, "").is_some_and(|(got, w)| {
                got == want && w.iter().any(|w| w.contains("replica=\"b\""))
            })
        },
    )
    .unwrap();
}
