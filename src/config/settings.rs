//! The typed settings nene runs with, built once from validated values.

use std::path::PathBuf;

use ipnet::IpNet;

use crate::server::ServerSettings;

use super::session_settings::SessionSettings;

/// Everything nene's own sections say.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `[server]`: listener, limits and drain.
    pub server: ServerSettings,
    /// `[server] htdocs`: the document root.
    pub htdocs: PathBuf,
    /// `[server] trusted_proxies`: peers whose X-Forwarded-Proto is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `[server] layers_num`: leading path segments the dispatcher skips.
    pub layers_num: usize,
    /// `[session]`.
    pub session: SessionSettings,
    /// `[log] level`.
    pub log_level: String,
}
