//! The public entry point: [`run`] (or [`run_async`]) is the whole `main`
//! of an application on nene. It parses the command line, loads the ini
//! files and environment, starts logging, builds the application from the
//! constants, and runs the subcommand: `serve` (FastCGI, the default),
//! `dev` (HTTP on loopback), `config`, `check` or `ping`. SIGTERM/SIGINT
//! drain and stop; SIGHUP reopens log files and re-reads the log level.
//! Any start-up error is one line on stderr and exit status 1.

use std::error::Error;
use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, fmt, reload};

use crate::application::Application;
use crate::bootstrap::{Bootstrap, CommandLine, StartupError, configure_session_handler, load_ini};
use crate::cli::{Cli, Command, CopyArgs, DevArgs, PingArgs, ServeArgs, SessionsCommand};
use crate::config::{Constants, Loaded};
use crate::dev::check_dev_address;
use crate::ops::LogFormat;
use crate::ping::Ping;
use crate::server::{InheritedKind, InheritedSocket, ListenError, Listener, take_inherited};
use crate::session::{SessionDsn, SessionHandlerFactory, redact_dsn};
use crate::trace::TracePipeline;
use crate::upgrade::Upgrade;

/// After the drain, how long blocking tasks (file sessions' I/O) still get
/// before the process exits without them.
const ABANDON_BLOCKING_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the spans still queued at exit may take to reach the
/// collector: a collector that is down must not hold up a restart.
const FLUSH_TRACES_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs an application on nene: the whole of a `main`.
///
/// `build_app` gets the constants (ini files + environment, validated) and
/// returns the application — a [`Dispatcher`](crate::Dispatcher), an axum
/// `Router`, any [`Application`]. It is called once, after the
/// configuration is loaded and before anything is served, inside the async
/// runtime (so it may spawn tasks); `config`, `check` and `ping` never call it.
///
/// ```no_run
/// use nene::{Controller, Dispatcher, NotFoundPage};
/// use axum::routing::get;
///
/// fn main() -> std::process::ExitCode {
///     nene::run(|constants| {
///         Dispatcher::builder(NotFoundPage::load(&constants.settings().htdocs))
///             .controller("index", Controller::new().action("index", get(|| async { "hello" })))
///             .build()
///     })
/// }
/// ```
pub fn run<A, F>(build_app: F) -> ExitCode
where
    A: Application,
    F: FnOnce(&Constants) -> A,
{
    run_async(|constants: Constants| {
        let app = build_app(&constants);
        async move { Ok::<A, std::convert::Infallible>(app) }
    })
}

/// Like [`run`], for an application whose set-up is async or can fail:
/// opening a database pool, applying migrations. An error stops start-up
/// with exit status 1 and the line `nene: application: {error}` — so the
/// error's text must not carry secrets (redact DSNs with
/// [`redact_dsn`]).
///
/// ```no_run
/// use nene::{Constants, Controller, Dispatcher, NotFoundPage};
///
/// async fn build(constants: Constants) -> Result<Dispatcher, std::io::Error> {
///     let htdocs = constants.settings().htdocs.clone();
///     tokio::fs::create_dir_all("var").await?;
///     Ok(Dispatcher::builder(NotFoundPage::load(&htdocs)).build())
/// }
///
/// fn main() -> std::process::ExitCode {
///     nene::run_async(build)
/// }
/// ```
pub fn run_async<A, E, F, Fut>(build_app: F) -> ExitCode
where
    A: Application,
    E: Into<Box<dyn Error + Send + Sync>>,
    F: FnOnce(Constants) -> Fut,
    Fut: Future<Output = Result<A, E>>,
{
    let cli = parse_command_line();
    if let Some(Command::Config { table: true }) = cli.command {
        print!("{}", crate::config::table::markdown_table());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Ping(args)) = &cli.command {
        return ping(&cli, args);
    }
    let default_command = Command::Serve(ServeArgs::default());
    let command = cli.command.as_ref().unwrap_or(&default_command);
    // Before any thread starts (inherited.rs says why).
    let inherited = match command {
        Command::Serve(_) | Command::Dev(_) => take_inherited(),
        _ => Ok(None),
    };
    let command_line = match command {
        Command::Serve(args) if cli.command.is_some() => cli.command_line(args),
        Command::Dev(args) => CommandLine {
            ini_dir: cli.ini_dir.clone(),
            listen: None,
            htdocs: args.htdocs.clone(),
        },
        _ => cli.command_line(&cli.serve),
    };
    if let Command::Dev(args) = command
        && let Err(error) = check_dev_address(args.http, args.public)
    {
        eprintln!("nene: {error}");
        return ExitCode::FAILURE;
    }
    let loaded = match load_ini(&command_line) {
        Ok(loaded) => loaded,
        Err(error) => return fail(&StartupError::Config(error)),
    };
    let (constants, files_read) = (loaded.constants, loaded.files_read);
    let settings = constants.settings();
    // `config` and `check` answer in one line of their own; only a problem
    // is worth a log line there.
    let level = match command {
        Command::Serve(_) | Command::Dev(_) => settings.log_level.as_str(),
        _ => "warn",
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = settings.server.worker_threads {
        runtime.worker_threads(threads);
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nene: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Traces only for serving; the pipeline's export task runs on the
    // runtime, and an application's spans reach it through the log layer.
    let traces = match command {
        Command::Serve(_) | Command::Dev(_) => {
            let _inside = runtime.enter();
            match TracePipeline::start(&settings.trace) {
                Ok(traces) => traces,
                Err(error) => return fail(&StartupError::Traces(error)),
            }
        }
        _ => None,
    };
    let log_level = init_logging(level, settings.ops.log_format, traces.as_ref());
    crate::panic_log::log_panics();
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(traces) = &traces {
        tracing::info!("traces: {}", traces.summary());
    }
    match command {
        Command::Config { .. } => {
            print_config(&constants);
            ExitCode::SUCCESS
        }
        Command::Check => runtime.block_on(check(&constants)),
        Command::Sessions(SessionsCommand::Copy(args)) => {
            runtime.block_on(copy_sessions(&constants, args))
        }
        Command::Ping(_) => unreachable!("answered before the configuration is loaded"),
        Command::Serve(_) | Command::Dev(_) => {
            let files: Vec<String> = files_read.iter().map(|p| p.display().to_string()).collect();
            if files.is_empty() {
                // Usually an application started outside its crate's
                // directory: its site constants would all be missing.
                let looked_in = std::path::absolute(&cli.ini_dir).unwrap_or(cli.ini_dir.clone());
                tracing::warn!(
                    "no ini files in {} (--ini-dir or NENE_INI_DIR, relative to the working directory): serving with defaults and environment only",
                    looked_in.display()
                );
            } else {
                tracing::info!("loaded ini: {}", files.join(", "));
            }
            let dev = match command {
                Command::Dev(args) => Some(args.clone()),
                _ => None,
            };
            let ini_dir = command_line.ini_dir.clone();
            let result = runtime.block_on(async move {
                let inherited = inherited?;
                let nene = Bootstrap::new(constants.clone())?;
                let app = build_app(constants)
                    .await
                    .map_err(|error| StartupError::Application(error.into()))?;
                let served = serve_until_signalled(nene, app, dev, inherited, ini_dir, move || {
                    reload_log_level(&log_level, &command_line)
                })
                .await;
                if let Some(traces) = traces {
                    traces.shutdown(FLUSH_TRACES_WITHIN).await;
                }
                served
            });
            // Dropping the runtime would wait for every blocking task, and
            // one stuck in a system call (a hung network file system) would
            // keep nene from exiting after its drain. The drain is over:
            // whatever still runs is abandoned.
            runtime.shutdown_timeout(ABANDON_BLOCKING_AFTER);
            match result {
                Ok(None) => ExitCode::SUCCESS,
                Ok(Some(upgrade)) => {
                    let error = upgrade.exec();
                    eprintln!("nene: upgrade: cannot execute the new binary: {error}");
                    ExitCode::FAILURE
                }
                Err(error) => fail(&error),
            }
        }
    }
}

/// `nene dev`'s HTTP listener from a socket passed in (`systemfd --no-pid
/// -s http::8080 -- cargo watch -x "run -- dev"` keeps it across rebuilds):
/// TCP only, as its own address is.
fn dev_listener(passed: InheritedSocket) -> Result<tokio::net::TcpListener, StartupError> {
    let unusable = |reason: String| StartupError::Listen(ListenError::Inherited(reason));
    let InheritedKind::Tcp(tcp) = passed.socket else {
        return Err(unusable(format!(
            "fd {} is a Unix socket; nene dev serves HTTP on TCP",
            passed.fd
        )));
    };
    let address = tcp
        .local_addr()
        .map_err(|error| unusable(error.to_string()))?;
    tracing::info!(
        "nene dev serving on the socket passed in as fd {} ({address})",
        passed.fd
    );
    tcp.set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(tcp))
        .map_err(|error| unusable(format!("fd {}: {error}", passed.fd)))
}

/// The command line, named after the running binary: an application's
/// `--help` and `--version` say `shop …` (on nene), not `nene`.
fn parse_command_line() -> Cli {
    let binary = std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "nene".to_string());
    let version = if binary == "nene" {
        env!("CARGO_PKG_VERSION").to_string()
    } else {
        format!("(on nene {})", env!("CARGO_PKG_VERSION"))
    };
    // clap keeps 'static names; this runs once per process.
    let command = Cli::command()
        .name(&*Box::leak(binary.into_boxed_str()))
        .version(&*Box::leak(version.into_boxed_str()));
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// Serves until SIGTERM or SIGINT: FastCGI on `server.listen`, or with
/// `dev`, HTTP on its address. SIGHUP reopens the log files and calls
/// `on_hangup` (which re-reads the log level). FastCGI also drains on a
/// SIGUSR2 whose new binary passed its check, and then returns the upgrade
/// to execute (upgrade.rs).
async fn serve_until_signalled<A: Application>(
    nene: Bootstrap,
    app: A,
    dev: Option<DevArgs>,
    inherited: Option<InheritedSocket>,
    ini_dir: std::path::PathBuf,
    on_hangup: impl Fn() + Send + 'static,
) -> Result<Option<Upgrade>, StartupError> {
    let reopen = nene.log_reopener();
    let hangups = tokio::spawn(async move {
        on_sighup(move || {
            reopen();
            on_hangup();
        })
        .await
    });
    let result = match dev {
        None => {
            let settings = &nene.constants().settings().server;
            let listener = match inherited {
                Some(passed) => Listener::inherited(passed, settings)?,
                None => Listener::bind(settings).await?,
            };
            let upgrade = Upgrade::prepare(&listener, ini_dir);
            let leave_file = listener.leave_file_switch();
            let (stopped, reason) = tokio::sync::oneshot::channel();
            let stop = async move {
                let upgrading = stop_or_upgrade(upgrade).await;
                if upgrading.is_some() {
                    leave_file.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = stopped.send(upgrading);
            };
            nene.serve_fastcgi(listener, app, stop).await;
            Ok(reason.await.ok().flatten())
        }
        Some(dev) => {
            let listener = match inherited {
                Some(passed) => dev_listener(passed)?,
                None => tokio::net::TcpListener::bind(dev.http)
                    .await
                    .map_err(|source| StartupError::HttpBind {
                        addr: dev.http,
                        source,
                    })?,
            };
            nene.serve_http(listener, app, shutdown_signal())
                .await
                .map(|()| None)
                .map_err(|source| StartupError::HttpBind {
                    addr: dev.http,
                    source,
                })
        }
    };
    hangups.abort();
    result
}

/// SIGHUP, as operators expect of a daemon: log files are reopened (after
/// logrotate moved them) and the log level is read again.
async fn on_sighup(on_hangup: impl Fn() + Send + 'static) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install a SIGHUP handler; log files will not be reopened");
        return;
    };
    while hangup.recv().await.is_some() {
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

/// Until SIGTERM or SIGINT (`None`), or a SIGUSR2 whose new binary passes
/// its check (the upgrade). A SIGUSR2 whose check fails is logged and
/// serving goes on.
async fn stop_or_upgrade(upgrade: Option<Upgrade>) -> Option<Upgrade> {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut upgrades) = signal(SignalKind::user_defined2()) else {
        shutdown_signal().await;
        return None;
    };
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return None,
            _ = upgrades.recv() => {
                let Some(ready) = &upgrade else {
                    tracing::warn!("SIGUSR2 received, but a graceful upgrade is unavailable (see the start-up log); still serving");
                    continue;
                };
                tracing::info!("SIGUSR2 received: checking the binary at {} before upgrading", ready.exe().display());
                // A SIGTERM during the check stops nene (and the check).
                let checked = tokio::select! {
                    () = &mut stop => return None,
                    checked = ready.check_new_binary() => checked,
                };
                match checked {
                    Ok(()) => {
                        tracing::info!("upgrade: the new binary passed its check; draining, then starting it on the same socket");
                        return upgrade;
                    }
                    Err(why) => tracing::error!("upgrade refused, still serving: {why}"),
                }
            }
        }
    }
}

fn fail(error: &StartupError) -> ExitCode {
    eprintln!("nene: {error}");
    ExitCode::FAILURE
}

/// Changes the log filter of the running process (SIGHUP).
type LogLevelHandle = reload::Handle<Targets, Registry>;

/// `RUST_LOG`, when set and valid, wins over `[log] level` (validated at
/// start-up; `info` should it not parse).
fn log_filter(level: &str) -> Targets {
    let parse = |text: &str| text.parse::<Targets>().ok();
    std::env::var("RUST_LOG")
        .ok()
        .filter(|text| !text.trim().is_empty())
        .and_then(|text| parse(&text))
        .or_else(|| parse(level))
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// The log filter, an application's spans to the trace pipeline when
/// there is one, and the log lines on stderr.
fn init_logging(level: &str, format: LogFormat, traces: Option<&TracePipeline>) -> LogLevelHandle {
    let (filter, handle) = reload::Layer::new(log_filter(level));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(traces.map(TracePipeline::application_spans));
    match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init(),
    }
    handle
}

/// SIGHUP: read the ini files and environment again for `log.level`.
fn reload_log_level(handle: &LogLevelHandle, command_line: &CommandLine) {
    match load_ini(command_line) {
        Ok(Loaded { constants, .. }) => {
            let level = constants.settings().log_level.clone();
            match handle.reload(log_filter(&level)) {
                Ok(()) => tracing::info!("SIGHUP: log files reopened; log level {level}"),
                Err(error) => tracing::warn!("SIGHUP: cannot change the log level: {error}"),
            }
        }
        Err(error) => tracing::warn!("SIGHUP: configuration not reloaded: {error}"),
    }
}

/// `nene config`: every constant, ini-style, with its source as a comment.
/// A secret is masked whole, a DSN or URL keeps all but its password (by
/// the DSN redactor's rules, in any value: `DATABASE_URL =
/// postgres://u:***@db/shop`).
fn print_config(constants: &Constants) {
    for (name, constant) in constants.iter() {
        let is_url = constant.value.contains("://");
        let value = match (constant.secret, name.ends_with("_DSN") || is_url) {
            (false, false) => constant.value.clone(),
            (_, true) => redact_dsn(&constant.value),
            (true, false) => "***".to_string(),
        };
        println!("{name} = {value:?} ; {}", constant.source);
    }
    if let Ok(count) = std::env::var("LISTEN_FDS") {
        // The socket a `serve` or `dev` started here would serve on
        // (server/inherited.rs).
        println!(
            "; LISTEN_FDS={count} is set: nene serve and nene dev started with this environment serve on the socket passed in, not on server.listen"
        );
    }
}

/// `nene check`: one line, exit 0 or 1.
async fn check(constants: &Constants) -> ExitCode {
    if let Err(error) =
        crate::server::prepare_upload_tmp_dir(&constants.settings().server.limits.upload_tmp_dir)
    {
        return fail(&error.into());
    }
    if let Err(error) = TracePipeline::check(&constants.settings().trace) {
        return fail(&StartupError::Traces(error));
    }
    let handler = match configure_session_handler(constants) {
        Ok(handler) => handler,
        Err(error) => return fail(&error),
    };
    let started = Instant::now();
    match handler.ping().await {
        Ok(()) => {
            println!(
                "ok: configuration valid; session backend {} answered in {:.1} ms",
                handler.name(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("nene: configuration valid, but the session backend is unreachable: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `nene sessions copy`: a progress line per page on stderr, the totals on
/// stdout; exit 0, or 1 with what failed and how far the copy got.
async fn copy_sessions(constants: &Constants, args: &CopyArgs) -> ExitCode {
    let mut settings = constants.settings().session.clone();
    // Each side is exactly the backend named, never one migrating from another.
    settings.migrate_from.clear();
    let same = match (SessionDsn::parse(&args.from), SessionDsn::parse(&args.to)) {
        (Ok(from), Ok(to)) => from.backend() == to.backend(),
        _ => false,
    };
    if same {
        eprintln!("nene sessions copy: --from and --to name the same backend");
        return ExitCode::FAILURE;
    }
    let backend = |side: &str, dsn: &str| {
        SessionHandlerFactory::admin(dsn, &settings).map_err(|error| format!("{side}: {error}"))
    };
    let (from, to) = match (backend("--from", &args.from), backend("--to", &args.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("nene sessions copy: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (shown_from, shown_to) = (redact_dsn(&args.from), redact_dsn(&args.to));
    let started = Instant::now();
    let copied = crate::session::copy::copy_sessions(from, to, |progress| {
        eprintln!(
            "nene sessions copy: {} listed: {progress} ({:.1} s)",
            progress.listed(),
            started.elapsed().as_secs_f64()
        );
    })
    .await;
    match copied {
        Ok(progress) => {
            println!("copied sessions from {shown_from} to {shown_to}: {progress}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("nene sessions copy: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `nene ping`: one line, exit 0 (the answer was 200) or 1. Without ADDR it
/// asks `server.listen`, loaded as `serve` loads it; with ADDR it needs no
/// configuration, so a probe elsewhere works without nene's ini files.
fn ping(cli: &Cli, args: &PingArgs) -> ExitCode {
    let addr = match &args.addr {
        Some(addr) => addr.clone(),
        None => match load_ini(&cli.command_line(&cli.serve)) {
            Ok(loaded) => loaded.constants.settings().server.listen.clone(),
            Err(error) => {
                eprintln!("nene ping: {}", StartupError::Config(error));
                return ExitCode::FAILURE;
            }
        },
    };
    let ping = Ping {
        addr,
        path: args.path.clone(),
        timeout: args.timeout,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nene ping: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ping.run()) {
        Ok(answer) if answer.is_ok() => {
            println!("ok: {answer}");
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            eprintln!("nene ping: {answer}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("nene ping: {error}");
            ExitCode::FAILURE
        }
    }
}
