//! `skein frontend`: the Prometheus HTTP API in front of the queriers.
//! Range queries are split by time, answered from a results cache where it
//! holds them, sent to the queriers in parallel and hedged to a second
//! querier when the first is slow; everything else is passed on as it is.
//! It also serves the web UI.

pub mod api;
pub mod cache;
pub mod changes;
pub mod downstream;
pub mod matrix;
pub mod memcached;
pub mod metrics;
pub mod scope;
pub mod shared;
pub mod split;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::ui::WebPaths;
use crate::api::{Readiness, ServeOptions};
use crate::security::web::Web;

#[derive(Debug, Clone)]
pub struct FrontendConfig {
    pub http_address: String,
    /// The Prometheus web configuration file (`--http.config`).
    pub http_config: Option<std::path::PathBuf>,
    pub web: WebPaths,
    /// Base URLs of the queriers (`--query-frontend.downstream-url`).
    pub downstream: Vec<String>,
    /// Gossip, to find the queriers; the frontend is listed, never a
    /// store member.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    pub hedge: downstream::HedgeConfig,
    /// Longest a querier may take for one request.
    pub downstream_timeout: Duration,
    /// The results cache's budget in bytes; 0 disables it.
    pub cache_bytes: usize,
    /// A results cache shared with other frontends, if any.
    pub memcached: Option<MemcachedConfig>,
    pub settings: api::Settings,
}

#[derive(Debug, Clone)]
pub struct MemcachedConfig {
    pub addresses: Vec<String>,
    pub timeout: Duration,
    pub expiration: Duration,
}

/// Runs the frontend until `shutdown`; `on_bound` learns the HTTP address.
pub async fn run(
    cfg: FrontendConfig,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    crate::telemetry::metrics();
    metrics::describe();
    let web = match &cfg.http_config {
        Some(p) => Some(Web::load(p)?),
        None => None,
    };
    let down =
        downstream::Downstream::new(&cfg.downstream, cfg.hedge.clone(), cfg.downstream_timeout)?;
    let shared = cfg.memcached.as_ref().map(|m| {
        let trust_after =
            crate::model::time::now_ms() + cfg.settings.change_settle_time.as_millis() as i64;
        Arc::new(shared::SharedCache::new(
            memcached::Memcached::new(m.addresses.clone(), m.timeout, m.expiration),
            trust_after,
        ))
    });
    let fe = Arc::new(api::Frontend::new(
        down,
        cache::ResultsCache::new(cfg.cache_bytes),
        cfg.settings.clone(),
        shared,
    ));
    let listener = crate::api::bind("--http-address", &cfg.http_address).await?;
    let addr = listener.local_addr()?;
    let readiness = Readiness::default();
    let router = cfg.web.mount(
        crate::api::base_router(readiness.clone())
            .merge(crate::api::ui::router(&cfg.web))
            .merge(api::router(fe.clone())),
    );
    let stop = CancellationToken::new();
    let server = tokio::spawn(crate::api::serve_with(
        listener,
        router,
        ServeOptions {
            web,
            ..Default::default()
        },
        stop.clone(),
    ));
    info!(http = %addr, queriers = ?cfg.downstream, "frontend started");
    on_bound(addr);
    let gossip = match &cfg.cluster {
        Some(c) => Some(join(c, addr, &cfg.downstream, fe.clone()).await?),
        None => None,
    };

    // Ready once a querier answers.
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ready = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let ok = matches!(
            fe.down.call(reqwest::Method::GET, "/-/ready", None).await,
            Ok(r) if r.status == 200
        );
        if ok != ready {
            if ok {
                info!("frontend ready");
            } else {
                warn!("no querier is ready");
            }
            readiness.set(ok);
            ready = ok;
        }
        if ready {
            tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
        }
    }
    if let Some((cluster, advert)) = &gossip {
        cluster.leave(advert, Duration::from_millis(500)).await;
    }
    stop.cancel();
    server.await??;
    Ok(())
}

/// Joins gossip and keeps the queriers the frontend sends to: the static
/// ones and every ready querier that gossips (by its advertised HTTP
/// address).
async fn join(
    cfg: &crate::cluster::ClusterConfig,
    http: std::net::SocketAddr,
    fixed: &[String],
    fe: Arc<api::Frontend>,
) -> anyhow::Result<(crate::cluster::Cluster, crate::cluster::NodeAdvert)> {
    use crate::cluster::membership::FRONTEND_COMPONENT;
    use crate::cluster::{advertised, Cluster, NodeAdvert};
    let config = crate::cluster::resolve(cfg).await?;
    let http = advertised(http, config.advertise_ip());
    let advert = NodeAdvert {
        version: env!("CARGO_PKG_VERSION").to_string(),
        peer_type: crate::store::PeerType::Query,
        component: FRONTEND_COMPONENT.into(),
        label_sets: vec![],
        store_group_id: String::new(),
        // No Store API: its HTTP address stands in, never dialled.
        grpc_address: http,
        http_address: http,
        min_time: crate::model::time::MIN_TIME,
        max_time: crate::model::time::MAX_TIME,
        ready: true,
        leaving: false,
        incomplete: false,
    };
    let cluster = Cluster::join(&config, &advert).await?;
    let mut live = cluster.live_nodes().await;
    let fixed = fixed.to_vec();
    let self_node = cluster.self_id().node_id.to_string();
    tokio::spawn(async move {
        let mut tracker = changes::Tracker::default();
        loop {
            let mut urls = fixed.clone();
            let mut found = Vec::new();
            {
                let nodes = live.borrow();
                for (id, state) in nodes.iter() {
                    if *id.node_id == *self_node {
                        continue;
                    }
                    let Ok(a) = NodeAdvert::from_lookup(|k| state.get(k)) else {
                        continue;
                    };
                    if a.component == "query" && a.ready && !a.leaving {
                        urls.push(format!("http://{}", a.http_address));
                    }
                    found.push((
                        id.node_id.to_string(),
                        id.generation_id,
                        a,
                        state
                            .get(crate::cluster::keys::DATA_CHANGES)
                            .map(str::to_string),
                    ));
                }
            }
            // Answers a change of data can alter leave the cache at once.
            let seen =
                tracker.update(
                    found
                        .iter()
                        .map(|(node, generation, a, dc)| changes::NodeNow {
                            node,
                            generation: *generation,
                            advert: a.clone(),
                            data_changes: dc.as_deref(),
                        }),
                );
            for c in seen {
                let labels: Vec<String> = c.label_sets.iter().map(|l| l.to_string()).collect();
                let (labels, min, max) = (labels.join(" "), c.min, c.max);
                let dropped = fe.data_changed(c);
                if dropped > 0 {
                    info!(%labels, min, max, dropped, "cached answers dropped: their data changed");
                }
            }
            let before = fe.down.urls();
            fe.down.set(urls);
            let after = fe.down.urls();
            if before != after {
                info!(queriers = ?after, "queriers changed");
            }
            if live.changed().await.is_err() {
                break;
            }
        }
    });
    Ok((cluster, advert))
}
