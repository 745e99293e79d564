//! The operations settings under PHP-FPM's names: status and ping pages,
//! request timeouts, the slow and access logs, the log's format.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::choice::choice_from_str;

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

choice_from_str!(LogFormat, "text, json", {
    "text" => LogFormat::Text,
    "json" => LogFormat::Json,
});

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
