//! `skein synthetic`: an in-memory store of generated series served over the
//! Store API. Tests and the demo use it as a stand-in for real sources.

pub mod follow;
pub mod generator;
pub mod slow;

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use generator::{generate, GeneratorConfig, SERIES_PER_TARGET};

use crate::node::Node;
use crate::store::{MemStore, PeerType, Store, StoreInfo};

#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    /// The Store API server's limits (`--grpc.*`).
    pub grpc_limits: crate::store::ServeLimits,
    /// TLS and authentication of the node's servers.
    pub security: crate::node::Security,
    pub grpc_address: String,
    pub http_address: String,
    /// Gossip; `None` to serve without joining a cluster.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    pub peer_type: PeerType,
    pub store_group_id: String,
    pub generator: GeneratorConfig,
    /// Slide the window with the clock, regenerating it up to now every
    /// scrape interval, as a live source would.
    pub follow: bool,
    /// `--series-delay-file`: Series answers wait as long as it says.
    pub series_delay_file: Option<std::path::PathBuf>,
}

/// Builds the store the configuration describes.
pub fn build_store(cfg: &SyntheticConfig) -> anyhow::Result<MemStore> {
    let series = generate(&cfg.generator).context("generating synthetic series")?;
    let ext = cfg.generator.external_labels.clone();
    let (min_time, max_time) = match series.iter().flat_map(|s| &s.chunks).fold(None, |acc, c| {
        Some(match acc {
            None => (c.min_time, c.max_time),
            Some((lo, hi)) => (c.min_time.min(lo), c.max_time.max(hi)),
        })
    }) {
        Some(range) => range,
        None => (cfg.generator.start_ms, cfg.generator.end_ms),
    };
    let info = StoreInfo {
        label_sets: if ext.is_empty() { vec![] } else { vec![ext] },
        min_time,
        max_time,
        peer_type: cfg.peer_type,
        store_group_id: cfg.store_group_id.clone(),
        component: cfg.peer_type.component().to_string(),
        supports_without_replica_labels: true,
    };
    Ok(MemStore::new(info, series)?)
}

/// Addresses a running synthetic store listens on.
pub use crate::node::Bound;

/// Binds the configured addresses, joins the cluster when configured, then
/// serves until `shutdown` is canceled. `on_bound` learns the bound
/// addresses (tests bind port 0).
pub async fn run(
    cfg: SyntheticConfig,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    let store = build_store(&cfg)?;
    let mut node = Node::bind(&cfg.grpc_address, &cfg.http_address, &cfg.security).await?;
    let bound = node.bound();
    let info = store.info().await?;
    if let Some(c) = &cfg.cluster {
        node.join(c, "synthetic", info.peer_type, |a| {
            a.label_sets = info.label_sets.clone();
            a.store_group_id = info.store_group_id.clone();
            a.min_time = info.min_time;
            a.max_time = if cfg.follow { i64::MAX } else { info.max_time };
            a.ready = true;
        })
        .await?;
    }
    let labels = cfg.generator.external_labels.to_string();
    info!(
        grpc = %bound.grpc,
        http = %bound.http,
        series = store.len(),
        peer_type = %cfg.peer_type,
        store_group_id = %cfg.store_group_id,
        external_labels = %labels,
        "serving synthetic data over the Store API"
    );
    on_bound(bound);
    let follow_stop = CancellationToken::new();
    let (store, follow_task): (Arc<dyn Store>, _) = if cfg.follow {
        let following = Arc::new(follow::FollowingStore::new(store));
        let task =
            follow::spawn_follow_task(Arc::clone(&following), cfg.clone(), follow_stop.clone());
        (following, Some(task))
    } else {
        (Arc::new(store), None)
    };
    let store: Arc<dyn Store> = match &cfg.series_delay_file {
        Some(file) => Arc::new(slow::SlowSeries::new(store, file.clone())),
        None => store,
    };
    node.serve_http(axum::Router::new());
    node.readiness().set(true);
    node.serve_grpc(store, cfg.grpc_limits);
    let served = node.serve_until(&shutdown).await;
    let stopped = node.stop().await;
    follow_stop.cancel();
    if let Some(task) = follow_task {
        let _ = task.await;
    }
    served.and(stopped)
}
