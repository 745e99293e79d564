//! The accept loop: one task per connection, a cap on open connections (a
//! semaphore permit moved into each task), and a graceful drain: on shutdown
//! stop accepting, let every connection finish what it has begun (bounded by
//! the drain time), then return.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fastcgi::{ConnectionGate, ProtocolError, Responder, serve_connection};
use crate::log_limit::{LogLimit, and_more};

use super::ServerSettings;
use super::listener::{Accepted, Listener};
use super::metrics::{OpenConnection, ServerMetrics};

/// The warning for a client outside `server.allowed_clients`: a scanner
/// can connect thousands of times a second.
static REFUSED_CLIENT_LINES: LogLimit = LogLimit::new();

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Serves connections from `listener` until `shutdown` resolves, then drains.
pub async fn serve<R: Responder>(
    listener: Listener,
    responder: R,
    settings: &ServerSettings,
    metrics: Arc<ServerMetrics>,
    shutdown: impl Future<Output = ()>,
) {
    metrics.set_listen_fd(listener.tcp_fd());
    let connection_permits = Arc::new(Semaphore::new(settings.limits.max_connections));
    let draining = CancellationToken::new();
    let connections = TaskTracker::new();
    let gate = ConnectionGate::new(draining.clone(), settings.limits.clone());
    metrics.set_budget(gate.budget.clone());
    tokio::pin!(shutdown);

    loop {
        // At the cap, stop accepting: new peers wait in the listen queue
        // instead of being accepted and starved.
        if connection_permits.available_permits() == 0 {
            metrics.cap_reached.fetch_add(1, Ordering::Relaxed);
        }
        let permit = tokio::select! {
            permit = connection_permits.clone().acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let responder = responder.clone();
        let gate = gate.clone();
        let open = accepted
            .is_ok()
            .then(|| OpenConnection::new(metrics.clone()));
        match accepted {
            Ok(Accepted::Tcp(stream, peer)) if !settings.allows_client(peer.ip()) => {
                if let Some(left_out) = REFUSED_CLIENT_LINES.admit() {
                    tracing::warn!(
                        "refused a connection from {}: not in server.allowed_clients{}",
                        peer.ip(),
                        and_more(left_out)
                    );
                }
                drop((stream, open, permit));
            }
            Ok(Accepted::Tcp(stream, peer)) => {
                connections.spawn(async move {
                    let _open = open;
                    let result = serve_connection(stream, responder, gate).await;
                    log_connection_end(&peer.to_string(), result);
                    drop(permit);
                });
            }
            Ok(Accepted::Unix(stream)) => {
                connections.spawn(async move {
                    let _open = open;
                    let result = serve_connection(stream, responder, gate).await;
                    log_connection_end("unix socket peer", result);
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }

    // Closing the listener refuses new connections from here on.
    metrics.set_listen_fd(None);
    drop(listener);
    let open = connections.len();
    tracing::info!(
        "shutting down: no longer accepting; draining {open} open connection(s) for up to {:?}",
        settings.drain_timeout
    );
    draining.cancel();
    connections.close();
    if tokio::time::timeout(settings.drain_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain time {:?} ran out with {} connection(s) still open; closing them",
            settings.drain_timeout,
            connections.len()
        );
    } else {
        tracing::info!("all connections drained");
    }
}

fn log_connection_end(peer: &str, result: Result<(), ProtocolError>) {
    match result {
        Ok(()) => {}
        Err(ProtocolError::Io(error)) => {
            tracing::debug!("connection from {peer} ended: {error}");
        }
        Err(error) => tracing::warn!("closed connection from {peer}: {error}"),
    }
}
