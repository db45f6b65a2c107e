//! `skein frontend`: the Prometheus HTTP API in front of the queriers.
//! Range queries are split by time, answered from a results cache where it
//! holds them, sent to the queriers in parallel and hedged to a second
//! querier when the first is slow; everything else is passed on as it is.
//! It also serves the web UI.

pub mod api;
pub mod cache;
pub mod downstream;
pub mod matrix;
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
    pub hedge: downstream::HedgeConfig,
    /// Longest a querier may take for one request.
    pub downstream_timeout: Duration,
    /// The results cache's budget in bytes; 0 disables it.
    pub cache_bytes: usize,
    pub settings: api::Settings,
}

/// Runs the frontend until `shutdown`; `on_bound` learns the HTTP address.
pub async fn run(
    cfg: FrontendConfig,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    crate::telemetry::metrics();
    let web = match &cfg.http_config {
        Some(p) => Some(Web::load(p)?),
        None => None,
    };
    let down =
        downstream::Downstream::new(&cfg.downstream, cfg.hedge.clone(), cfg.downstream_timeout)?;
    let fe = Arc::new(api::Frontend::new(
        down,
        cache::ResultsCache::new(cfg.cache_bytes),
        cfg.settings.clone(),
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
    stop.cancel();
    server.await??;
    Ok(())
}
