//! Start-up, in the order a PHP front controller runs it — load ini →
//! configure the session cookie → configure the session handler → serve
//! (and per request: start session → dispatch, see `front_controller`).
//! Each step logs one line; any failure stops start-up with a message that
//! names the file, key or variable at fault.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::application::Application;
use crate::config::{ConfigError, Constants, LoadOptions, Loaded, Source, load, table};
use crate::front_controller::front_controller;
use crate::ops::{Ops, OpsSetupError};
use crate::server::{
    HttpResponder, ListenError, Listener, ServerMetrics, UploadTmpDirError, prepare_upload_tmp_dir,
    raise_open_file_limit_and_log, serve,
};
use crate::session::{
    IdFormatError, JsonCodec, PhpCodec, PhpHandler, SerializeHandler, SessionCodec, SessionCookie,
    SessionHandler, SessionHandlerFactory, SessionIdFormat, SessionRuntime, SessionSetupError,
    redact_dsn,
};

/// Why nene did not start: printed as one line (`nene: …`) with exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// An ini file, environment variable or flag has a bad value.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The session DSN names no usable backend.
    #[error("session handler: {0}")]
    Session(#[from] SessionSetupError),
    #[error(
        "session ids: {error} (session.sid_length from {length_source}, session.sid_bits_per_character from {bits_source})"
    )]
    /// `session.sid_length` and `session.sid_bits_per_character` together
    /// give too little entropy or an impossible id.
    IdFormat {
        /// What is wrong with the pair.
        error: IdFormatError,
        /// Where `session.sid_length` was set.
        length_source: Source,
        /// Where `session.sid_bits_per_character` was set.
        bits_source: Source,
    },
    /// `server.upload_tmp_dir` cannot be created or written to.
    #[error("{0}")]
    UploadTmpDir(#[from] UploadTmpDirError),
    /// The FastCGI address cannot be listened on.
    #[error("{0}")]
    Listen(#[from] ListenError),
    /// An operations setting (access format, log file) cannot be used.
    #[error("{0}")]
    Ops(#[from] OpsSetupError),
    /// `nene dev` cannot listen on its HTTP address.
    #[error("cannot listen on http://{addr}/: {source}")]
    HttpBind {
        /// The `--http` address.
        addr: std::net::SocketAddr,
        /// Why (in use, not permitted, …).
        source: std::io::Error,
    },
    /// `[otel]` asks for traces this build or endpoint cannot give.
    #[error("traces: {0}")]
    Traces(String),
    /// The application's own set-up failed ([`crate::run_async`]).
    #[error("application: {0}")]
    Application(Box<dyn std::error::Error + Send + Sync>),
}

/// What the command line adds on top of ini files and environment.
#[derive(Clone, Debug, Default)]
pub struct CommandLine {
    /// Where `system.ini` and `site.ini` are read from (`--ini-dir`).
    pub ini_dir: PathBuf,
    /// `--listen`: wins over `server.listen`.
    pub listen: Option<String>,
    /// `--htdocs`: wins over `server.htdocs`.
    pub htdocs: Option<String>,
}

/// Step 1: ini files and environment into constants.
pub fn load_ini(command_line: &CommandLine) -> Result<Loaded, ConfigError> {
    let mut overrides = Vec::new();
    if let Some(listen) = &command_line.listen {
        overrides.push((&table::SERVER_LISTEN.spec, listen.clone(), "--listen"));
    }
    if let Some(htdocs) = &command_line.htdocs {
        overrides.push((&table::SERVER_HTDOCS.spec, htdocs.clone(), "--htdocs"));
    }
    load(&LoadOptions {
        ini_dir: command_line.ini_dir.clone(),
        env: LoadOptions::process_env(),
        command_line: overrides,
    })
}

/// Step 2: the session cookie, built once.
pub fn configure_session_cookie(constants: &Constants) -> SessionCookie {
    let settings = constants.settings();
    let cookie = SessionCookie::new(&settings.session, &settings.trusted_proxies);
    tracing::info!(
        "session cookie {} (path {}, secure {:?}, httponly {}, samesite {:?})",
        settings.session.name,
        settings.session.cookie_path,
        settings.session.cookie_secure,
        settings.session.cookie_httponly,
        settings.session.cookie_samesite
    );
    cookie
}

/// Step 3: the session handler the DSN names.
pub fn configure_session_handler(
    constants: &Constants,
) -> Result<Arc<dyn SessionHandler>, StartupError> {
    let session = &constants.settings().session;
    let handler = SessionHandlerFactory::from_dsn(&session.dsn, session)?;
    tracing::info!(
        "session handler {} ({})",
        handler.name(),
        if session.dsn.is_empty() {
            format!("save_path {}", session.save_path.display())
        } else {
            redact_dsn(&session.dsn)
        }
    );
    if !session.migrate_from.trim().is_empty() {
        tracing::info!(
            "sessions the new backend lacks are read from {} (session.migrate_from) and moved over",
            redact_dsn(&session.migrate_from)
        );
    }
    Ok(handler)
}

/// The session store the per-request life cycle uses.
pub fn session_store(
    constants: &Constants,
    cookie: SessionCookie,
    handler: Arc<dyn SessionHandler>,
) -> Result<Arc<SessionRuntime>, StartupError> {
    let session = &constants.settings().session;
    let ids = SessionIdFormat::new(session.sid_length, session.sid_bits_per_character).map_err(
        |error| {
            let source_of = |name: &str| {
                constants
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, c)| c.source.clone())
                    .unwrap_or(Source::Default)
            };
            StartupError::IdFormat {
                error,
                length_source: source_of("SESSION_SID_LENGTH"),
                bits_source: source_of("SESSION_SID_BITS_PER_CHARACTER"),
            }
        },
    )?;
    Ok(Arc::new(SessionRuntime::new(
        handler,
        codec_for(session.serialize_handler),
        ids,
        cookie,
        session.clone(),
    )))
}

/// The session format `session.serialize_handler` names.
fn codec_for(handler: SerializeHandler) -> Arc<dyn SessionCodec> {
    match handler {
        SerializeHandler::Json => Arc::new(JsonCodec),
        SerializeHandler::Php => Arc::new(PhpCodec(PhpHandler::Php)),
        SerializeHandler::PhpSerialize => Arc::new(PhpCodec(PhpHandler::PhpSerialize)),
    }
}

/// Everything nene builds once at start-up around an application: the
/// constants, the session store and the operations layer. Both transports
/// (FastCGI for production, plain HTTP for `nene dev`) serve an application
/// through the same one, so an application cannot tell them apart.
pub struct Bootstrap {
    constants: Constants,
    sessions: Arc<SessionRuntime>,
    ops: Arc<Ops>,
    server_metrics: Arc<ServerMetrics>,
}

impl Bootstrap {
    /// Steps 2 and 3 (cookie, session handler) and the operations layer,
    /// from loaded constants. Call it inside a tokio runtime: a Redis
    /// handler starts its connection task here.
    pub fn new(constants: Constants) -> Result<Self, StartupError> {
        let upload_tmp_dir = &constants.settings().server.limits.upload_tmp_dir;
        prepare_upload_tmp_dir(upload_tmp_dir)?;
        let swept = crate::upload::sweep_leftover_uploads(upload_tmp_dir);
        if swept.files > 0 {
            tracing::warn!(
                "removed {} upload files ({} bytes) from {} that a nene process which stopped without cleaning up had left",
                swept.files,
                swept.bytes,
                upload_tmp_dir.display()
            );
        }
        let cookie = configure_session_cookie(&constants);
        let handler = configure_session_handler(&constants)?;
        let sessions = session_store(&constants, cookie, handler)?;
        let server_metrics = Arc::new(ServerMetrics::new());
        let ops = Arc::new(Ops::new(
            constants.settings().ops.clone(),
            server_metrics.clone(),
            sessions.clone(),
        )?);
        Ok(Self {
            constants,
            sessions,
            ops,
            server_metrics,
        })
    }

    /// Opens the session backend's connection (for Sentinel: asks where the
    /// primary is) in the background as serving starts, so the first request
    /// does not pay for it. Never waits and never fails start-up: nene
    /// starts while Redis is down, and the first request then reports it.
    fn reach_the_session_backend(&self) {
        let handler = self.sessions.handler().clone();
        tokio::spawn(async move {
            match handler.ping().await {
                Ok(()) => tracing::debug!("session backend {} reached", handler.name()),
                Err(error) => tracing::warn!("session backend not reachable at start-up: {error}"),
            }
        });
    }

    /// The constants the application was built from.
    pub fn constants(&self) -> &Constants {
        &self.constants
    }

    /// A call that reopens the access and slow log files (after logrotate
    /// moved them), for a SIGHUP handler that outlives `self`.
    pub fn log_reopener(&self) -> impl Fn() + Send + Sync + 'static {
        let ops = self.ops.clone();
        move || ops.reopen_logs()
    }

    /// `app` inside nene's per-request steps: operations layer, constants,
    /// session started and committed around the call.
    pub fn front_controller<A: Application>(&self, app: A) -> impl Application {
        front_controller(
            app,
            self.constants.clone(),
            self.sessions.clone(),
            self.ops.clone(),
        )
    }

    /// Step 4: serves `app` over FastCGI on `listener` until `shutdown`
    /// resolves, then drains requests in flight (`server.drain_timeout`).
    pub async fn serve_fastcgi<A: Application>(
        self,
        listener: Listener,
        app: A,
        shutdown: impl Future<Output = ()>,
    ) {
        let settings = self.constants.settings().clone();
        raise_open_file_limit_and_log(settings.server.limits.max_connections);
        tracing::info!(
            "nene {} listening on {}{} (htdocs {})",
            env!("CARGO_PKG_VERSION"),
            listener.local_addr(),
            listener.origin(),
            settings.htdocs.display()
        );
        self.reach_the_session_backend();
        let service = self.front_controller(app);
        let ops = self.ops.clone();
        let responder =
            HttpResponder::new(service).on_refusal(move |refusal| ops.log_refusal(refusal));
        serve(
            listener,
            responder,
            &settings.server,
            self.server_metrics,
            shutdown,
        )
        .await;
        self.ops.flush_logs();
        tracing::info!("stopped");
    }

    /// `nene dev`: serves `app` over plain HTTP on `listener`, static files
    /// from htdocs first, until `shutdown` resolves.
    pub async fn serve_http<A: Application>(
        self,
        listener: tokio::net::TcpListener,
        app: A,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let settings = self.constants.settings().clone();
        self.reach_the_session_backend();
        let service = self.front_controller(app);
        let served = crate::dev::serve_http(listener, service, &settings, shutdown).await;
        self.ops.flush_logs();
        tracing::info!("stopped");
        served
    }
}
