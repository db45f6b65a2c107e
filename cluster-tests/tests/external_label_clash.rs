//! A target whose series carry a label named like the external label of
//! the Prometheus pair scraping it (`replica`, as federated or relabelled
//! data often does): the sidecars put the external label on the others,
//! which reorders the series beyond neighbours, and still every answer is
//! whole and sorted, equal to Prometheus'.

use std::collections::BTreeSet;
use std::time::Duration;

use skein_cluster_tests::exemplar_target::ExemplarTarget;
use skein_cluster_tests::{
    get_json, healthy_members, require_binary, start_node, start_prometheus_pair_with_rules,
    wait_for, PrometheusPair,
};

/// Two series with their own `replica` (sorting before the others by
/// Prometheus' order, after them once the sidecars add `replica="a"`), two
/// without.
fn exposition(_now_ms: i64) -> String {
    "# TYPE t gauge\n\
     t{replica=\"z\",s=\"1\"} 1\n\
     t{s=\"0\"} 2\n\
     t{s=\"3\"} 4\n\
     t{replica=\"y\",s=\"4\"} 5\n\
     # EOF\n"
        .to_string()
}

/// `/api/v1/series?match[]=t` with `extra`: each label set as `s=..,replica=..`.
fn series(addr: std::net::SocketAddr, extra: &str) -> Option<BTreeSet<String>> {
    let v = get_json(addr, &format!("/api/v1/series?match[]=t{extra}")).ok()?;
    Some(
        v["data"]
            .as_array()?
            .iter()
            .map(|s| format!("s={},replica={}", s["s"], s["replica"]))
            .collect(),
    )
}

/// `sum by (s) (t)` at now: s -> value.
fn sums(addr: std::net::SocketAddr) -> Option<BTreeSet<(String, String)>> {
    let v = get_json(addr, "/api/v1/query?query=sum%20by%20(s)%20(t)").ok()?;
    Some(
        v["data"]["result"]
            .as_array()?
            .iter()
            .map(|r| (r["metric"]["s"].to_string(), r["value"][1].to_string()))
            .collect(),
    )
}

#[test]
fn series_with_a_label_named_like_the_external_label_stay_sorted() {
    let Some(prometheus) = require_binary("prometheus") else {
        return;
    };
    const IP: &str = "127.0.48";
    let dir = tempfile::tempdir().unwrap();
    let target = ExemplarTarget::start_with(&format!("{IP}.30"), exposition).unwrap();
    let seed = format!("{IP}.1:10900");
    let q = start_node(
        "query",
        "query",
        &format!("{IP}.1"),
        None,
        &["--query.replica-label", "replica"],
    )
    .unwrap();
    // Bound, not dropped: dropping them would stop the processes.
    let PrometheusPair {
        prom_addrs,
        proms: _proms,
        sidecars: _sidecars,
    } = start_prometheus_pair_with_rules(&prometheus, dir.path(), IP, &seed, &[target.addr], None)
        .unwrap();
    wait_for("both sidecars healthy", Duration::from_secs(60), || {
        healthy_members(q.http).is_some_and(|(_, h)| h == 2)
    })
    .unwrap();
    wait_for("both Prometheus scraped", Duration::from_secs(60), || {
        prom_addrs
            .iter()
            .all(|p| series(*p, "").is_some_and(|s| s.len() == 4))
    })
    .unwrap();

    // Each replica's series: the two without a `replica` of their own get
    // their sidecar's; the two with one keep it (and are the same series
    // from both sidecars).
    let want: BTreeSet<String> = [
        r#"s="0",replica="a""#,
        r#"s="0",replica="b""#,
        r#"s="3",replica="a""#,
        r#"s="3",replica="b""#,
        r#"s="1",replica="z""#,
        r#"s="4",replica="y""#,
    ]
    .iter()
    .map(|s| {
        let (sv, rv) = s.split_once(',').unwrap();
        format!("{sv},{rv}")
    })
    .collect();
    for round in 0..3 {
        let got = series(q.http, "&dedup=false");
        assert_eq!(got.as_ref(), Some(&want), "round {round}");
        // Deduplicated, the sums are Prometheus' own.
        assert_eq!(sums(q.http), sums(prom_addrs[0]), "round {round}");
    }
}
