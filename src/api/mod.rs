//! HTTP endpoints every component serves (health, readiness, metrics) and
//! the cluster views of queriers.

pub mod cluster;
pub mod metrics;
pub mod prom;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Readiness shared between a component and its HTTP server.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What `/metrics` shows: the process's metrics in the text format, from
/// the recorder that telemetry installs at start (empty before).
static EXPOSITION: std::sync::OnceLock<fn() -> String> = std::sync::OnceLock::new();

/// Sets the source of `/metrics`; the first call wins.
pub fn set_exposition(render: fn() -> String) {
    let _ = EXPOSITION.set(render);
}

async fn metrics_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        EXPOSITION.get().map(|render| render()).unwrap_or_default(),
    )
}

/// `/-/healthy`, `/-/ready` and `/metrics`.
pub fn base_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route(
            "/-/ready",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .route("/metrics", get(metrics_page))
}

/// Binds a listener for the address given to `flag`, with an error that
/// names the flag.
pub async fn bind(flag: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {flag} {addr}: {e}"))
}

/// Serves `router` on `listener` until `shutdown` is canceled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Small answers must not wait for delayed ACKs.
        let _ = tcp.set_nodelay(true);
    });
    let router = router.route_layer(axum::middleware::from_fn(metrics::track));
    let server =
        axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    crate::shutdown::drain_bounded(
        "HTTP",
        std::future::IntoFuture::into_future(server),
        &shutdown,
    )
    .await
}
