//! The typed settings nene runs with, built once from validated values.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::server::ServerSettings;
use crate::upload::UploadSettings;

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
    /// PHP's upload bounds, for [`crate::upload::UploadForm`].
    pub uploads: UploadSettings,
    /// `[log] level`.
    pub log_level: String,
    /// Operations: status and ping pages, timeouts, slow and access logs.
    pub ops: OpsSettings,
}

/// Where a log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogDestination {
    /// Standard error, beside the tracing log (the default, for containers).
    Stderr,
    /// Appended to the file at this path, reopened on SIGHUP for logrotate.
    File(PathBuf),
    /// Discarded; the log is not written.
    Off,
}

/// The tracing log's line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// PHP-FPM's operations settings, under their FPM names.
#[derive(Clone, Debug)]
pub struct OpsSettings {
    /// `server.request_terminate_timeout`: handlers running longer get 504.
    pub request_terminate_timeout: Option<Duration>,
    /// `server.request_slowlog_timeout`: slower requests go to the slow log.
    pub request_slowlog_timeout: Option<Duration>,
    /// `server.slowlog`.
    pub slowlog: LogDestination,
    /// `pm.status_path`; `None` = no status page.
    pub status_path: Option<String>,
    /// `pm.status_allow`: who may read it.
    pub status_allow: Vec<IpNet>,
    /// `ping.path`; `None` = no ping page.
    pub ping_path: Option<String>,
    /// `ping.response`.
    pub ping_response: String,
    /// `access.log`.
    pub access_log: LogDestination,
    /// `access.format`, PHP-FPM's format codes (checked at start-up).
    pub access_format: String,
    /// `log.format`.
    pub log_format: LogFormat,
}
