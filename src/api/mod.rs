//! HTTP endpoints every component serves (health, readiness, metrics) and
//! the cluster views of queriers.

pub mod cluster;
pub mod metrics;
pub mod prom;
pub mod ui;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::security::web::{Auth, Web};

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

/// Longest a client may take to send a request's head; a client that
/// trickles bytes (or none) is disconnected instead of holding a
/// connection for ever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections served at once; further clients are disconnected at once
/// (and counted) until one closes.
pub const MAX_CONNECTIONS: usize = 4096;

/// How the HTTP server protects itself from slow or too many clients, and
/// whom it lets in.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub header_read_timeout: std::time::Duration,
    pub max_connections: usize,
    /// The web configuration file (`--http.config`): TLS, basic auth,
    /// response headers, HTTP/2.
    pub web: Option<Arc<Web>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            web: None,
        }
    }
}

/// Lets a request through when its credentials pass the web
/// configuration's `basic_auth_users` (every path, health and metrics
/// included, as Prometheus does), and sets the configured headers on
/// every answer.
async fn guard(
    axum::extract::State(web): axum::extract::State<Arc<Web>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let credentials = req.headers().get(header::AUTHORIZATION);
    let auth = web.authorize(credentials.map(|v| v.as_bytes())).await;
    let mut resp = match auth {
        Auth::Allowed => next.run(req).await,
        Auth::Denied => {
            ::metrics::counter!(crate::security::web::AUTH_FAILURES_TOTAL).increment(1);
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic")],
                "Unauthorized\n",
            )
                .into_response()
        }
    };
    for (name, value) in &web.current().headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

/// Serves `router` on `listener` until `shutdown` is canceled, then lets
/// the requests in flight finish (within the drain bound).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, router, ServeOptions::default(), shutdown).await
}

/// [`serve`] with the given options.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let mut router = router.route_layer(axum::middleware::from_fn(metrics::track));
    if let Some(web) = &opts.web {
        router = router.layer(axum::middleware::from_fn_with_state(web.clone(), guard));
    }
    let service = TowerToHyperService::new(router);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1)));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait, then go on.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            ::metrics::counter!(metrics::CONNECTIONS_REFUSED_TOTAL).increment(1);
            tracing::debug!(%peer, max = opts.max_connections, "too many HTTP connections; refused one");
            continue;
        };
        // Small answers must not wait for delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let builder = builder.clone();
        let service = service.clone();
        let watcher = graceful.watcher();
        let first_byte = opts.header_read_timeout;
        let web = opts.web.as_ref().map(|w| w.current());
        tokio::spawn(async move {
            // The protocol is told from the first bytes, and that wait has
            // no timeout of its own: a client that sends nothing is let go
            // after the header timeout.
            let mut probe = [0u8; 1];
            match tokio::time::timeout(first_byte, tcp.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let mut builder = builder;
            if web.as_ref().is_some_and(|w| !w.http2) {
                builder = builder.http1_only();
            }
            let ended = match web.and_then(|w| w.tls.clone()) {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .into_owned();
                    watcher.watch(conn).await
                }
                Some(tls) => {
                    let Some(tls) = crate::security::tls::accept_with(tls, tcp, "http").await
                    else {
                        return;
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .into_owned();
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = ended {
                tracing::trace!(%peer, error = %e, "HTTP connection ended");
            }
            drop(slot);
        });
    }
    crate::shutdown::drain_bounded(
        "HTTP",
        async {
            graceful.shutdown().await;
            Ok(())
        },
        &shutdown,
    )
    .await
}
