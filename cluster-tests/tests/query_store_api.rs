//! A querier in front of a SOURCE pair (replicas a and b, b with a gap) and
//! a STORE pair, all real processes joined by gossip: its Store API returns
//! deduplicated series when asked to drop the replica label, every replica
//! otherwise, and a warning naming the replica that was killed.

use std::time::Duration;

use futures::StreamExt;
use skein::model::{MatchOp, Matcher};
use skein::store::{ClientConfig, RemoteStore, SeriesFrame, SeriesRequest, Store};
use skein_cluster_tests::{get_json, healthy_members, start_node, wait_for, Process};

const END: &str = "1700000000";
const END_MS: i64 = 1_700_000_000_000;

fn synthetic(ip: &str, seed_node: &str, extra: &[&str]) -> Process {
    let mut args = vec!["--targets", "3", "--end", END, "--window", "2h"];
    args.extend_from_slice(extra);
    start_node(
        &format!("synthetic-{ip}"),
        "synthetic",
        ip,
        Some(seed_node),
        &args,
    )
    .unwrap()
}

async fn frames(store: &RemoteStore, without: &[&str]) -> (Vec<skein::model::Series>, Vec<String>) {
    let mut req = SeriesRequest::new(
        END_MS - 3 * 3_600_000,
        END_MS,
        vec![Matcher::new(MatchOp::Equal, "__name__", "http_requests_total").unwrap()],
    );
    req.without_replica_labels = without.iter().map(|s| s.to_string()).collect();
    let mut s = store.series(req).await.unwrap();
    let (mut series, mut warnings) = (Vec::new(), Vec::new());
    while let Some(f) = s.next().await {
        match f.unwrap() {
            SeriesFrame::Series(x) => series.push(x),
            SeriesFrame::Warning(w) => warnings.push(w),
        }
    }
    (series, warnings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn querier_store_api_deduplicates_and_reports_dead_replicas() {
    let seed = "127.0.2.1:10900";
    let q = start_node(
        "query",
        "query",
        "127.0.2.1",
        None,
        &[
            "--store.health-check-interval",
            "500ms",
            "--query.replica-label",
            "replica",
            "--store.response-timeout",
            "2s",
            "--store.unhealthy-timeout",
            "6s",
        ],
    )
    .unwrap();
    let _a = synthetic("127.0.2.11", seed, &["--label", "replica=a"]);
    let mut b = synthetic(
        "127.0.2.12",
        seed,
        &["--label", "replica=b", "--gap", "1699996400..1699998200"],
    );
    let _s1 = synthetic(
        "127.0.2.21",
        seed,
        &[
            "--label",
            "tier=history",
            "--peer-type",
            "store",
            "--store-group-id",
            "bucket",
            "--seed",
            "7",
        ],
    );
    let _s2 = synthetic(
        "127.0.2.22",
        seed,
        &[
            "--label",
            "tier=history",
            "--peer-type",
            "store",
            "--store-group-id",
            "bucket",
            "--seed",
            "7",
        ],
    );
    wait_for(
        "four healthy stores in three groups",
        Duration::from_secs(20),
        || healthy_members(q.http) == Some((3, 4)),
    )
    .unwrap();

    let querier = RemoteStore::connect_lazy(&q.grpc.to_string(), &ClientConfig::default()).unwrap();
    let info = querier.info().await.unwrap();
    assert_eq!(info.peer_type, skein::store::PeerType::Query);

    // Deduplicated: 2 codes x 3 targets from the replicas, the same from the
    // STORE group (asked once), replica label gone.
    let (dedup, warnings) = frames(&querier, &["replica"]).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        dedup.len(),
        12,
        "{:?}",
        dedup
            .iter()
            .map(|s| s.labels.to_string())
            .collect::<Vec<_>>()
    );
    assert!(dedup.iter().all(|s| s.labels.get("replica").is_none()));
    for s in dedup.iter().filter(|s| s.labels.get("tier").is_none()) {
        let mut v = Vec::new();
        skein::query::merge::decode_series(&s.chunks, &mut v).unwrap();
        let widest = v.windows(2).map(|w| w[1].t - w[0].t).max().unwrap();
        assert!(widest <= 45_000, "{} has a {widest} ms gap", s.labels);
    }
    // Without deduplication: every replica.
    let (raw, _) = frames(&querier, &[]).await;
    assert_eq!(raw.len(), 18);

    // Kill replica b: before gossip declares it dead (seconds), queries
    // still plan it, and a warning names it; a's data is all there.
    let b_grpc = b.grpc.to_string();
    b.kill();
    let (after, warnings) = frames(&querier, &["replica"]).await;
    assert_eq!(after.len(), 12);
    assert!(warnings.iter().any(|w| w.contains(&b_grpc)), "{warnings:?}");
    // It died without leaving: once --store.unhealthy-timeout has passed
    // it is forgotten, and answers are complete and clean again.
    wait_for("the dead replica to leave", Duration::from_secs(30), || {
        get_json(q.http, "/api/v1/cluster").is_ok_and(|v| !v.to_string().contains(&b_grpc))
    })
    .unwrap();
    let (after, warnings) = frames(&querier, &["replica"]).await;
    assert_eq!(after.len(), 12);
    assert!(warnings.is_empty(), "{warnings:?}");
}
