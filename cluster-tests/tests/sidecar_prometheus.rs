//! Two real Prometheus 2.42 replicas (external labels replica="a" and "b")
//! scrape the same target; a sidecar in front of each joins a querier's
//! cluster by gossip. The querier deduplicates them, keeps both without
//! deduplication, warns when one Prometheus is down, and the sidecar comes
//! back by itself when it returns.

use std::time::Duration;

use futures::StreamExt;
use skein::model::time::now_ms;
use skein::model::{MatchOp, Matcher};
use skein::store::{ClientConfig, RemoteStore, SeriesFrame, SeriesRequest, Store};
use skein_cluster_tests::{
    healthy_members, require_binary, start_node, start_prometheus, start_prometheus_pair, wait_for,
    Process, PrometheusPair,
};

async fn up(q: &RemoteStore, dedup: bool) -> (Vec<String>, Vec<String>) {
    let mut req = SeriesRequest::new(
        now_ms() - 600_000,
        now_ms(),
        vec![Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()],
    );
    if dedup {
        req.without_replica_labels = vec!["replica".into()];
    }
    let (mut series, mut warnings) = (Vec::new(), Vec::new());
    match q.series(req).await {
        Ok(mut s) => {
            while let Some(f) = s.next().await {
                match f {
                    Ok(SeriesFrame::Series(x)) => series.push(x.labels.to_string()),
                    Ok(SeriesFrame::Warning(w)) => warnings.push(w),
                    Err(e) => warnings.push(format!("error: {e}")),
                }
            }
        }
        Err(e) => warnings.push(format!("error: {e}")),
    }
    (series, warnings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_serve_a_prometheus_pair_through_a_querier() {
    let Some(prometheus) = require_binary("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The scrape target: a skein process's own /metrics.
    let target = Process::start(
        "target",
        &[
            "synthetic",
            "--grpc-address",
            "127.0.3.30:0",
            "--http-address",
            "127.0.3.30:0",
            "--cluster.disable",
            "--targets",
            "1",
        ],
    )
    .unwrap();
    let seed = "127.0.3.1:10900";
    let q = start_node(
        "query",
        "query",
        "127.0.3.1",
        None,
        &[
            "--store.health-check-interval",
            "500ms",
            "--query.replica-label",
            "replica",
            "--store.response-timeout",
            "2s",
        ],
    )
    .unwrap();
    let PrometheusPair {
        mut proms,
        sidecars,
        ..
    } = start_prometheus_pair(&prometheus, dir.path(), "127.0.3", seed, target.http).unwrap();
    wait_for(
        "both sidecars healthy in the querier",
        Duration::from_secs(60),
        || healthy_members(q.http).is_some_and(|(_, healthy)| healthy == 2),
    )
    .unwrap();
    let querier = RemoteStore::connect_lazy(&q.grpc.to_string(), &ClientConfig::default()).unwrap();
    // Wait for both replicas to have scraped.
    let start = std::time::Instant::now();
    loop {
        let (series, warnings) = up(&querier, false).await;
        if series.len() == 2 && warnings.is_empty() {
            assert!(
                series.iter().any(|s| s.contains("replica=\"a\""))
                    && series.iter().any(|s| s.contains("replica=\"b\"")),
                "{series:?}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no scrapes: {series:?} {warnings:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (series, warnings) = up(&querier, true).await;
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(!series[0].contains("replica"), "{series:?}");
    assert!(warnings.is_empty(), "{warnings:?}");

    // Prometheus b goes down: answers from a, with a warning naming b's sidecar.
    let b_sidecar = sidecars[1].grpc.to_string();
    proms[1].kill();
    let start = std::time::Instant::now();
    loop {
        let (series, warnings) = up(&querier, true).await;
        if warnings.iter().any(|w| w.contains(&b_sidecar)) {
            assert_eq!(series.len(), 1, "{series:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no warning for the dead replica: {series:?} {warnings:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // It comes back on its data directory; the sidecar recovers by itself.
    proms[1] = start_prometheus(
        &prometheus,
        &dir.path().join("b"),
        "127.0.3.12:9090",
        "b",
        target.http,
    )
    .unwrap();
    let start = std::time::Instant::now();
    loop {
        let (series, warnings) = up(&querier, false).await;
        if series.len() == 2 && warnings.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "replica b did not come back: {series:?} {warnings:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
