//! The `nene` binary: parse the command line, run the bootstrap steps in
//! order, and turn any start-up error into one message and exit status 1.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use nene::bootstrap::CommandLine;
use nene::bootstrap::{
    StartupError, configure_session_cookie, configure_session_handler, load_ini,
    serve_until_signalled, session_store,
};
use nene::cli::{Cli, Command, PingArgs, ServeArgs};
use nene::config::{Constants, LogFormat};
use nene::ping::Ping;
use nene::session::redact_dsn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Config { table: true }) = cli.command {
        print!("{}", nene::config::spec::markdown_table());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Ping(args)) = &cli.command {
        return ping(&cli, args);
    }
    let default_command = Command::Serve(ServeArgs::default());
    let command = cli.command.as_ref().unwrap_or(&default_command);
    let serve_args = match command {
        Command::Serve(args) if cli.command.is_some() => args.clone(),
        _ => cli.serve.clone(),
    };
    let command_line = cli.command_line(&serve_args);
    let (constants, files_read) = match load_ini(&command_line) {
        Ok(loaded) => loaded,
        Err(error) => return fail(&StartupError::Config(error)),
    };
    let settings = constants.settings();
    // `config` and `check` answer in one line of their own; only a problem
    // is worth a log line there.
    let level = match command {
        Command::Serve(_) => settings.log_level.as_str(),
        _ => "warn",
    };
    let log_level = init_logging(level, settings.ops.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nene: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Config { .. } => {
            print_config(&constants);
            ExitCode::SUCCESS
        }
        Command::Check => runtime.block_on(check(&constants)),
        Command::Ping(_) => unreachable!("answered before the configuration is loaded"),
        Command::Serve(_) => {
            let files: Vec<String> = files_read.iter().map(|p| p.display().to_string()).collect();
            tracing::info!(
                "loaded ini: {}",
                if files.is_empty() {
                    "(no ini files; defaults and environment)".to_string()
                } else {
                    files.join(", ")
                }
            );
            let result = runtime.block_on(async {
                let cookie = configure_session_cookie(&constants);
                let handler = configure_session_handler(&constants)?;
                let sessions = session_store(&constants, cookie, handler)?;
                let on_hangup = move || reload_log_level(&log_level, &command_line);
                serve_until_signalled(constants, sessions, on_hangup).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error),
            }
        }
    }
}

fn fail(error: &StartupError) -> ExitCode {
    eprintln!("nene: {error}");
    ExitCode::FAILURE
}

/// Changes the log filter of the running process (SIGHUP).
type LogLevelHandle = reload::Handle<EnvFilter, Registry>;

/// `RUST_LOG`, when set, wins over `[log] level`.
fn log_filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
}

fn init_logging(level: &str, format: LogFormat) -> LogLevelHandle {
    let (filter, handle) = reload::Layer::new(log_filter(level));
    let registry = tracing_subscriber::registry().with(filter);
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
        Ok((constants, _)) => {
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
fn print_config(constants: &Constants) {
    for (name, constant) in constants.iter() {
        let value = if constant.secret {
            redact_dsn(&constant.value)
        } else {
            constant.value.clone()
        };
        println!("{name} = {value:?} ; {}", constant.source);
    }
}

/// `nene check`: one line, exit 0 or 1.
async fn check(constants: &Constants) -> ExitCode {
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

/// `nene ping`: one line, exit 0 (the answer was 200) or 1. Without ADDR it
/// asks `server.listen`, loaded as `serve` loads it; with ADDR it needs no
/// configuration, so a probe elsewhere works without nene's ini files.
fn ping(cli: &Cli, args: &PingArgs) -> ExitCode {
    let addr = match &args.addr {
        Some(addr) => addr.clone(),
        None => match load_ini(&cli.command_line(&cli.serve)) {
            Ok((constants, _)) => constants.settings().server.listen.clone(),
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
