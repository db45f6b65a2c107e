//! `skein query`: a querier node. It joins the cluster, learns every store
//! from gossip and `--endpoint`, checks their health, groups them, and
//! serves the cluster views and the Prometheus HTTP API over HTTP and the
//! cluster's data over the Store API (as a QUERY peer, so queriers stack).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::actors::registry::GetRegistry;
use crate::actors::system::ActorSystem;
use crate::actors::{RegistryConfig, StoreRegistry};
use crate::api::cluster::ClusterState;
use crate::api::prom::PromApi;
use crate::api::{self, Readiness};
use crate::cluster::membership::{GetMembership, Subscribe};
use crate::cluster::{advertised, Cluster, ClusterConfig, Membership, NodeAdvert};
use crate::model::time::format_duration;
use crate::model::time::{MAX_TIME, MIN_TIME};
use crate::promql::{Engine, EngineConfig};
use crate::query::{Querier, QueryConfig};
use crate::store::{PeerType, Store};

#[derive(Debug, Clone)]
pub struct QuerierConfig {
    pub http_address: String,
    pub grpc_address: String,
    pub cluster: Option<ClusterConfig>,
    pub registry: RegistryConfig,
    pub query: QueryConfig,
    /// PromQL evaluation limits of the Prometheus HTTP API.
    pub engine: EngineConfig,
}

impl QuerierConfig {
    /// The flags `/api/v1/status/flags` reports: those that shape answers.
    pub fn flags(&self) -> BTreeMap<String, String> {
        let q = &self.query;
        let e = &self.engine;
        let ms = |d: Duration| format_duration(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        [
            ("http-address", self.http_address.clone()),
            ("grpc-address", self.grpc_address.clone()),
            ("endpoint", self.registry.endpoints.join(",")),
            ("endpoint-strict", self.registry.strict_endpoints.join(",")),
            (
                "endpoint-group",
                self.registry
                    .endpoint_groups
                    .iter()
                    .map(|g| g.join(","))
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            ("query.replica-label", q.replica_labels.join(",")),
            ("query.partial-response", q.partial_response.to_string()),
            ("query.hedge", format!("{:?}", q.route.hedge).to_lowercase()),
            ("store.response-timeout", ms(q.route.response_timeout)),
            (
                "deduplication.func",
                format!("{:?}", q.dedup_func).to_lowercase(),
            ),
            ("query.lookback-delta", format_duration(e.lookback_delta_ms)),
            ("query.timeout", ms(e.timeout)),
            ("query.max-samples", e.max_samples.to_string()),
            ("query.max-concurrent", e.max_concurrent.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Addresses a running querier listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

struct Actors {
    registry: Addr<StoreRegistry>,
    membership: Option<Addr<Membership>>,
}

/// Runs a querier until `shutdown` is canceled.
pub async fn run(
    mut cfg: QuerierConfig,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    crate::telemetry::metrics();
    let http = api::bind("--http-address", &cfg.http_address).await?;
    let http_addr = http.local_addr()?;
    let grpc = api::bind("--grpc-address", &cfg.grpc_address).await?;
    let grpc_addr = grpc.local_addr()?;

    // Gossip first: the advertised addresses depend on it.
    let (gossip, advert) = match &cfg.cluster {
        Some(c) => {
            let c = &crate::cluster::resolve(c).await?;
            let node_ip = c.advertise_ip();
            let advert = NodeAdvert {
                version: env!("CARGO_PKG_VERSION").to_string(),
                peer_type: PeerType::Query,
                component: "query".into(),
                label_sets: vec![],
                store_group_id: String::new(),
                grpc_address: advertised(grpc_addr, node_ip),
                http_address: advertised(http_addr, node_ip),
                min_time: MIN_TIME,
                max_time: MAX_TIME,
                ready: false,
                leaving: false,
                incomplete: false,
            };
            cfg.registry.self_grpc = Some(advert.grpc_address);
            let cluster = Cluster::join(c, &advert).await?;
            (Some((cluster, c.clone())), Some(advert))
        }
        None => (None, None),
    };

    let rt = tokio::runtime::Handle::current();
    let live = match &gossip {
        Some((cluster, c)) => Some((
            cluster.self_id().clone(),
            !c.peers.is_empty(),
            cluster.live_nodes().await,
        )),
        None => None,
    };
    let registry_cfg = cfg.registry.clone();
    let (actor_system, actors) = ActorSystem::start(move || {
        let registry = StoreRegistry::new(registry_cfg, rt);
        let topology = registry.topology();
        let registry = registry.start();
        let membership = live.map(|(id, expects_peers, live)| {
            let m = Membership::new(id, expects_peers, live).start();
            m.do_send(Subscribe(registry.clone().recipient()));
            m
        });
        (
            Actors {
                registry,
                membership,
            },
            topology,
        )
    })?;
    let (actors, topology) = actors;

    let querier = Querier::new(topology, cfg.query.clone());
    let engine = Engine::new(Arc::new(querier.clone()), cfg.engine.clone());
    let prom = PromApi::new(engine, querier.clone()).with_flags(cfg.flags());
    let grpc_stop = CancellationToken::new();
    let store: Arc<dyn Store> = Arc::new(querier.clone());
    let grpc_task = tokio::spawn(crate::store::serve(grpc, store, grpc_stop.clone()));

    let readiness = Readiness::default();
    let router = api::base_router(readiness.clone())
        .merge(api::cluster::router(ClusterState {
            registry: actors.registry.clone(),
            membership: actors.membership.clone(),
        }))
        .merge(prom.router());
    let http_stop = CancellationToken::new();
    let http_task = tokio::spawn(api::serve(http, router, http_stop.clone()));
    let bound = Bound {
        http: http_addr,
        grpc: grpc_addr,
    };
    info!(http = %bound.http, grpc = %bound.grpc, "querier started");
    on_bound(bound);

    // Ready once gossip has joined and every known store was checked once.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if is_ready(&actors).await {
            readiness.set(true);
            if let (Some((cluster, _)), Some(advert)) = (&gossip, &advert) {
                let mut a = advert.clone();
                a.ready = true;
                cluster.set_advert(&a).await;
            }
            info!("querier ready");
            break;
        }
    }
    shutdown.cancelled().await;

    // Shutdown order: not ready, leave the cluster, stop serving, stop actors.
    readiness.set(false);
    if let (Some((cluster, c)), Some(advert)) = (&gossip, &advert) {
        cluster.leave(advert, c.gossip_interval * 3).await;
    }
    http_stop.cancel();
    grpc_stop.cancel();
    http_task
        .await
        .context("HTTP server task")?
        .context("HTTP server failed")?;
    grpc_task
        .await
        .context("gRPC server task")?
        .context("gRPC server failed")?;
    tokio::task::spawn_blocking(move || actor_system.stop()).await?;
    Ok(())
}

async fn is_ready(actors: &Actors) -> bool {
    let joined = match &actors.membership {
        Some(m) => matches!(m.send(GetMembership).await, Ok(s) if s.joined),
        None => true,
    };
    joined && matches!(actors.registry.send(GetRegistry).await, Ok(s) if s.first_round_done)
}
