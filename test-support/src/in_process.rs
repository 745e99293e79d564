//! nene's server run inside the test process with a test application: routes
//! that stream, panic, stall or hang, which the example application has no reason
//! to have. It also shows an axum `Router` serving as the application.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use std::sync::Arc;

use nene::config::{LoadOptions, load};
use nene::fastcgi::{ConnectionLimits, Responder};
use nene::server::{HttpResponder, ListenAddr, Listener, ServerMetrics, ServerSettings, serve};
use nene::{Application, Bootstrap, RequestInfo};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const BIG_BODY_LEN: usize = 200_000;

pub fn test_app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/echo",
            post(
                |info: RequestInfo, request: http::Request<Body>| async move {
                    let remote = info.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
                    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
                        .await
                        .unwrap();
                    format!("{} bytes from {remote}", body.len())
                },
            ),
        )
        // The body back as it arrived, from memory or from its temporary file.
        .route(
            "/echo-body",
            post(|body: Body| async move { axum::body::to_bytes(body, usize::MAX).await.unwrap() }),
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
            })
            .post(|_body: Body| async {
                if true {
                    panic!("this handler always panics, its body unread");
                }
                "unreachable"
            }),
        )
        // Copies the request's X-Echo header into the response's: what a
        // careless handler does with input.
        .route(
            "/echo-header",
            get(|request: http::Request<Body>| async move {
                let mut response = http::Response::new(Body::from("echoed"));
                if let Some(value) = request.headers().get("x-echo") {
                    response.headers_mut().insert("x-echo", value.clone());
                }
                response
            }),
        )
        // A handler that marks its page cacheable by anyone and starts a
        // session: what a careless page does.
        .route(
            "/public-page",
            get(|session: nene::Session| async move {
                session.insert("seen", true).await.unwrap();
                let mut response = http::Response::new(Body::from("public page"));
                response.headers_mut().insert(
                    "cache-control",
                    http::HeaderValue::from_static("public, max-age=600"),
                );
                response
            }),
        )
        // Never answers: a handler stuck on a lock or a dead upstream.
        .route("/hang", get(std::future::pending::<&'static str>))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        )
}

/// nene's start-up from `env` alone (no ini files), sessions and the
/// listen address in a new temporary directory, kept alive by the caller.
fn bootstrap_from_env(env: &[(&str, &str)]) -> (Bootstrap, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Sessions in the temporary directory unless the caller put them elsewhere.
    if !env
        .iter()
        .any(|(name, _)| name == "NENE_SESSION__SAVE_PATH")
    {
        env.push((
            "NENE_SESSION__SAVE_PATH".into(),
            dir.path().join("sessions").display().to_string(),
        ));
    }
    env.push(("NENE_LISTEN".into(), "127.0.0.1:0".into()));
    env.push(("NENE_HTDOCS".into(), crate::htdocs().display().to_string()));
    let constants = load(&LoadOptions {
        ini_dir: dir.path().join("no-ini"),
        env,
        command_line: Vec::new(),
    })
    .unwrap()
    .constants;
    (Bootstrap::new(constants).unwrap(), dir)
}

/// A running in-process server; dropped = shut down.
pub struct InProcess {
    pub addr: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl InProcess {
    /// The bare server: the test application straight over FastCGI.
    pub async fn start(limits: ConnectionLimits) -> InProcess {
        let settings = ServerSettings {
            listen: ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
            limits,
            drain_timeout: Duration::from_secs(2),
            ..nene::config::Settings::defaults().server
        };
        Self::serve(
            HttpResponder::new(test_app()),
            settings,
            Arc::new(ServerMetrics::new()),
        )
        .await
    }

    /// The whole runtime around the test application through nene's own
    /// entry point ([`Bootstrap`]), configured like the binary from `env`
    /// (NENE_* variables; no ini files): operations layer, constants,
    /// sessions in a temporary directory.
    pub async fn start_front_controller(env: &[(&str, &str)]) -> (InProcess, tempfile::TempDir) {
        Self::start_app(test_app(), env).await
    }

    /// `app` served over FastCGI as [`Self::start_front_controller`] serves
    /// the test application.
    pub async fn start_app(
        app: impl Application,
        env: &[(&str, &str)],
    ) -> (InProcess, tempfile::TempDir) {
        let (nene, dir) = bootstrap_from_env(env);
        let listener = Listener::bind(&nene.constants().settings().server)
            .await
            .unwrap();
        let addr = listener.local_addr().to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            nene.serve_fastcgi(listener, app, async move {
                let _ = rx.await;
            })
            .await;
        });
        let server = InProcess {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        };
        (server, dir)
    }

    /// `app` served over plain HTTP, as `nene dev` serves it, with the
    /// repository's htdocs; `addr` is the HTTP address.
    pub async fn start_dev_app(
        app: impl Application,
        env: &[(&str, &str)],
    ) -> (InProcess, tempfile::TempDir) {
        let (nene, dir) = bootstrap_from_env(env);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            nene.serve_http(listener, app, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let server = InProcess {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        };
        (server, dir)
    }

    async fn serve<R: Responder>(
        responder: R,
        settings: ServerSettings,
        metrics: Arc<ServerMetrics>,
    ) -> InProcess {
        let listener = Listener::bind(&settings).await.unwrap();
        let addr = listener.local_addr().to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, responder, &settings, metrics, async move {
                let _ = rx.await;
            })
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
