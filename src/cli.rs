//! The command line: `nene serve` (the default) and its options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::fastcgi::ConnectionLimits;
use crate::server::{ListenAddr, ServerSettings};

#[derive(Debug, Parser)]
#[command(
    name = "nene",
    version,
    about = "A FastCGI application server for nginx"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve FastCGI requests (the default).
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on: IP:PORT or unix:/path/to.sock.
    #[arg(long, env = "NENE_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: ListenAddr,
    /// Directory of nene's ini files.
    #[arg(long, env = "NENE_INI_DIR", default_value = "ini")]
    pub ini_dir: PathBuf,
    /// Document root nginx serves static files from (404.html lives here).
    #[arg(long, env = "NENE_HTDOCS", default_value = "htdocs")]
    pub htdocs: PathBuf,
    /// Mode of the Unix socket file, in octal (like PHP-FPM's listen.mode).
    #[arg(long, default_value = "0660", value_parser = parse_octal_mode)]
    pub socket_mode: u32,
    /// Most connections open at once; further peers wait in the listen queue.
    #[arg(long, default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Most requests open at once on one (multiplexed) connection.
    #[arg(long, default_value_t = ConnectionLimits::default().max_requests_per_connection)]
    pub max_requests_per_connection: usize,
    /// Most bytes of FastCGI params per request (answered 431 above it).
    #[arg(long, default_value_t = ConnectionLimits::default().max_params_bytes)]
    pub max_params_bytes: usize,
    /// Most bytes of request body (answered 413 above it).
    #[arg(long, default_value_t = ConnectionLimits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Time a peer has to send a whole request (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub receive_timeout: Duration,
    /// Time a kept connection may stay idle.
    #[arg(long, default_value = "75s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// After SIGTERM, how long requests in flight may take to finish.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

fn parse_octal_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode such as 0660"))
}

impl ServeArgs {
    pub fn server_settings(&self) -> ServerSettings {
        ServerSettings {
            listen: self.listen.clone(),
            socket_mode: self.socket_mode,
            limits: ConnectionLimits {
                max_params_bytes: self.max_params_bytes,
                max_body_bytes: self.max_body_bytes,
                receive_timeout: self.receive_timeout,
                idle_timeout: self.idle_timeout,
                max_requests_per_connection: self.max_requests_per_connection,
                max_connections: self.max_connections,
            },
            drain_timeout: self.drain_timeout,
        }
    }
}
