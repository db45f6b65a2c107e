//! `skein query`: a querier node. It joins the cluster, learns every store
//! from gossip and `--endpoint`, checks their health, groups them, and
//! serves the cluster views and the Prometheus HTTP API over HTTP and the
//! cluster's data over the Store API (as a QUERY peer, so queriers stack).

mod shared_view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::actors::registry::GetRegistry;
use crate::actors::system::ActorSystem;
use crate::actors::{RegistryConfig, StoreRegistry};
use crate::api;
use crate::api::cluster::ClusterState;
use crate::api::prom::PromApi;
use crate::cluster::membership::{GetMembership, Subscribe};
use crate::cluster::{ClusterConfig, Membership};
use crate::model::time::format_duration;
use crate::node::Node;
use crate::promql::{Engine, EngineConfig};
use crate::query::{Querier, QueryConfig};
use crate::store::PeerType;

#[derive(Debug, Clone)]
pub struct QuerierConfig {
    /// The Store API server's limits (`--grpc.*`).
    pub grpc_limits: crate::store::ServeLimits,
    /// TLS and authentication of the node's servers.
    pub security: crate::node::Security,
    pub http_address: String,
    pub grpc_address: String,
    pub cluster: Option<ClusterConfig>,
    pub registry: RegistryConfig,
    /// TLS to the stores (`--grpc-client-tls-*`) and the name their
    /// certificates must carry; loaded at start, reloaded on change.
    pub grpc_client_tls: Option<(crate::security::tls::ClientOptions, Option<String>)>,
    /// Networks gossiped Store API addresses must be in (`--cluster.allowed-endpoints`).
    pub allowed_endpoints: Vec<ipnet::IpNet>,
    pub query: QueryConfig,
    /// PromQL evaluation limits of the Prometheus HTTP API.
    pub engine: EngineConfig,
    /// Where the HTTP routes and the UI's links live (`--web.*`).
    pub web: api::ui::WebPaths,
}

impl QuerierConfig {
    /// The flags `/api/v1/status/flags` reports: those that shape answers.
    pub fn flags(&self) -> BTreeMap<String, String> {
        let q = &self.query;
        let e = &self.engine;
        let ms = |d: Duration| format_duration(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        [
            ("http-address", self.http_address.clone()),
            ("web.route-prefix", self.web.route_prefix.clone()),
            ("web.external-prefix", self.web.external_prefix.clone()),
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
            (
                "grpc-client-tls-secure",
                self.grpc_client_tls.is_some().to_string(),
            ),
            (
                "cluster.allowed-endpoints",
                self.allowed_endpoints
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("query.replica-label", q.replica_labels.join(",")),
            ("query.partial-response", q.partial_response.to_string()),
            ("query.hedge", format!("{:?}", q.route.hedge).to_lowercase()),
            ("store.response-timeout", ms(q.route.response_timeout)),
            (
                "query.hedge-budget",
                q.route
                    .budget
                    .ratio
                    .map_or_else(|| "none".to_string(), |r| format!("{}%", r * 100.0)),
            ),
            ("query.hedge-budget-burst", q.route.budget.burst.to_string()),
            ("query.probe-interval", ms(q.route.probe_interval)),
            (
                "deduplication.func",
                format!("{:?}", q.dedup_func).to_lowercase(),
            ),
            ("query.lookback-delta", format_duration(e.lookback_delta_ms)),
            ("query.timeout", ms(e.timeout)),
            ("query.max-samples", e.max_samples.to_string()),
            ("query.max-fetched-bytes", e.max_fetched_bytes.to_string()),
            (
                "grpc.max-concurrent-requests",
                self.grpc_limits.max_concurrent.to_string(),
            ),
            ("grpc.send-timeout", ms(self.grpc_limits.send_timeout)),
            ("grpc.request-timeout", ms(self.grpc_limits.request_timeout)),
            ("query.max-concurrent", e.max_concurrent.to_string()),
            (
                "query.max-concurrent-metadata",
                e.max_concurrent_metadata.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Addresses a running querier listens on.
pub use crate::node::Bound;

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
    let mut node = Node::bind(&cfg.grpc_address, &cfg.http_address, &cfg.security).await?;
    if let Some((tls, server_name)) = &cfg.grpc_client_tls {
        cfg.registry.client.tls = Some(crate::store::ClientTls {
            config: tls.reloading("grpc-client-tls")?,
            server_name: server_name.clone(),
        });
    }

    // Gossip first: the advertised addresses depend on it, and the
    // registry must not take this node's own Store API for a store.
    if let Some(c) = &cfg.cluster {
        node.join(c, "query", PeerType::Query, |_| {}).await?;
        cfg.registry.self_grpc = node.advert().map(|a| a.grpc_address);
    }
    let live = match node.cluster() {
        Some((cluster, c)) => Some((
            cluster.self_id().clone(),
            !c.peers.is_empty(),
            cluster.live_nodes().await,
        )),
        None => None,
    };
    let rt = tokio::runtime::Handle::current();
    let registry_cfg = cfg.registry.clone();
    let allowed = cfg.allowed_endpoints.clone();
    let (actor_system, (actors, topology)) = ActorSystem::start(move || {
        let registry = StoreRegistry::new(registry_cfg, rt);
        let topology = registry.topology();
        let registry = registry.start();
        let membership = live.map(|(id, expects_peers, live)| {
            let m = Membership::new(id, expects_peers, live)
                .with_allowed_endpoints(allowed)
                .start();
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

    // Members' latency and failures, shared with the other queriers when
    // in a cluster.
    let gossip = match node.cluster() {
        Some((cluster, _)) => Some(shared_view::Gossip {
            keys: cluster.key_writer(),
            live: cluster.live_nodes().await,
            self_node: cluster.self_id().node_id.to_string(),
        }),
        None => None,
    };
    shared_view::SharedView {
        gossip,
        topology: topology.clone(),
    }
    .spawn(shutdown.clone());
    let querier = Querier::new(topology, cfg.query.clone());
    let engine = Engine::new(Arc::new(querier.clone()), cfg.engine.clone());
    let prom = PromApi::new(engine, querier.clone()).with_flags(cfg.flags());
    node.serve_grpc(Arc::new(querier.clone()), cfg.grpc_limits);
    let keyring = node.cluster().map(|(c, _)| c.keyring());
    node.serve_http_at(
        &cfg.web,
        api::cluster::router(ClusterState {
            registry: actors.registry.clone(),
            membership: actors.membership.clone(),
            gossip_keys: keyring
                .map(|k| Arc::new(move || crate::cluster::gossip_keys(k.as_ref())) as Arc<_>),
        })
        .merge(prom.router())
        .merge(api::ui::router(&cfg.web)),
    );
    let bound = node.bound();
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
            node.set_ready(true).await;
            info!("querier ready");
            break;
        }
    }
    let served = node.serve_until(&shutdown).await;
    let stopped = node.stop().await;
    tokio::task::spawn_blocking(move || actor_system.stop()).await?;
    served.and(stopped)
}

async fn is_ready(actors: &Actors) -> bool {
    let joined = match &actors.membership {
        Some(m) => matches!(m.send(GetMembership).await, Ok(s) if s.joined),
        None => true,
    };
    joined && matches!(actors.registry.send(GetRegistry).await, Ok(s) if s.first_round_done)
}
