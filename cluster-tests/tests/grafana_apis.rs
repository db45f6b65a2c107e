//! What Grafana asks a Prometheus for beyond queries, across the cluster:
//! two real Prometheus 2.42 (an HA pair scraping the same target) behind
//! sidecars, a querier that finds them by gossip, and a second querier
//! stacked on the first. The queriers' `/api/v1/metadata` equals what the
//! two Prometheus answer (merged, each entry once), `/api/v1/targets`
//! shows the pair's one target once (each replica's view without
//! deduplication), rules and alerts equal each Prometheus', exemplars
//! (exemplar storage on, a target exposing them) equal the pair's joined,
//! a client built from Thanos' field tables reads Info and each service,
//! and with one Prometheus down the answers come from the other with a
//! warning naming the missing one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use skein_cluster_tests::exemplar_target::ExemplarTarget;
use skein_cluster_tests::thanos_client::{self as thanos, Exemplars, Metadata};
use skein_cluster_tests::{
    get_json, healthy_members, http_get, require_binary, start_node,
    start_prometheus_pair_with_rules, wait_for, Process, PrometheusPair,
};

/// Rules both Prometheus evaluate: a recording rule, an alert that fires
/// at once, one that stays pending.
const RULES: &str = r#"groups:
  - name: skein-rules
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: TargetUp
        expr: up == 1
        labels:
          severity: info
        annotations:
          summary: "{{ $labels.instance }} is up"
      - alert: UpForAnHour
        expr: up == 1
        for: 1h
"#;

/// `/api/v1/rules` (with `query`) without what changes between
/// evaluations (times, values), sorted; and the warnings.
fn rules(addr: SocketAddr, query: &str) -> Option<(Vec<String>, Vec<String>)> {
    let v = get_json(addr, &format!("/api/v1/rules{query}")).ok()?;
    if v["status"] != "success" {
        return None;
    }
    let mut out = Vec::new();
    for g in v["data"]["groups"].as_array()? {
        for r in g["rules"].as_array()? {
            let mut alerts: Vec<String> = r["alerts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|a| format!("{} {} {}", a["labels"], a["annotations"], a["state"]))
                        .collect()
                })
                .unwrap_or_default();
            alerts.sort();
            out.push(format!(
                "{} {} | {} {} {} {} {} {} {} {} {:?}",
                g["name"],
                g["interval"],
                r["type"],
                r["name"],
                r["query"],
                r["labels"],
                r["annotations"],
                r["duration"],
                r["state"],
                r["health"],
                alerts
            ));
        }
    }
    out.sort();
    let warnings = warnings_of(&v);
    Some((out, warnings))
}

/// `/api/v1/alerts`: (labels, state) of each alert, sorted.
fn alerts(addr: SocketAddr) -> Option<Vec<String>> {
    let v = get_json(addr, "/api/v1/alerts").ok()?;
    let mut out: Vec<String> = v["data"]["alerts"]
        .as_array()?
        .iter()
        .map(|a| format!("{} {} {}", a["labels"], a["annotations"], a["state"]))
        .collect();
    out.sort();
    Some(out)
}

/// The warnings of an API answer.
fn warnings_of(v: &serde_json::Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

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
    let warnings = warnings_of(&v);
    Some((out, warnings))
}

/// `/api/v1/targets` (with `query`): the active targets' fields that do
/// not change between scrapes, sorted, and the dropped targets' count.
fn targets(addr: SocketAddr, query: &str) -> Option<(Vec<String>, usize, Vec<String>)> {
    let v = get_json(addr, &format!("/api/v1/targets{query}")).ok()?;
    if v["status"] != "success" {
        return None;
    }
    let mut active: Vec<String> = v["data"]["activeTargets"]
        .as_array()?
        .iter()
        .map(|t| {
            let mut t = t.clone();
            for changing in ["lastScrape", "lastScrapeDuration", "lastError", "health"] {
                t.as_object_mut()?.remove(changing);
            }
            Some(t.to_string())
        })
        .collect::<Option<_>>()?;
    active.sort();
    let dropped = v["data"]["droppedTargets"].as_array()?.len();
    let warnings = warnings_of(&v);
    Some((active, dropped, warnings))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn exemplars_path(query: &str, start_ms: i64, end_ms: i64, extra: &str) -> String {
    format!(
        "/api/v1/query_exemplars?query={}&start={}&end={}{extra}",
        percent_encode(query),
        start_ms as f64 / 1000.0,
        end_ms as f64 / 1000.0
    )
}

/// `/api/v1/query_exemplars`: each series' exemplars in the answer's
/// order, and the warnings.
fn exemplars(
    addr: SocketAddr,
    query: &str,
    (start_ms, end_ms): (i64, i64),
    extra: &str,
) -> Option<(Exemplars, Vec<String>)> {
    let v = get_json(addr, &exemplars_path(query, start_ms, end_ms, extra)).ok()?;
    if v["status"] != "success" {
        return None;
    }
    let map = |v: &serde_json::Value| -> Option<BTreeMap<String, String>> {
        v.as_object()?
            .iter()
            .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()
    };
    let mut out = Exemplars::new();
    for d in v["data"].as_array()? {
        let list = out.entry(map(&d["seriesLabels"])?).or_default();
        for e in d["exemplars"].as_array()? {
            let ts = (e["timestamp"].as_f64()? * 1000.0).round() as i64;
            list.push((ts, map(&e["labels"])?, e["value"].as_str()?.to_string()));
        }
    }
    Some((out, warnings_of(&v)))
}

/// Two Prometheus' exemplars joined: each series' once, in time order.
fn joined(a: &Exemplars, b: &Exemplars) -> Exemplars {
    let mut out = a.clone();
    for (series, list) in b {
        let l = out.entry(series.clone()).or_default();
        l.extend(list.iter().cloned());
        l.sort();
        l.dedup();
    }
    out
}

/// Each series' exemplars as one Prometheus answer, with `replica` added.
fn labelled(e: &Exemplars, replica: &str) -> Exemplars {
    e.iter()
        .map(|(s, l)| {
            let mut s = s.clone();
            s.insert("replica".into(), replica.into());
            (s, l.clone())
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn merged(a: &Metadata, b: &Metadata) -> Metadata {
    let mut out = a.clone();
    for (k, v) in b {
        out.entry(k.clone()).or_default().extend(v.iter().cloned());
    }
    out
}

#[test]
fn metadata_targets_rules_and_alerts_of_a_prometheus_pair_through_queriers() {
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
    // A target whose counters and histogram carry exemplars.
    let exemplar_target = ExemplarTarget::start(&format!("{IP}.31")).unwrap();
    let began = now_ms();
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
        sidecars,
    } = start_prometheus_pair_with_rules(
        &prometheus,
        dir.path(),
        IP,
        &seed,
        &[target.http, exemplar_target.addr],
        Some(RULES),
    )
    .unwrap();
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
        let one_each = metadata(q.http, "?limit_per_metric=1").unwrap().0;
        assert_eq!(one_each.len(), want.len());
        assert!(one_each.values().all(|m| m.len() == 1), "{name}");
        assert!(metadata(q.http, "?metric=no_such_metric")
            .unwrap()
            .0
            .is_empty());
    }
    // Label names and values, and series, over all time (no start or
    // end), as each Prometheus answers them; deduplicated, without the
    // replica label.
    for path in [
        "/api/v1/labels",
        "/api/v1/label/job/values",
        "/api/v1/series?match[]=up",
    ] {
        let want = get_json(prom_addrs[0], path).unwrap()["data"].clone();
        assert!(
            want.as_array().is_some_and(|a| a.len() >= 2),
            "{path}: {want}"
        );
        for (name, q) in [("querier", &q1), ("stacked querier", &q2)] {
            let got = get_json(q.http, path).unwrap()["data"].clone();
            assert_eq!(got, want, "{name}: {path}");
        }
    }
    // Targets: the pair scrapes two targets; deduplicated, the queriers
    // show each once, as each Prometheus does (their sidecars add the
    // replica label, which deduplication takes off again).
    let (prom_targets, prom_dropped, _) = targets(prom_addrs[0], "").unwrap();
    assert_eq!(prom_targets.len(), 2, "{prom_targets:?}");
    assert_eq!(targets(prom_addrs[1], "").unwrap().0, prom_targets);
    for (name, q) in [("querier", &q1), ("stacked querier", &q2)] {
        let (got, dropped, warnings) = targets(q.http, "").unwrap();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(got, prom_targets, "{name}");
        assert_eq!(dropped, prom_dropped, "{name}");
        assert_eq!(targets(q.http, "?state=active").unwrap().0, prom_targets);
        assert!(targets(q.http, "?state=dropped").unwrap().0.is_empty());
        assert!(targets(q.http, "?state=nonsense").unwrap().0.is_empty());
        for (pool, count) in [("skein", 1), ("skein-2", 1), ("nope", 0)] {
            let query = format!("?scrapePool={pool}");
            let (want, want_dropped, _) = targets(prom_addrs[0], &query).unwrap();
            assert_eq!(want.len(), count, "{query}: {want:?}");
            let (got, got_dropped, _) = targets(q.http, &query).unwrap();
            assert_eq!((got, got_dropped), (want, want_dropped), "{name}: {query}");
        }
        // Without deduplication, each replica's view, labelled.
        let both = targets(q.http, "?dedup=false").unwrap().0;
        assert_eq!(both.len(), 4, "{name}: {both:?}");
        assert!(
            both.iter().any(|t| t.contains(r#""replica":"a""#)),
            "{both:?}"
        );
    }

    // Rules and alerts: both Prometheus evaluate the same file; the
    // queriers show each group and rule once (the sidecars add the replica
    // label to the rules' labels, deduplication takes it off again).
    let mut prom_rules = Vec::new();
    wait_for("both Prometheus firing", Duration::from_secs(60), || {
        let (Some((a, _)), Some((b, _))) = (rules(prom_addrs[0], ""), rules(prom_addrs[1], ""))
        else {
            return false;
        };
        prom_rules = a.clone();
        a == b && a.iter().any(|r| r.contains("\"firing\""))
    })
    .unwrap();
    assert_eq!(prom_rules.len(), 3, "{prom_rules:?}");
    let prom_alerts = alerts(prom_addrs[0]).unwrap();
    assert_eq!(prom_alerts.len(), 4, "{prom_alerts:?}");
    for (name, q) in [("querier", &q1), ("stacked querier", &q2)] {
        let (got, warnings) = rules(q.http, "").unwrap();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(got, prom_rules, "{name}");
        assert_eq!(
            rules(q.http, "?type=alert").unwrap().0,
            rules(prom_addrs[0], "?type=alert").unwrap().0,
            "{name}"
        );
        assert_eq!(
            rules(q.http, "?type=record").unwrap().0,
            rules(prom_addrs[0], "?type=record").unwrap().0,
            "{name}"
        );
        assert_eq!(alerts(q.http).unwrap(), prom_alerts, "{name}");
        // Without deduplication, each replica's rules, labelled.
        let both = rules(q.http, "?dedup=false").unwrap().0;
        assert_eq!(both.len(), 6, "{name}: {both:?}");
        // The filters newer Prometheus and Thanos apply (2.42 has none).
        let named = rules(q.http, "?rule_name[]=TargetUp&rule_name[]=job:up:sum")
            .unwrap()
            .0;
        assert_eq!(named.len(), 2, "{name}: {named:?}");
        let matched = rules(q.http, "?match[]=%7Bseverity%3D%22info%22%7D")
            .unwrap()
            .0;
        assert_eq!(matched.len(), 1, "{name}: {matched:?}");
        assert!(matched[0].contains("TargetUp"), "{matched:?}");
        assert!(rules(q.http, "?rule_group[]=nope").unwrap().0.is_empty());
        assert_eq!(
            rules(q.http, "?rule_group[]=skein-rules").unwrap().0,
            prom_rules
        );
    }
    assert!(get_json(q1.http, "/api/v1/rules?type=nonsense").is_err());

    // Exemplars: both Prometheus keep those of the target's counters and
    // histogram buckets; the queriers answer the pair's joined, each once,
    // in time order. Read until a moment both have surely stored.
    let queries = [
        "skein_test_exemplar_requests_total",
        "rate(skein_test_exemplar_latency_seconds_bucket{le!=\"+Inf\"}[5m])",
        "sum(rate(skein_test_exemplar_requests_total{path=\"/b\"}[1m])) / on() group_left up",
    ];
    let mut checked = 0;
    wait_for(
        "the queriers' exemplars to equal the pair's",
        Duration::from_secs(60),
        || {
            let range = (began, now_ms() - 5_000);
            for query in queries {
                let (Some((a, _)), Some((b, _))) = (
                    exemplars(prom_addrs[0], query, range, ""),
                    exemplars(prom_addrs[1], query, range, ""),
                ) else {
                    return false;
                };
                // A few windows each.
                if a.is_empty() || a.values().any(|l| l.len() < 3) {
                    return false;
                }
                let want = joined(&a, &b);
                for q in [&q1, &q2] {
                    match exemplars(q.http, query, range, "") {
                        Some((got, w)) if got == want && w.is_empty() => {}
                        _ => return false,
                    }
                }
                checked += 1;
            }
            true
        },
    )
    .unwrap();
    assert_eq!(checked, queries.len());
    let range = (began, now_ms() - 5_000);
    let query = "skein_test_exemplar_requests_total";
    let (a, _) = exemplars(prom_addrs[0], query, range, "").unwrap();
    let (b, _) = exemplars(prom_addrs[1], query, range, "").unwrap();
    assert_eq!(a.len(), 2, "two series: {a:?}");
    // Without deduplication, each replica's series, labelled.
    let (both, _) = exemplars(q1.http, query, range, "&dedup=false").unwrap();
    assert_eq!(both, joined(&labelled(&a, "a"), &labelled(&b, "b")));
    // A matcher on the replica label picks that Prometheus' alone.
    let (only_b, _) = exemplars(
        q1.http,
        "skein_test_exemplar_requests_total{replica=\"b\"}",
        range,
        "&dedup=false",
    )
    .unwrap();
    assert_eq!(only_b, labelled(&b, "b"));
    let (none, _) = exemplars(
        q1.http,
        "skein_test_exemplar_requests_total{replica=\"c\"}",
        range,
        "",
    )
    .unwrap();
    assert!(none.is_empty(), "{none:?}");
    // Over one window both replicas hold, the querier's body is the very
    // bytes Prometheus writes.
    let one = "skein_test_exemplar_requests_total{path=\"/b\"}";
    let ts = a
        .values()
        .flatten()
        .map(|e| e.0)
        .find(|t| b.values().flatten().any(|e| e.0 == *t))
        .unwrap();
    let path = exemplars_path(one, ts - 500, ts + 500, "");
    let (status, prom_body) = http_get(prom_addrs[0], &path).unwrap();
    assert_eq!(status, 200);
    assert!(prom_body.contains(".123"), "{prom_body}");
    assert_eq!(http_get(q1.http, &path).unwrap().1, prom_body);
    // Without start and end: all the pair keeps (the sidecars leave the
    // open ends to Prometheus).
    wait_for("exemplars over all time", Duration::from_secs(30), || {
        let all = |addr| {
            let v = get_json(addr, &format!("/api/v1/query_exemplars?query={query}")).ok()?;
            let n: usize = v["data"]
                .as_array()?
                .iter()
                .map(|d| d["exemplars"].as_array().map_or(0, Vec::len))
                .sum();
            Some(n)
        };
        let (Some(a), Some(got)) = (all(prom_addrs[0]), all(q1.http)) else {
            return false;
        };
        a >= 6 && got >= a
    })
    .unwrap();
    // What Prometheus refuses, the queriers refuse.
    for bad in [
        "/api/v1/query_exemplars?query=up%7B",
        "/api/v1/query_exemplars?query=up&start=10&end=5",
        "/api/v1/query_exemplars?query=up&start=x",
    ] {
        let (want, _) = http_get(prom_addrs[0], bad).unwrap();
        let (got, _) = http_get(q1.http, bad).unwrap();
        assert_eq!((got, want), (400, 400), "{bad}");
    }

    // TSDB statistics: the pair's head (Prometheus counts it on the first
    // call, then keeps the numbers for 5 minutes) and the queriers' count
    // of the series of the last 2 h agree.
    let prom_stats = get_json(prom_addrs[0], "/api/v1/status/tsdb").unwrap();
    for q in [&q1, &q2] {
        let stats = get_json(q.http, "/api/v1/status/tsdb?limit=100000").unwrap();
        assert_eq!(
            stats["data"]["headStats"]["numSeries"],
            prom_stats["data"]["headStats"]["numSeries"]
        );
        for list in [
            "seriesCountByMetricName",
            "labelValueCountByLabelName",
            "memoryInBytesByLabelName",
            "seriesCountByLabelValuePair",
        ] {
            let want = prom_stats["data"][list].as_array().unwrap();
            assert_eq!(want.len(), 10, "{list}: {want:?}");
            let got = stats["data"][list].as_array().unwrap();
            for w in want {
                assert!(got.contains(w), "{list}: {w} not in {got:?}");
            }
        }
    }
    let top = get_json(q1.http, "/api/v1/status/tsdb?limit=3").unwrap();
    assert_eq!(
        top["data"]["seriesCountByMetricName"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(get_json(q1.http, "/api/v1/status/tsdb?limit=0").is_err());

    let bad = get_json(q1.http, "/api/v1/metadata?limit=x");
    assert!(bad.is_err(), "a bad limit is a 400");

    // A Thanos querier's view: Info offers the four services, and each
    // answers, from a sidecar (its Prometheus' own, with the replica
    // label) and from a querier (the pair's, as they are).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (addr, component) in [(sidecars[0].grpc, "sidecar"), (q1.grpc, "query")] {
            let offers = thanos::info(addr).await.unwrap();
            assert_eq!(
                offers,
                thanos::Offers {
                    component: component.into(),
                    metric_metadata: true,
                    targets: true,
                    rules: true,
                    exemplars: true,
                }
            );
        }
        let a = metadata(prom_addrs[0], "").unwrap().0;
        assert_eq!(thanos::metadata(sidecars[0].grpc).await.unwrap(), a);
        assert_eq!(thanos::metadata(q1.grpc).await.unwrap(), want);

        let (side_targets, _) = thanos::targets(sidecars[0].grpc).await.unwrap();
        assert_eq!(side_targets.len(), 2, "{side_targets:?}");
        assert!(
            side_targets
                .iter()
                .all(|t| t.1.get("replica").map(String::as_str) == Some("a") && t.2 == 1),
            "{side_targets:?}"
        );
        let (both_targets, _) = thanos::targets(q1.grpc).await.unwrap();
        assert_eq!(both_targets.len(), 4, "{both_targets:?}");

        let side_rules = thanos::rules(sidecars[0].grpc).await.unwrap();
        assert_eq!(side_rules.len(), 3, "{side_rules:?}");
        assert!(
            side_rules.iter().all(|r| r.contains("\"replica\": \"a\"")),
            "{side_rules:?}"
        );
        assert!(
            side_rules
                .iter()
                .any(|r| r.contains("TargetUp") && r.contains("state 3")),
            "{side_rules:?}"
        );
        assert_eq!(thanos::rules(q1.grpc).await.unwrap().len(), 6);

        let (start, end) = (began, now_ms() - 5_000);
        let (a, _) = exemplars(prom_addrs[0], query, (start, end), "").unwrap();
        let (b, _) = exemplars(prom_addrs[1], query, (start, end), "").unwrap();
        let side = thanos::exemplars(sidecars[0].grpc, query, start, end)
            .await
            .unwrap();
        assert_eq!(side, labelled(&a, "a"));
        let through = thanos::exemplars(q1.grpc, query, start, end).await.unwrap();
        assert_eq!(through, joined(&labelled(&a, "a"), &labelled(&b, "b")));
    });

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
    let (got, _, warnings) = targets(q1.http, "").unwrap();
    assert_eq!(got, prom_targets);
    assert!(
        warnings.iter().any(|w| w.contains("replica=\"b\"")),
        "{warnings:?}"
    );
    assert_eq!(rules(q1.http, "").unwrap().0, prom_rules);
    assert_eq!(alerts(q1.http).unwrap(), prom_alerts);
    let range = (began, now_ms() - 5_000);
    let (a, _) = exemplars(prom_addrs[0], query, range, "").unwrap();
    let (got, warnings) = exemplars(q1.http, query, range, "").unwrap();
    assert_eq!(got, a);
    assert!(
        warnings.iter().any(|w| w.contains("replica=\"b\"")),
        "{warnings:?}"
    );
}
