//! Running a store gateway: listeners, the first sync, gossip identity
//! (STORE, the bucket as store group, labels and time range of the blocks,
//! kept current after every sync), serving, and an orderly stop.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{BlockLoader, GatewayStore, Syncer, TimeBound};
use crate::cluster::{ClusterConfig, NodeAdvert};
use crate::node::Node;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The Store API server's limits (`--grpc.*`).
    pub grpc_limits: crate::store::ServeLimits,
    /// TLS and authentication of the node's servers.
    pub security: crate::node::Security,
    pub grpc_address: String,
    pub http_address: String,
    pub cluster: Option<ClusterConfig>,
    pub sync_interval: Duration,
    pub min_time: TimeBound,
    pub max_time: TimeBound,
    pub limits: super::store::GatewayLimits,
}

/// Addresses a running gateway listens on.
pub use crate::node::Bound;

/// Serves the blocks `loader` finds, as store group `group_id`, until
/// `shutdown`.
pub async fn run_with(
    cfg: GatewayConfig,
    loader: Arc<dyn BlockLoader>,
    group_id: String,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    let mut node = Node::bind(&cfg.grpc_address, &cfg.http_address, &cfg.security).await?;
    super::sync::describe();
    let bound = node.bound();
    let store = Arc::new(
        GatewayStore::new(group_id.clone(), cfg.min_time, cfg.max_time).with_limits(cfg.limits),
    );
    let mut syncer = Syncer::new(loader, store.clone());
    node.serve_http(axum::Router::new());
    let dyn_store: Arc<dyn Store> = store.clone();
    node.serve_grpc(dyn_store, cfg.grpc_limits);
    info!(grpc = %bound.grpc, http = %bound.http, group = %group_id, "store gateway started");
    on_bound(bound);

    // The first sync before anything is announced: a gateway is ready when
    // it serves what the bucket holds. A bucket that cannot be listed yet is
    // retried.
    loop {
        match syncer.sync().await {
            Ok(r) => {
                info!(
                    blocks = r.served,
                    failed = r.failed.len(),
                    "first block sync done"
                );
                break;
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot list the bucket; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return node.stop().await,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }

    if let Some(c) = &cfg.cluster {
        let info = store.info().await?;
        node.join(c, "store", info.peer_type, |a| describe(a, &info, &store))
            .await?;
    }
    node.set_ready(true).await;

    // Later syncs keep the gossiped labels and time range current, and
    // announce which blocks came or went (numbered, the latest kept), so
    // that caches in front of the queriers drop the answers they alter.
    let (changed_tx, mut changed_rx) = tokio::sync::watch::channel(());
    let pending: Arc<std::sync::Mutex<Vec<(crate::model::Labels, i64, i64)>>> = Arc::default();
    let reported = pending.clone();
    let sync_task = tokio::spawn(syncer.run(cfg.sync_interval, shutdown.clone(), move |r| {
        if let Ok(mut p) = reported.lock() {
            p.extend(r.changed.iter().cloned());
        }
        let _ = changed_tx.send(());
    }));
    let mut data_changes: Vec<(u64, i64, i64, crate::model::Labels)> = Vec::new();
    let mut seq = 0u64;
    let served = loop {
        tokio::select! {
            r = node.serve_until(&shutdown) => break r,
            c = changed_rx.changed() => {
                if c.is_err() {
                    break Ok(());
                }
                match store.info().await {
                    Ok(info) => node.update_advert(|a| describe(a, &info, &store)).await,
                    Err(e) => warn!(error = %e, "cannot describe the gateway after a sync"),
                }
                let new: Vec<_> = pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
                if !new.is_empty() {
                    use crate::cluster::keys::{format_data_changes, DATA_CHANGES, MAX_DATA_CHANGES};
                    for (labels, min, max) in new {
                        seq += 1;
                        data_changes.push((seq, min, max, labels));
                    }
                    let keep = data_changes.len().saturating_sub(MAX_DATA_CHANGES);
                    data_changes.drain(..keep);
                    node.set_gossip_key(DATA_CHANGES, &format_data_changes(&data_changes)).await;
                }
            }
        }
    };
    let stopped = node.stop().await;
    let _ = sync_task.await;
    served.and(stopped)
}

/// What a gateway gossips of itself: its blocks' label sets, group and
/// time range, and whether a block failed to load.
fn describe(a: &mut NodeAdvert, info: &crate::store::StoreInfo, store: &GatewayStore) {
    a.peer_type = info.peer_type;
    a.label_sets = info.label_sets.clone();
    a.store_group_id = info.store_group_id.clone();
    a.min_time = info.min_time;
    a.max_time = info.max_time;
    a.incomplete = store.has_missing_blocks();
}
