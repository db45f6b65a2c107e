//! `skein sidecar`: serves a real Prometheus over the Store API and
//! announces it in gossip as a SOURCE. Series come from remote read with
//! Prometheus' own XOR chunks (see [`remote_read`]), external labels from
//! Prometheus' configuration, readiness from Prometheus' own.

pub mod prom_api;
pub mod remote_read;
pub mod shipper;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{self, Readiness};
use crate::cluster::{advertised, Cluster, ClusterConfig, NodeAdvert};
use crate::model::time::{now_ms, MAX_TIME, MIN_TIME};
use crate::store::{PeerType, Store};
pub use store::{PromState, PrometheusStore};

#[derive(Debug, Clone)]
pub struct SidecarConfig {
    pub prometheus_url: String,
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
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
}

/// Reads Prometheus' state once. A Prometheus without external labels is a
/// configuration error: its replicas could not be told apart.
async fn probe(store: &PrometheusStore) -> Result<PromState, (bool, String)> {
    if !store.api().ready().await {
        return Err((false, format!("{} is not ready", store.api().base())));
    }
    let labels = store
        .api()
        .external_labels()
        .await
        .map_err(|e| (false, e.to_string()))?;
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
        last_error: None,
    })
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
    crate::telemetry::metrics();
    shipper::describe();
    let store = PrometheusStore::new(&cfg.prometheus_url, cfg.prometheus_timeout)?
        .with_group_id(cfg.store_group_id.clone());
    let grpc = api::bind("--grpc-address", &cfg.grpc_address).await?;
    let http = api::bind("--http-address", &cfg.http_address).await?;
    let bound = Bound {
        grpc: grpc.local_addr()?,
        http: http.local_addr()?,
    };
    let readiness = Readiness::default();
    let http_stop = CancellationToken::new();
    let http_task = tokio::spawn(api::serve(
        http,
        api::base_router(readiness.clone()),
        http_stop.clone(),
    ));
    let grpc_stop = CancellationToken::new();
    let served: Arc<dyn Store> = Arc::new(store.clone());
    let grpc_task = tokio::spawn(crate::store::serve(grpc, served, grpc_stop.clone()));
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
    info!(grpc = %bound.grpc, http = %bound.http, prometheus = %cfg.prometheus_url, "sidecar started");
    on_bound(bound);

    let gossip = match &cfg.cluster {
        Some(c) => {
            let c = &crate::cluster::resolve(c).await?;
            let ip = c.advertise_ip();
            let advert = NodeAdvert {
                version: env!("CARGO_PKG_VERSION").to_string(),
                peer_type: PeerType::Source,
                component: "sidecar".into(),
                label_sets: vec![],
                store_group_id: cfg.store_group_id.clone(),
                grpc_address: advertised(bound.grpc, ip),
                http_address: advertised(bound.http, ip),
                min_time: MIN_TIME,
                max_time: MAX_TIME,
                ready: false,
                leaving: false,
                incomplete: false,
            };
            Some((Cluster::join(c, &advert).await?, advert, c.gossip_interval))
        }
        None => None,
    };

    // Follow Prometheus: readiness, external labels, retention.
    let mut tick = tokio::time::interval(cfg.refresh_interval);
    let mut last: Option<PromState> = None;
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
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
            readiness.set(state.ready);
            store.set_state(state.clone());
            if let Some((cluster, advert, _)) = &gossip {
                let mut a = advert.clone();
                a.ready = state.ready;
                a.label_sets = vec![state.external_labels.clone()];
                a.min_time = state.min_time;
                cluster.set_advert(&a).await;
            }
            last = Some(state);
        }
        // Check often until Prometheus is ready, then at the set interval.
        if !last.as_ref().is_some_and(|s| s.ready) {
            tick.reset_after(Duration::from_millis(500).min(cfg.refresh_interval));
        }
    };

    readiness.set(false);
    if let Some((cluster, advert, interval)) = &gossip {
        cluster.leave(advert, *interval * 3).await;
    }
    grpc_stop.cancel();
    http_stop.cancel();
    grpc_task
        .await
        .context("gRPC server task")?
        .context("gRPC server failed")?;
    http_task
        .await
        .context("HTTP server task")?
        .context("HTTP server failed")?;
    result
}
