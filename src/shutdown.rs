//! Bounded draining of servers at shutdown.

use tokio_util::sync::CancellationToken;

/// How long a server may take, once shutdown began, to let its requests
/// finish and its clients go; connections still open then are closed.
/// Without a bound, one client that keeps an idle connection (a querier's
/// channel to a store does) would hold the process forever.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `server` until it ends, or until [`DRAIN_TIMEOUT`] after
/// `shutdown`, whichever comes first; in the second case the server is
/// dropped, which closes its connections.
pub async fn drain_bounded<E>(
    what: &str,
    server: impl std::future::Future<Output = Result<(), E>>,
    shutdown: &CancellationToken,
) -> Result<(), E> {
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!(server = what, after = ?DRAIN_TIMEOUT, "connections still open after shutdown began; closing them");
            Ok(())
        }
    }
}
