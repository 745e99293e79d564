//! The command line every nene binary has (nene's own and each
//! application's, through [`crate::run()`]): `serve` (the default), `dev`,
//! `config`, `check`, `ping`, `sessions copy`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bootstrap::CommandLine;
use crate::server::ListenAddr;

/// The parsed command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "A FastCGI application server for nginx, with a development web server"
)]
pub struct Cli {
    /// The subcommand; none means `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Directory of the ini files (system.ini, site.ini).
    #[arg(long, global = true, env = "NENE_INI_DIR", default_value = "ini")]
    pub ini_dir: PathBuf,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve FastCGI requests (the default).
    Serve(ServeArgs),
    /// Development web server: plain HTTP on loopback, static files from
    /// htdocs, everything else through the application (like `php -S`).
    Dev(DevArgs),
    /// Print every setting and constant with where it came from.
    Config {
        /// Print the table of all settings (markdown) instead.
        #[arg(long)]
        table: bool,
    },
    /// Validate the configuration and reach the session backend once.
    Check,
    /// Send one FastCGI request to a running nene; exit 0 when it answers 200
    /// (for healthchecks).
    Ping(PingArgs),
    /// Work on the stored sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

/// `nene sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Copy every live session from one backend to another, each with its
    /// remaining lifetime. Sessions the destination already has are skipped,
    /// so an interrupted copy is resumed by running it again.
    Copy(CopyArgs),
}

/// Options of `sessions copy`.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// The DSN to copy from (`files` = the files in session.save_path)
    #[arg(long)]
    pub from: String,
    /// The DSN to copy to (`files` = the files in session.save_path)
    #[arg(long)]
    pub to: String,
}

/// Options of `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on: IP:PORT or unix:/path/to.sock
    /// [ini: server.listen; env: NENE_LISTEN]
    #[arg(long)]
    pub listen: Option<String>,
    /// Document root (404.html lives here) [ini: server.htdocs; env: NENE_HTDOCS]
    #[arg(long)]
    pub htdocs: Option<String>,
}

/// Options of `dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// HTTP address to listen on (loopback unless --public)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Allow a non-loopback --http address (the development server is not
    /// meant to face a network)
    #[arg(long)]
    pub public: bool,
    /// Document root: static files and 404.html [ini: server.htdocs; env: NENE_HTDOCS]
    #[arg(long)]
    pub htdocs: Option<String>,
}

/// Options of `ping`.
#[derive(Debug, Clone, Args)]
pub struct PingArgs {
    /// FastCGI address to ask: IP:PORT or unix:/path/to.sock
    /// [default: server.listen from the configuration]
    pub addr: Option<ListenAddr>,
    /// Path to GET; nene's own ping path (ping.path) or any other route can
    /// be asked instead
    #[arg(long, default_value = "/health", value_parser = absolute_path)]
    pub path: String,
    /// Longest wait for connecting and the whole answer (500ms, 2s, ...)
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

fn absolute_path(text: &str) -> Result<String, String> {
    if text.starts_with('/') {
        Ok(text.to_string())
    } else {
        Err("a path starts with / (e.g. /health)".to_string())
    }
}

impl Cli {
    /// What the command line adds to the ini files and environment.
    pub fn command_line(&self, serve: &ServeArgs) -> CommandLine {
        CommandLine {
            ini_dir: self.ini_dir.clone(),
            listen: serve.listen.clone(),
            htdocs: serve.htdocs.clone(),
        }
    }
}
