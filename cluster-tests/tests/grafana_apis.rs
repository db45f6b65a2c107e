//! What Grafana asks a Prometheus for beyond queries, across the cluster:
//! two real Prometheus 2.42 (an HA pair scraping the same target) behind
//! sidecars, a querier that finds them by gossip, and a second querier
//! stacked on the first. The queriers' `/api/v1/metadata` equals what the
//! two Prometheus answer (merged, each entry once), `/api/v1/targets`
//! shows the pair's one target once (each replica's view without
//! deduplication), a client built from Thanos' field tables reads
//! `thanos.Metadata` and Info, and with one Prometheus down the answers
//! come from the other with a warning naming the missing one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use skein_cluster_tests::{
    get_json, healthy_members, require_binary, start_node, start_prometheus_pair_with_rules,
    wait_for, Process, PrometheusPair,
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

type Metadata = BTreeMap<String, BTreeSet<(String, String, String)>>;

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

/// A client of Thanos' services, its messages written out from Thanos'
/// field tables (pkg/metadata/metadatapb/rpc.proto, pkg/info/infopb), not
/// from skein's protos.
mod thanos {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadataRequest {
        #[prost(string, tag = "1")]
        pub metric: String,
        #[prost(int32, tag = "2")]
        pub limit: i32,
        #[prost(int32, tag = "3")]
        pub partial_response_strategy: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadataResponse {
        #[prost(oneof = "Frame", tags = "1, 2")]
        pub result: Option<Frame>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Frame {
        #[prost(message, tag = "1")]
        Metadata(MetricMetadata),
        #[prost(string, tag = "2")]
        Warning(String),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(map = "string, message", tag = "1")]
        pub metadata: HashMap<String, MetricMetadataEntry>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadataEntry {
        #[prost(message, repeated, tag = "2")]
        pub metas: Vec<Meta>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Meta {
        #[prost(string, tag = "1")]
        pub r#type: String,
        #[prost(string, tag = "2")]
        pub help: String,
        #[prost(string, tag = "3")]
        pub unit: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InfoRequest {}

    /// thanos.info.InfoResponse: only what is checked here.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InfoResponse {
        #[prost(string, tag = "2")]
        pub component_type: String,
        #[prost(message, optional, tag = "5")]
        pub metric_metadata: Option<Empty>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}

    async fn grpc(
        addr: std::net::SocketAddr,
    ) -> anyhow::Result<tonic::client::Grpc<tonic::transport::Channel>> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let mut g = tonic::client::Grpc::new(channel);
        g.ready().await?;
        Ok(g)
    }

    /// `/thanos.info.Info/Info`: the component and whether it offers
    /// metric metadata.
    pub async fn info(addr: std::net::SocketAddr) -> anyhow::Result<(String, bool)> {
        let mut g = grpc(addr).await?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/thanos.info.Info/Info");
        let codec = tonic_prost::ProstCodec::<InfoRequest, InfoResponse>::default();
        let r = g
            .unary(tonic::Request::new(InfoRequest {}), path, codec)
            .await?
            .into_inner();
        Ok((r.component_type, r.metric_metadata.is_some()))
    }

    /// `/thanos.Metadata/MetricMetadata` with every entry, read as a
    /// Thanos querier reads it.
    pub async fn metadata(addr: std::net::SocketAddr) -> anyhow::Result<super::Metadata> {
        let mut g = grpc(addr).await?;
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/thanos.Metadata/MetricMetadata");
        let codec =
            tonic_prost::ProstCodec::<MetricMetadataRequest, MetricMetadataResponse>::default();
        let req = MetricMetadataRequest {
            metric: String::new(),
            limit: -1,
            partial_response_strategy: 0,
        };
        let mut stream = g
            .server_streaming(tonic::Request::new(req), path, codec)
            .await?
            .into_inner();
        let mut out = super::Metadata::new();
        while let Some(frame) = stream.message().await? {
            match frame.result {
                Some(Frame::Metadata(m)) => {
                    for (name, entry) in m.metadata {
                        let set = out.entry(name).or_default();
                        for meta in entry.metas {
                            set.insert((meta.r#type, meta.help, meta.unit));
                        }
                    }
                }
                Some(Frame::Warning(w)) => anyhow::bail!("warning: {w}"),
                None => anyhow::bail!("an empty frame"),
            }
        }
        Ok(out)
    }
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
        target.http,
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
        assert!(metadata(q.http, "?metric=no_such_metric")
            .unwrap()
            .0
            .is_empty());
    }
    // Targets: the pair scrapes one target; deduplicated, the queriers
    // show it once, as each Prometheus does (their sidecars add the
    // replica label, which deduplication takes off again).
    let (prom_targets, prom_dropped, _) = targets(prom_addrs[0], "").unwrap();
    assert_eq!(prom_targets.len(), 1, "{prom_targets:?}");
    assert_eq!(targets(prom_addrs[1], "").unwrap().0, prom_targets);
    for (name, q) in [("querier", &q1), ("stacked querier", &q2)] {
        let (got, dropped, warnings) = targets(q.http, "").unwrap();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(got, prom_targets, "{name}");
        assert_eq!(dropped, prom_dropped, "{name}");
        assert_eq!(targets(q.http, "?state=active").unwrap().0, prom_targets);
        assert!(targets(q.http, "?state=dropped").unwrap().0.is_empty());
        assert!(targets(q.http, "?state=nonsense").unwrap().0.is_empty());
        // Without deduplication, each replica's view, labelled.
        let both = targets(q.http, "?dedup=false").unwrap().0;
        assert_eq!(both.len(), 2, "{name}: {both:?}");
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
    assert_eq!(prom_alerts.len(), 2, "{prom_alerts:?}");
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
    }
    assert!(get_json(q1.http, "/api/v1/rules?type=nonsense").is_err());

    let bad = get_json(q1.http, "/api/v1/metadata?limit=x");
    assert!(bad.is_err(), "a bad limit is a 400");

    // A Thanos querier's view: Info offers metric metadata, and the
    // service answers, from a sidecar (its Prometheus' own) and from a
    // querier (the pair's, merged).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (component, offers) = thanos::info(sidecars[0].grpc).await.unwrap();
        assert_eq!((component.as_str(), offers), ("sidecar", true));
        let (component, offers) = thanos::info(q1.grpc).await.unwrap();
        assert_eq!((component.as_str(), offers), ("query", true));
        let a = metadata(prom_addrs[0], "").unwrap().0;
        assert_eq!(thanos::metadata(sidecars[0].grpc).await.unwrap(), a);
        assert_eq!(thanos::metadata(q1.grpc).await.unwrap(), want);
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
}
