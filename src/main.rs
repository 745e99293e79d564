//! The `nene` binary: parse the command line, run the bootstrap steps in
//! order, and turn any start-up error into one message and exit status 1.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use nene::bootstrap::{
    StartupError, configure_session_cookie, configure_session_handler, load_ini,
    serve_until_signalled, session_store,
};
use nene::cli::{Cli, Command, ServeArgs};
use nene::config::Constants;
use nene::session::redact_dsn;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Config { table: true }) = cli.command {
        print!("{}", nene::config::spec::markdown_table());
        return ExitCode::SUCCESS;
    }
    let default_command = Command::Serve(ServeArgs::default());
    let command = cli.command.as_ref().unwrap_or(&default_command);
    let serve_args = match command {
        Command::Serve(args) if cli.command.is_some() => args.clone(),
        _ => cli.serve.clone(),
    };
    let (constants, files_read) = match load_ini(&cli.command_line(&serve_args)) {
        Ok(loaded) => loaded,
        Err(error) => return fail(&StartupError::Config(error)),
    };
    init_logging(&constants.settings().log_level);
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
                serve_until_signalled(constants, sessions).await
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

/// `RUST_LOG`, when set, wins over `[log] level`.
fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
