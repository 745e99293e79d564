//! The command line: `nene serve` (the default), `nene config`, `nene check`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bootstrap::CommandLine;

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
    /// Directory of the ini files (system.ini, site.ini).
    #[arg(long, global = true, env = "NENE_INI_DIR", default_value = "ini")]
    pub ini_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve FastCGI requests (the default).
    Serve(ServeArgs),
    /// Print every setting and constant with where it came from.
    Config {
        /// Print the table of all settings (markdown) instead.
        #[arg(long)]
        table: bool,
    },
    /// Validate the configuration and reach the session backend once.
    Check,
}

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

impl Cli {
    pub fn command_line(&self, serve: &ServeArgs) -> CommandLine {
        CommandLine {
            ini_dir: self.ini_dir.clone(),
            listen: serve.listen.clone(),
            htdocs: serve.htdocs.clone(),
        }
    }
}
