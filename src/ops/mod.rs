//! Operations parity with PHP-FPM: the status page, the ping path, the
//! request timeout, the slow log and the access log, all answered or written
//! by nene itself around the front controller (and, for requests refused
//! before it, from the FastCGI responder's refusal report).

mod access_format;
mod answer;
mod durations;
mod layer;
mod log_writer;
mod metrics;
mod refused;
mod settings;
mod status;

use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use access_format::{AccessFormat, AccessFormatError, AccessRecord};
pub use answer::OpsFuture;
pub use durations::{DurationSeries, RequestDurations};
pub use layer::{OpsLayer, OpsService};
pub use log_writer::{FLUSH_BYTES, FLUSH_INTERVAL, LogWriter};
pub use metrics::OpsMetrics;
pub use settings::{LogDestination, LogFormat, OpsSettings};
pub use status::StatusSnapshot;

use crate::server::ServerMetrics;
use crate::session::SessionRuntime;

/// Everything the operations layer needs, built once at start-up.
pub struct Ops {
    /// The `[pm]`, `[ping]`, `[access]` and timeout settings the layer acts on.
    pub settings: OpsSettings,
    /// `access.format`, parsed once so each request only fills it in.
    pub access_format: AccessFormat,
    /// `%{…}i` codes need the request headers kept until the answer.
    pub access_needs_request_headers: bool,
    /// Where access log lines go.
    pub access_log: LogWriter,
    /// Where slow log lines go.
    pub slow_log: LogWriter,
    /// Request counters for the status page.
    pub metrics: OpsMetrics,
    /// Connection counters and the listen queue, for the status page.
    pub server: Arc<ServerMetrics>,
    /// The session store, whose counters and backend the status page shows.
    pub sessions: Arc<SessionRuntime>,
}

/// Why the operations settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpsSetupError {
    /// `access.format` has a code PHP-FPM's access log does not know, or a
    /// malformed one.
    #[error("access.format: {0}")]
    AccessFormat(#[from] AccessFormatError),
    /// The access log or the slow log is a file that cannot be opened for
    /// appending.
    #[error("{setting}: cannot open {path}: {source}")]
    LogFile {
        /// The setting that names the file (`access.log` or `server.slowlog`).
        setting: &'static str,
        /// The destination as configured, for the message.
        path: String,
        /// Why the open failed.
        source: std::io::Error,
    },
}

impl Ops {
    /// Parses the access format and opens the log files; fails at start-up,
    /// never during a request.
    pub fn new(
        settings: OpsSettings,
        server: Arc<ServerMetrics>,
        sessions: Arc<SessionRuntime>,
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

    /// Writes every queued access and slow log line (at shutdown).
    pub fn flush_logs(&self) {
        self.access_log.flush();
        self.slow_log.flush();
    }

    /// SIGHUP: queued lines are written, then log files are opened again
    /// under their names.
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
