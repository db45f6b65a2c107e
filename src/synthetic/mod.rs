//! `skein synthetic`: an in-memory store of generated series served over the
//! Store API. Tests and the demo use it as a stand-in for real sources.

pub mod generator;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use generator::{generate, GeneratorConfig, SERIES_PER_TARGET};

use crate::api::{self, Readiness};
use crate::store::{MemStore, PeerType, Store, StoreInfo};

#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    pub grpc_address: String,
    pub http_address: String,
    pub peer_type: PeerType,
    pub store_group_id: String,
    pub generator: GeneratorConfig,
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
    };
    Ok(MemStore::new(info, series)?)
}

/// Addresses a running synthetic store listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
}

/// Binds the configured addresses, then serves until `shutdown` is canceled.
/// `on_bound` learns the bound addresses (tests bind port 0).
pub async fn run(
    cfg: SyntheticConfig,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    let store = build_store(&cfg)?;
    let grpc = TcpListener::bind(&cfg.grpc_address)
        .await
        .with_context(|| format!("cannot listen on --grpc-address {}", cfg.grpc_address))?;
    let http = TcpListener::bind(&cfg.http_address)
        .await
        .with_context(|| format!("cannot listen on --http-address {}", cfg.http_address))?;
    let bound = Bound {
        grpc: grpc.local_addr()?,
        http: http.local_addr()?,
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
    serve(store, grpc, http, shutdown).await
}

async fn serve(
    store: MemStore,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    crate::telemetry::metrics();
    let readiness = Readiness::default();
    let store: Arc<dyn Store> = Arc::new(store);
    let http_task = tokio::spawn(api::serve(
        http,
        api::base_router(readiness.clone()),
        shutdown.clone(),
    ));
    readiness.set(true);
    let grpc_result = crate::store::serve(grpc, store, shutdown.clone()).await;
    readiness.set(false);
    shutdown.cancel();
    grpc_result.context("gRPC server failed")?;
    http_task
        .await
        .context("HTTP server task")?
        .context("HTTP server failed")?;
    Ok(())
}
