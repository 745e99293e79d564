//! nene's server run inside the test process with a test application: routes
//! that stream, panic or stall, which the example application has no reason
//! to have. It also shows an axum `Router` serving as the application.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use nene::fastcgi::{CgiParams, ConnectionLimits};
use nene::server::{HttpResponder, ListenAddr, Listener, ServerSettings, serve};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const BIG_BODY_LEN: usize = 200_000;

pub fn test_app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/echo",
            post(|request: http::Request<Body>| async move {
                let remote = request
                    .extensions()
                    .get::<CgiParams>()
                    .and_then(|p| p.get_str("REMOTE_ADDR").map(str::to_owned))
                    .unwrap_or_default();
                let body = axum::body::to_bytes(request.into_body(), usize::MAX)
                    .await
                    .unwrap();
                format!("{} bytes from {remote}", body.len())
            }),
        )
        .route("/big", get(|| async { vec![b'a'; BIG_BODY_LEN] }))
        .route(
            "/stream",
            get(|| async {
                let chunks =
                    (0..5).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("chunk{i};"))));
                Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("this handler always panics");
                }
                "unreachable"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        )
}

/// A running in-process server; dropped = shut down.
pub struct InProcess {
    pub addr: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl InProcess {
    pub async fn start(limits: ConnectionLimits) -> InProcess {
        let settings = ServerSettings {
            listen: ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
            limits,
            drain_timeout: Duration::from_secs(2),
            ..ServerSettings::default()
        };
        let listener = Listener::bind(&settings.listen, settings.socket_mode)
            .await
            .unwrap();
        let addr = listener.local_addr().to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(
                listener,
                HttpResponder::new(test_app()),
                &settings,
                async move {
                    let _ = rx.await;
                },
            )
            .await;
        });
        InProcess {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Starts draining and waits for the server to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
