//! Start-up, in the order a PHP front controller runs it — load ini →
//! configure the session cookie → configure the session handler → serve
//! (and per request: start session → dispatch, see `front_controller`).
//! Each step logs one line; any failure stops start-up with a message that
//! names the file, key or variable at fault.

use std::path::PathBuf;
use std::sync::Arc;

use crate::app::example_app;
use crate::config::{ConfigError, Constants, LoadOptions, Source, load};
use crate::front_controller::front_controller;
use crate::ops::{Ops, OpsSetupError};
use crate::server::{
    HttpResponder, ListenError, Listener, ServerMetrics, raise_open_file_limit_and_log, serve,
};
use crate::session::{
    IdFormatError, JsonCodec, SessionCookie, SessionHandler, SessionHandlerFactory,
    SessionIdFormat, SessionSetupError, SessionStore, redact_dsn,
};

/// Why nene did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("session handler: {0}")]
    Session(#[from] SessionSetupError),
    #[error(
        "session ids: {error} (session.sid_length from {length_source}, session.sid_bits_per_character from {bits_source})"
    )]
    IdFormat {
        error: IdFormatError,
        length_source: Source,
        bits_source: Source,
    },
    #[error("{0}")]
    Listen(#[from] ListenError),
    #[error("{0}")]
    Ops(#[from] OpsSetupError),
}

/// What the command line adds on top of ini files and environment.
#[derive(Clone, Debug, Default)]
pub struct CommandLine {
    pub ini_dir: PathBuf,
    pub listen: Option<String>,
    pub htdocs: Option<String>,
}

/// Step 1: ini files and environment into constants.
pub fn load_ini(command_line: &CommandLine) -> Result<(Constants, Vec<PathBuf>), ConfigError> {
    let mut overrides = Vec::new();
    if let Some(listen) = &command_line.listen {
        overrides.push(("server.listen", listen.clone(), "--listen"));
    }
    if let Some(htdocs) = &command_line.htdocs {
        overrides.push(("server.htdocs", htdocs.clone(), "--htdocs"));
    }
    let loaded = load(&LoadOptions {
        ini_dir: command_line.ini_dir.clone(),
        env: LoadOptions::process_env(),
        command_line: overrides,
    })?;
    Ok((loaded.constants, loaded.files_read))
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
    Ok(handler)
}

/// The session store the per-request life cycle uses.
pub fn session_store(
    constants: &Constants,
    cookie: SessionCookie,
    handler: Arc<dyn SessionHandler>,
) -> Result<Arc<SessionStore>, StartupError> {
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
    Ok(Arc::new(SessionStore::new(
        handler,
        Arc::new(JsonCodec),
        ids,
        cookie,
        session.clone(),
    )))
}

/// Step 4: listen and serve until SIGTERM or SIGINT. SIGHUP reopens the
/// log files and calls `on_hangup` (which re-reads the log level).
pub async fn serve_until_signalled(
    constants: Constants,
    sessions: Arc<SessionStore>,
    on_hangup: impl Fn() + Send + 'static,
) -> Result<(), StartupError> {
    let settings = constants.settings().clone();
    let server_metrics = Arc::new(ServerMetrics::new());
    let ops = Arc::new(Ops::new(
        settings.ops.clone(),
        server_metrics.clone(),
        sessions.clone(),
    )?);
    raise_open_file_limit_and_log(settings.server.limits.max_connections);
    let listener = Listener::bind(&settings.server).await?;
    let app = example_app(&settings.htdocs, settings.layers_num);
    tracing::info!(
        "nene {} listening on {} (htdocs {})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr(),
        settings.htdocs.display()
    );
    let hangups = tokio::spawn(reopen_logs_on_sighup(ops.clone(), on_hangup));
    let service = front_controller(app, constants, sessions, ops);
    serve(
        listener,
        HttpResponder::new(service),
        &settings.server,
        server_metrics,
        shutdown_signal(),
    )
    .await;
    hangups.abort();
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP, as operators expect of a daemon: log files are reopened (after
/// logrotate moved them) and the log level is read again.
async fn reopen_logs_on_sighup(ops: Arc<Ops>, on_hangup: impl Fn() + Send + 'static) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install a SIGHUP handler; log files will not be reopened");
        return;
    };
    while hangup.recv().await.is_some() {
        ops.reopen_logs();
        on_hangup();
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop nene with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!("{name} received");
}
