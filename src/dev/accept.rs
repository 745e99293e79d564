//! `nene dev`'s accept loop: HTTP/1.1 connections served by hyper with the
//! bounds the FastCGI server keeps, which axum's `serve` has none of: at
//! most `server.max_connections` open at once (one more is closed as soon
//! as it is accepted), a request's head within `server.receive_timeout` (a
//! client that drips it is disconnected), and after the shutdown signal
//! `server.drain_timeout` for what is in flight.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::log_limit::{LogLimit, and_more};

/// After the shutdown signal, how long a connection that has not sent its
/// first request yet gets to send it. Accepted just before the signal, its
/// request is usually on its way (or unread in the socket): closing it at
/// once would leave that request unanswered, and a client resends a
/// request on a new connection only when an old kept one failed.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// What one development server allows a connection.
pub(super) struct Bounds {
    /// Connections open at once (`server.max_connections`).
    pub max_connections: usize,
    /// Time to receive a request's head (`server.receive_timeout`).
    pub receive_timeout: Duration,
    /// Time in-flight requests get after the signal (`server.drain_timeout`).
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `stopping` is cancelled, then drains.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    stopping: CancellationToken,
) {
    // Tokio's semaphore holds at most u32::MAX >> 3 permits; the setting's
    // own bound (1,000,000) is far below it.
    let slots = u32::try_from(bounds.max_connections).unwrap_or(u32::MAX >> 3);
    let permits = Arc::new(Semaphore::new(slots as usize));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some
                    // to be closed rather than spin.
                    static LINES: LogLimit = LogLimit::new();
                    if let Some(left_out) = LINES.admit() {
                        tracing::warn!("accept failed: {error}{}", and_more(left_out));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopping.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            static LINES: LogLimit = LogLimit::new();
            if let Some(left_out) = LINES.admit() {
                tracing::warn!(
                    "{} connections open (server.max_connections): closed one from {peer}{}",
                    bounds.max_connections,
                    and_more(left_out)
                );
            }
            drop(stream);
            continue;
        };
        let router = router.clone();
        let stopping = stopping.clone();
        let receive_timeout = bounds.receive_timeout;
        tokio::spawn(async move {
            let first_request = Arc::new(tokio::sync::Notify::new());
            let noticed = first_request.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                noticed.notify_one();
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request)
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(receive_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopping.cancelled() => {
                    // Notify keeps the first request's notice, so this
                    // returns at once on a connection that had one.
                    let waited = tokio::time::timeout(
                        FIRST_REQUEST_GRACE.min(receive_timeout),
                        first_request.notified(),
                    );
                    let ended = tokio::select! {
                        _ = connection.as_mut() => true,
                        _ = waited => false,
                    };
                    if !ended {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            }
            drop(permit);
        });
    }
    // Every connection gives its permit back when it ends.
    let drained = tokio::time::timeout(bounds.drain_timeout, permits.acquire_many(slots)).await;
    if drained.is_err() {
        tracing::warn!(
            "requests still running after drain_timeout ({:?}); stopping anyway",
            bounds.drain_timeout
        );
    }
}
