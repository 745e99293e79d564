//! The typed settings nene runs with, built once from validated values.

use std::path::PathBuf;

use ipnet::IpNet;

use crate::ops::OpsSettings;
use crate::server::ServerSettings;
use crate::session::SessionSettings;
use crate::trace::TraceSettings;
use crate::upload::UploadSettings;

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
    /// `[otel]`: traces to an OpenTelemetry collector.
    pub trace: TraceSettings,
}

impl Settings {
    /// The settings when nothing overrides the table's defaults: what a test
    /// starts from (`..Settings::defaults().session`).
    pub fn defaults() -> Settings {
        super::building::build_settings(&super::layering::RawValues::default())
            .expect("the table's defaults are valid (a unit test builds them)")
    }
}
