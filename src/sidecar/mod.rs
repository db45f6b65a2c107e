//! `skein sidecar`: serves a real Prometheus over the Store API and
//! announces it in gossip as a SOURCE. Series come from remote read with
//! Prometheus' own XOR chunks (see [`remote_read`]), external labels from
//! Prometheus' configuration, readiness from Prometheus' own.

pub mod blocks;
pub mod client;
pub mod prom_api;
pub mod remote_read;
pub mod shipper;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cluster::ClusterConfig;
use crate::model::time::{now_ms, MIN_TIME};
use crate::node::Node;
use crate::store::{PeerType, Store};
pub use store::{PromState, PrometheusStore};

#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// The Store API server's limits (`--grpc.*`).
    pub grpc_limits: crate::store::ServeLimits,
    /// TLS and authentication of the node's servers.
    pub security: crate::node::Security,
    /// Where Prometheus is and how to reach it (`--prometheus.url`,
    /// `--prometheus.http-client`).
    pub prometheus: client::PromClientConfig,
    pub grpc_address: String,
    pub http_address: String,
    pub cluster: Option<ClusterConfig>,
    /// How often Prometheus' readiness, external labels and retention are
    /// read again.
    pub refresh_interval: Duration,
    pub prometheus_timeout: Duration,
    /// Block upload, when a bucket is configured.
    pub shipper: Option<ShipperConfig>,
    /// `--store-group-id`; empty: none (the group is its external labels).
    pub store_group_id: String,
    /// Prometheus' data directory, read for completed blocks
    /// (`--tsdb.path`, unless `--tsdb.read-blocks=false`).
    pub read_blocks: Option<std::path::PathBuf>,
    /// `--tsdb.chunk-cache-size`: memory for chunks read from those blocks.
    pub chunk_cache_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ShipperConfig {
    pub bucket: crate::objstore::BucketConfig,
    /// Prometheus' `--storage.tsdb.path`, as this process sees it.
    pub tsdb_path: std::path::PathBuf,
    /// Also upload blocks Prometheus compacted (level > 1).
    pub upload_compacted: bool,
    /// How often the tsdb directory is checked for new blocks.
    pub interval: Duration,
}

/// Addresses a running sidecar listens on.
pub use crate::node::Bound;

/// Reads Prometheus' state once. A Prometheus without external labels is a
/// configuration error: its replicas could not be told apart.
async fn probe(store: &PrometheusStore) -> Result<PromState, (bool, String)> {
    if !store.api().ready().await {
        return Err((false, format!("{} is not ready", store.api().base())));
    }
    let settings = store
        .api()
        .settings()
        .await
        .map_err(|e| (false, e.to_string()))?;
    let labels = settings.external_labels;
    if labels.is_empty() {
        return Err((
            true,
            format!(
                "prometheus at {} has no external labels; set global.external_labels (e.g. replica) so its data can be told apart",
                store.api().base()
            ),
        ));
    }
    let retention = store
        .api()
        .retention()
        .await
        .map_err(|e| (false, e.to_string()))?;
    let min_time = match retention {
        Some(r) => now_ms().saturating_sub(i64::try_from(r.as_millis()).unwrap_or(i64::MAX)),
        None => MIN_TIME,
    };
    Ok(PromState {
        ready: true,
        external_labels: labels,
        min_time,
        out_of_order_window_ms: i64::try_from(settings.out_of_order_window.as_millis())
            .unwrap_or(i64::MAX),
        last_error: None,
    })
}

/// Keeps the blocks read from Prometheus' data directory in step with it,
/// once Prometheus is ready (blocks are checked against it).
fn start_disk_sync(
    store: PrometheusStore,
    interval: Duration,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let disk = Arc::clone(store.disk()?);
    blocks::describe();
    info!(dir = %disk.dir().display(), "reading completed blocks from Prometheus' data directory");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        let mut last: Option<Result<(usize, usize, i64), String>> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !store.state().ready {
                tick.reset_after(Duration::from_millis(500).min(interval));
                continue;
            }
            let now = match disk.sync().await {
                Ok(r) => Ok((r.served.len(), r.rejected.len(), r.split)),
                Err(e) => {
                    disk.clear();
                    Err(format!("{e:#}"))
                }
            };
            if last.as_ref() != Some(&now) {
                match &now {
                    Ok((served, rejected, split)) => info!(
                        served,
                        rejected,
                        split = %crate::model::time::format_ms(*split),
                        "blocks on disk"
                    ),
                    Err(e) => {
                        warn!(error = %e, "cannot read Prometheus' data directory; everything is read over remote read")
                    }
                }
                last = Some(now);
            }
        }
    }))
}

/// Opens the bucket, then ships blocks in the background until `shutdown`.
/// Once Prometheus is ready, the tsdb directory and its block durations are
/// checked: the task ends early only on such a fatal misconfiguration.
fn start_shipper(
    sc: &ShipperConfig,
    store: PrometheusStore,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let bucket = Arc::new(crate::objstore::Bucket::open(&sc.bucket)?);
    info!(bucket = bucket.id(), tsdb = %sc.tsdb_path.display(), "uploading completed blocks");
    let ship = shipper::Shipper::new(bucket, &sc.tsdb_path, sc.upload_compacted);
    let (interval, upload_compacted) = (sc.interval, sc.upload_compacted);
    Ok(tokio::spawn(async move {
        let mut checked = false;
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let state = store.state();
            if !state.ready || state.external_labels.is_empty() {
                tick.reset_after(Duration::from_millis(500).min(interval));
                continue;
            }
            if !checked {
                // Prometheus creates its directory before it is ready.
                if !ship.tsdb().is_dir() {
                    anyhow::bail!(
                        "--tsdb.path {}: not a directory; point it at Prometheus' --storage.tsdb.path",
                        ship.tsdb().display()
                    );
                }
                match store.api().block_durations().await {
                    Ok((min, max)) if min != max && !upload_compacted => {
                        anyhow::bail!(
                            "prometheus at {} compacts its blocks (--storage.tsdb.min-block-duration {:?} != --storage.tsdb.max-block-duration {:?}): blocks could be merged before they are uploaded. Start it with both set to 2h, or pass --shipper.upload-compacted",
                            store.api().base(), min, max
                        );
                    }
                    Ok(_) => checked = true,
                    Err(e) => {
                        warn!(error = %e, "cannot read prometheus' block durations; retrying");
                        continue;
                    }
                }
            }
            match ship.sync(&state.external_labels).await {
                Ok(r) if r.failed > 0 || !r.uploaded.is_empty() => {
                    info!(
                        uploaded = r.uploaded.len(),
                        failed = r.failed,
                        "shipper sync"
                    )
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "shipper sync failed"),
            }
        }
    }))
}

pub async fn run(
    cfg: SidecarConfig,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    let mut node = Node::bind(&cfg.grpc_address, &cfg.http_address, &cfg.security).await?;
    shipper::describe();
    let mut store = PrometheusStore::with_client(&cfg.prometheus, cfg.prometheus_timeout)?
        .with_group_id(cfg.store_group_id.clone());
    if let Some(dir) = &cfg.read_blocks {
        store = store.with_disk_blocks(dir.clone(), cfg.chunk_cache_bytes);
    }
    let disk_sync = start_disk_sync(store.clone(), cfg.refresh_interval, shutdown.clone());
    let bound = node.bound();
    node.serve_http(axum::Router::new());
    let served: Arc<dyn Store> = Arc::new(store.clone());
    node.serve_grpc(served, cfg.grpc_limits);
    let shipper = match &cfg.shipper {
        Some(sc) => Some(start_shipper(sc, store.clone(), shutdown.clone())?),
        None => None,
    };
    let mut shipper_done = std::pin::pin!(async move {
        match shipper {
            Some(t) => t
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("shipper task: {e}"))),
            None => std::future::pending().await,
        }
    });
    info!(grpc = %bound.grpc, http = %bound.http, prometheus = %cfg.prometheus.url, "sidecar started");
    on_bound(bound);

    if let Some(c) = &cfg.cluster {
        node.join(c, "sidecar", PeerType::Source, |a| {
            a.store_group_id = cfg.store_group_id.clone();
        })
        .await?;
    }

    // Follow Prometheus: readiness, external labels, retention.
    let mut tick = tokio::time::interval(cfg.refresh_interval);
    let mut last: Option<PromState> = None;
    let result = loop {
        tokio::select! {
            r = node.serve_until(&shutdown) => break r,
            r = &mut shipper_done => break r.and_then(|()| Err(anyhow::anyhow!("shipper stopped"))),
            _ = tick.tick() => {}
        }
        let state = match probe(&store).await {
            Ok(s) => s,
            Err((true, fatal)) => break Err(anyhow::anyhow!(fatal)),
            Err((false, e)) => PromState {
                ready: false,
                last_error: Some(e),
                ..store.state()
            },
        };
        // The minimum time moves with the clock: publish it once it moved a
        // minute, and log only what an operator acts on.
        let (notable, moved) = match &last {
            None => (true, true),
            Some(l) => (
                l.ready != state.ready
                    || l.external_labels != state.external_labels
                    || l.last_error != state.last_error,
                l.min_time.abs_diff(state.min_time) >= 60_000,
            ),
        };
        if notable || moved {
            if !notable {
                // Only the minimum time moved.
            } else if state.ready {
                info!(external_labels = %state.external_labels, min_time = state.min_time, "prometheus ready");
            } else {
                warn!(
                    error = state.last_error.as_deref().unwrap_or(""),
                    "prometheus not ready"
                );
            }
            store.set_state(state.clone());
            node.update_advert(|a| {
                a.label_sets = vec![state.external_labels.clone()];
                a.min_time = state.min_time;
            })
            .await;
            node.set_ready(state.ready).await;
            last = Some(state);
        }
        // Check often until Prometheus is ready, then at the set interval.
        if !last.as_ref().is_some_and(|s| s.ready) {
            tick.reset_after(Duration::from_millis(500).min(cfg.refresh_interval));
        }
    };
    if let Some(t) = disk_sync {
        t.abort();
    }
    let stopped = node.stop().await;
    result.and(stopped)
}
