//! A node's life, written once for every role: bind the Store API and HTTP
//! listeners, join gossip with an advert, serve a store over gRPC and a
//! router over HTTP (with `/-/healthy`, `/-/ready` and `/metrics`), track
//! readiness, and stop in one order: not ready, leave the cluster (so
//! queriers stop routing here first), then drain and stop the gRPC server,
//! then the HTTP server. A role supplies its store, its routes, its advert
//! and its own tasks; transport concerns every node shares belong here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Readiness};
use crate::cluster::{advertised, Cluster, ClusterConfig, NodeAdvert};
use crate::model::time::{MAX_TIME, MIN_TIME};
use crate::security::reload::Reloading;
use crate::security::tls::ServerOptions;
use crate::security::web::Web;
use crate::store::{PeerType, Store};

/// Transport security of a node's servers; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// TLS on the Store API server (`--grpc-server-tls-*`).
    pub grpc_tls: Option<ServerOptions>,
    /// The Prometheus web configuration file of the HTTP server
    /// (`--http.config`): TLS, basic auth, headers.
    pub http_config: Option<std::path::PathBuf>,
}

/// Addresses a running node listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

struct Gossip {
    cluster: Cluster,
    advert: NodeAdvert,
    interval: Duration,
    /// The configuration with its seeds resolved.
    config: ClusterConfig,
}

/// A node between binding and stopping.
pub struct Node {
    bound: Bound,
    grpc: Option<TcpListener>,
    http: Option<TcpListener>,
    grpc_tls: Option<Arc<Reloading<rustls::ServerConfig>>>,
    web: Option<Arc<Web>>,
    readiness: Readiness,
    gossip: Option<Gossip>,
    grpc_stop: CancellationToken,
    http_stop: CancellationToken,
    grpc_task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    http_task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Node {
    /// Installs the process's metrics recorder, loads the TLS settings and
    /// binds both listeners; an address that cannot be bound, or a
    /// certificate that cannot be loaded, is an error naming its flag.
    pub async fn bind(
        grpc_address: &str,
        http_address: &str,
        security: &Security,
    ) -> anyhow::Result<Self> {
        crate::telemetry::metrics();
        let grpc_tls = match &security.grpc_tls {
            Some(o) => Some(o.clone().reloading("grpc-server-tls")?),
            None => None,
        };
        let web = match &security.http_config {
            Some(path) => Some(Web::load(path)?),
            None => None,
        };
        let grpc = api::bind("--grpc-address", grpc_address).await?;
        let http = api::bind("--http-address", http_address).await?;
        Ok(Self {
            bound: Bound {
                grpc: grpc.local_addr()?,
                http: http.local_addr()?,
            },
            grpc: Some(grpc),
            http: Some(http),
            grpc_tls,
            web,
            readiness: Readiness::default(),
            gossip: None,
            grpc_stop: CancellationToken::new(),
            http_stop: CancellationToken::new(),
            grpc_task: None,
            http_task: None,
        })
    }

    pub fn bound(&self) -> Bound {
        self.bound
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Joins the cluster `cfg` describes. `advert` gets an advert with this
    /// node's advertised addresses and the given component and peer type,
    /// the whole time range, not ready, and fills in the rest.
    pub async fn join(
        &mut self,
        cfg: &ClusterConfig,
        component: &str,
        peer_type: PeerType,
        advert: impl FnOnce(&mut NodeAdvert),
    ) -> anyhow::Result<()> {
        let config = crate::cluster::resolve(cfg).await?;
        let ip = config.advertise_ip();
        let mut a = NodeAdvert {
            version: env!("CARGO_PKG_VERSION").to_string(),
            peer_type,
            component: component.into(),
            label_sets: vec![],
            store_group_id: String::new(),
            grpc_address: advertised(self.bound.grpc, ip),
            http_address: advertised(self.bound.http, ip),
            min_time: MIN_TIME,
            max_time: MAX_TIME,
            ready: false,
            leaving: false,
            incomplete: false,
        };
        advert(&mut a);
        let cluster = Cluster::join(&config, &a).await?;
        self.gossip = Some(Gossip {
            cluster,
            advert: a,
            interval: config.gossip_interval,
            config,
        });
        Ok(())
    }

    /// The running gossip node and its resolved configuration, if joined.
    pub fn cluster(&self) -> Option<(&Cluster, &ClusterConfig)> {
        self.gossip.as_ref().map(|g| (&g.cluster, &g.config))
    }

    /// The advert this node gossips, if joined.
    pub fn advert(&self) -> Option<&NodeAdvert> {
        self.gossip.as_ref().map(|g| &g.advert)
    }

    /// Changes what this node gossips (nothing when it has not joined).
    pub async fn update_advert(&mut self, change: impl FnOnce(&mut NodeAdvert)) {
        if let Some(g) = &mut self.gossip {
            let mut a = g.advert.clone();
            change(&mut a);
            if a != g.advert {
                g.cluster.set_advert(&a).await;
                g.advert = a;
            }
        }
    }

    /// Gossips one key beyond the advert (nothing when not joined).
    pub async fn set_gossip_key(&self, key: &str, value: &str) {
        if let Some(g) = &self.gossip {
            g.cluster.set_key(key, value).await;
        }
    }

    /// Ready or not, on `/-/ready` and in gossip.
    pub async fn set_ready(&mut self, ready: bool) {
        self.readiness.set(ready);
        self.update_advert(|a| a.ready = ready).await;
    }

    /// Serves `store` over the Store API (once).
    pub fn serve_grpc(&mut self, store: Arc<dyn Store>, limits: crate::store::ServeLimits) {
        if let Some(listener) = self.grpc.take() {
            self.grpc_task = Some(tokio::spawn(crate::store::serve_secured(
                listener,
                store,
                limits,
                self.grpc_tls.clone(),
                self.grpc_stop.clone(),
            )));
        }
    }

    /// Serves `routes` and the base routes over HTTP (once).
    pub fn serve_http(&mut self, routes: Router) {
        self.serve_http_at(&api::ui::WebPaths::default(), routes);
    }

    /// [`Self::serve_http`] with every route (health and metrics too)
    /// under `paths`' route prefix.
    pub fn serve_http_at(&mut self, paths: &api::ui::WebPaths, routes: Router) {
        if let Some(listener) = self.http.take() {
            let router = paths.mount(api::base_router(self.readiness.clone()).merge(routes));
            let opts = api::ServeOptions {
                web: self.web.clone(),
                ..Default::default()
            };
            self.http_task = Some(tokio::spawn(api::serve_with(
                listener,
                router,
                opts,
                self.http_stop.clone(),
            )));
        }
    }

    /// Waits for `shutdown`; a gRPC server that stops first is an error
    /// (and cancels `shutdown`).
    pub async fn serve_until(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let Some(task) = self.grpc_task.as_mut() else {
            shutdown.cancelled().await;
            return Ok(());
        };
        tokio::select! {
            _ = shutdown.cancelled() => Ok(()),
            r = task => {
                self.grpc_task = None;
                shutdown.cancel();
                r.context("gRPC server task")?.context("gRPC server failed")?;
                anyhow::bail!("gRPC server stopped unexpectedly")
            }
        }
    }

    /// Stops in the one order: not ready; leave the cluster and give gossip
    /// three rounds to carry it; stop the gRPC server (requests in flight
    /// drain, bounded); stop the HTTP server.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.readiness.set(false);
        if let Some(g) = &self.gossip {
            g.cluster.leave(&g.advert, g.interval * 3).await;
        }
        self.grpc_stop.cancel();
        if let Some(task) = self.grpc_task.take() {
            task.await
                .context("gRPC server task")?
                .context("gRPC server failed")?;
        }
        self.http_stop.cancel();
        if let Some(task) = self.http_task.take() {
            task.await
                .context("HTTP server task")?
                .context("HTTP server failed")?;
        }
        Ok(())
    }
}
