//! `skein synthetic`: an in-memory store of generated series served over the
//! Store API. Tests and the demo use it as a stand-in for real sources.

pub mod follow;
pub mod generator;

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use generator::{generate, GeneratorConfig, SERIES_PER_TARGET};

use crate::api::{self, Readiness};
use crate::cluster::{advertised, Cluster, NodeAdvert};
use crate::store::{MemStore, PeerType, Store, StoreInfo};

#[derive(Debug, Clone)]
pub struct SyntheticConfig {
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
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
}

/// Binds the configured addresses, joins the cluster when configured, then
/// serves until `shutdown` is canceled. `on_bound` learns the bound
/// addresses (tests bind port 0).
pub async fn run(
    cfg: SyntheticConfig,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    let store = build_store(&cfg)?;
    let grpc = api::bind("--grpc-address", &cfg.grpc_address).await?;
    let http = api::bind("--http-address", &cfg.http_address).await?;
    let bound = Bound {
        grpc: grpc.local_addr()?,
        http: http.local_addr()?,
    };
    crate::telemetry::metrics();
    let info = store.info().await?;
    let gossip = match &cfg.cluster {
        Some(c) => {
            let c = &crate::cluster::resolve(c).await?;
            let node_ip = c.advertise_ip();
            let advert = NodeAdvert {
                version: env!("CARGO_PKG_VERSION").to_string(),
                peer_type: info.peer_type,
                component: "synthetic".into(),
                label_sets: info.label_sets.clone(),
                store_group_id: info.store_group_id.clone(),
                grpc_address: advertised(bound.grpc, node_ip),
                http_address: advertised(bound.http, node_ip),
                min_time: info.min_time,
                max_time: if cfg.follow { i64::MAX } else { info.max_time },
                ready: true,
                leaving: false,
                incomplete: false,
            };
            Some((Cluster::join(c, &advert).await?, advert, c.gossip_interval))
        }
        None => None,
    };
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
    let readiness = Readiness::default();
    let follow_stop = CancellationToken::new();
    let (store, follow_task): (Arc<dyn Store>, _) = if cfg.follow {
        let following = Arc::new(follow::FollowingStore::new(store));
        let task =
            follow::spawn_follow_task(Arc::clone(&following), cfg.clone(), follow_stop.clone());
        (following, Some(task))
    } else {
        (Arc::new(store), None)
    };
    let http_task = tokio::spawn(api::serve(
        http,
        api::base_router(readiness.clone()),
        shutdown.clone(),
    ));
    readiness.set(true);
    // Serve until asked to stop; then leave the cluster before the servers
    // go, so queriers stop routing here first.
    let server_stop = CancellationToken::new();
    let mut grpc_task = tokio::spawn(crate::store::serve(grpc, store, server_stop.clone()));
    tokio::select! {
        _ = shutdown.cancelled() => {}
        r = &mut grpc_task => {
            shutdown.cancel();
            r.context("gRPC server task")?.context("gRPC server failed")?;
            anyhow::bail!("gRPC server stopped unexpectedly");
        }
    }
    readiness.set(false);
    if let Some((cluster, advert, interval)) = &gossip {
        cluster.leave(advert, *interval * 3).await;
    }
    server_stop.cancel();
    follow_stop.cancel();
    if let Some(task) = follow_task {
        let _ = task.await;
    }
    grpc_task
        .await
        .context("gRPC server task")?
        .context("gRPC server failed")?;
    http_task
        .await
        .context("HTTP server task")?
        .context("HTTP server failed")?;
    Ok(())
}
