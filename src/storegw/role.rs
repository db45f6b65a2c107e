//! Running a store gateway: listeners, the first sync, gossip identity
//! (STORE, the bucket as store group, labels and time range of the blocks,
//! kept current after every sync), serving, and an orderly stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{BlockLoader, GatewayStore, Syncer, TimeBound};
use crate::api::{self, Readiness};
use crate::cluster::{advertised, Cluster, ClusterConfig, NodeAdvert};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub grpc_address: String,
    pub http_address: String,
    pub cluster: Option<ClusterConfig>,
    pub sync_interval: Duration,
    pub min_time: TimeBound,
    pub max_time: TimeBound,
    pub limits: super::store::GatewayLimits,
}

/// Addresses a running gateway listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
}

/// Serves the blocks `loader` finds, as store group `group_id`, until
/// `shutdown`.
pub async fn run_with(
    cfg: GatewayConfig,
    loader: Arc<dyn BlockLoader>,
    group_id: String,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    crate::telemetry::metrics();
    super::sync::describe();
    let grpc = api::bind("--grpc-address", &cfg.grpc_address).await?;
    let http = api::bind("--http-address", &cfg.http_address).await?;
    let bound = Bound {
        grpc: grpc.local_addr()?,
        http: http.local_addr()?,
    };
    let store = Arc::new(
        GatewayStore::new(group_id.clone(), cfg.min_time, cfg.max_time).with_limits(cfg.limits),
    );
    let mut syncer = Syncer::new(loader, store.clone());
    let readiness = Readiness::default();
    let http_task = tokio::spawn(api::serve(
        http,
        api::base_router(readiness.clone()),
        shutdown.clone(),
    ));
    let server_stop = CancellationToken::new();
    let dyn_store: Arc<dyn Store> = store.clone();
    let mut grpc_task = tokio::spawn(crate::store::serve(grpc, dyn_store, server_stop.clone()));
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
                    _ = shutdown.cancelled() => return stop(server_stop, grpc_task, http_task).await,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }

    let gossip = match &cfg.cluster {
        Some(c) => {
            let c = &crate::cluster::resolve(c).await?;
            let advert = advert_for(&store, bound, c.advertise_ip()).await?;
            Some((Cluster::join(c, &advert).await?, advert, c.gossip_interval))
        }
        None => None,
    };
    readiness.set(true);

    // Later syncs keep the gossiped labels and time range current.
    let (changed_tx, mut changed_rx) = tokio::sync::watch::channel(());
    let sync_task = tokio::spawn(syncer.run(cfg.sync_interval, shutdown.clone(), move |_| {
        let _ = changed_tx.send(());
    }));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = &mut grpc_task => {
                shutdown.cancel();
                r.context("gRPC server task")?.context("gRPC server failed")?;
                anyhow::bail!("gRPC server stopped unexpectedly");
            }
            c = changed_rx.changed() => {
                if c.is_err() {
                    break;
                }
                if let Some((cluster, advert, _)) = &gossip {
                    let mut a = advert_for(&store, bound, advert_ip(advert)).await?;
                    a.ready = true;
                    cluster.set_advert(&a).await;
                }
            }
        }
    }
    readiness.set(false);
    if let Some((cluster, advert, interval)) = &gossip {
        cluster.leave(advert, *interval * 3).await;
    }
    let _ = sync_task.await;
    stop(server_stop, grpc_task, http_task).await
}

fn advert_ip(a: &NodeAdvert) -> std::net::IpAddr {
    a.grpc_address.ip()
}

async fn advert_for(
    store: &GatewayStore,
    bound: Bound,
    ip: std::net::IpAddr,
) -> anyhow::Result<NodeAdvert> {
    let info = store.info().await?;
    Ok(NodeAdvert {
        version: env!("CARGO_PKG_VERSION").to_string(),
        peer_type: info.peer_type,
        component: "store".into(),
        label_sets: info.label_sets,
        store_group_id: info.store_group_id,
        grpc_address: advertised(bound.grpc, ip),
        http_address: advertised(bound.http, ip),
        min_time: info.min_time,
        max_time: info.max_time,
        ready: true,
        leaving: false,
        incomplete: store.has_missing_blocks(),
    })
}

async fn stop(
    server_stop: CancellationToken,
    grpc_task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    http_task: tokio::task::JoinHandle<std::io::Result<()>>,
) -> anyhow::Result<()> {
    server_stop.cancel();
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
