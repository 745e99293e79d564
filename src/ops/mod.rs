//! Operations parity with PHP-FPM: the status page, the ping path, the
//! request timeout, the slow log and the access log, all answered or written
//! by nene itself around the front controller.

mod access_format;
mod layer;
mod log_writer;
mod metrics;
mod status;

use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use access_format::{AccessFormat, AccessFormatError, AccessRecord};
pub use layer::{OpsLayer, OpsService};
pub use log_writer::LogWriter;
pub use metrics::OpsMetrics;
pub use status::StatusSnapshot;

use crate::config::OpsSettings;
use crate::server::ServerMetrics;
use crate::session::SessionStore;

/// Everything the operations layer needs, built once at start-up.
pub struct Ops {
    pub settings: OpsSettings,
    pub access_format: AccessFormat,
    /// `%{…}i` codes need the request headers kept until the answer.
    pub access_needs_request_headers: bool,
    pub access_log: LogWriter,
    pub slow_log: LogWriter,
    pub metrics: OpsMetrics,
    pub server: Arc<ServerMetrics>,
    pub sessions: Arc<SessionStore>,
}

/// Why the operations settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpsSetupError {
    #[error("access.format: {0}")]
    AccessFormat(#[from] AccessFormatError),
    #[error("{setting}: cannot open {path}: {source}")]
    LogFile {
        setting: &'static str,
        path: String,
        source: std::io::Error,
    },
}

impl Ops {
    pub fn new(
        settings: OpsSettings,
        server: Arc<ServerMetrics>,
        sessions: Arc<SessionStore>,
    ) -> Result<Self, OpsSetupError> {
        let access_format = AccessFormat::parse(&settings.access_format)?;
        let open = |setting: &'static str, destination| {
            LogWriter::open(destination).map_err(|source| OpsSetupError::LogFile {
                setting,
                path: format!("{destination:?}"),
                source,
            })
        };
        Ok(Self {
            access_needs_request_headers: settings.access_format.contains("}i"),
            access_log: open("access.log", &settings.access_log)?,
            slow_log: open("server.slowlog", &settings.slowlog)?,
            access_format,
            settings,
            metrics: OpsMetrics::default(),
            server,
            sessions,
        })
    }

    /// SIGHUP: log files are opened again under their names.
    pub fn reopen_logs(&self) {
        self.access_log.reopen();
        self.slow_log.reopen();
    }

    fn count_timed_out(&self) {
        self.metrics.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    fn count_slow(&self) {
        self.metrics.slow.fetch_add(1, Ordering::Relaxed);
    }
}
