//! The `nene` binary: parse the command line, set up logging, serve.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use nene::app::example_app;
use nene::cli::{Cli, Command, ServeArgs};
use nene::server::{HttpResponder, Listener, serve};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_server(args))
}

async fn run_server(args: ServeArgs) -> ExitCode {
    let settings = args.server_settings();
    let listener = match Listener::bind(&settings.listen, settings.socket_mode).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let app = example_app(&args.htdocs);
    tracing::info!(
        "nene {} listening on {} (htdocs {}, ini {})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr(),
        args.htdocs.display(),
        args.ini_dir.display()
    );
    serve(
        listener,
        HttpResponder::new(app),
        &settings,
        shutdown_signal(),
    )
    .await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!("{name} received");
}
