//! Where the access log and the slow log go: stderr, a file (appended, and
//! reopened on SIGHUP so logrotate can move it), or nowhere.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::LogDestination;

/// An opened log destination, shared by every request that writes to it.
pub enum LogWriter {
    /// Lines go to standard error.
    Stderr,
    /// Lines are appended to a file.
    File {
        /// The file's name, opened again on SIGHUP after logrotate moves it.
        path: PathBuf,
        /// The open file, behind a lock so lines from concurrent requests never
        /// interleave and a reopen can swap it.
        file: Mutex<File>,
    },
    /// Lines are dropped.
    Off,
}

impl LogWriter {
    /// Opens the destination; a file that cannot be opened is a start-up
    /// error naming it.
    pub fn open(destination: &LogDestination) -> std::io::Result<Self> {
        Ok(match destination {
            LogDestination::Stderr => LogWriter::Stderr,
            LogDestination::Off => LogWriter::Off,
            LogDestination::File(path) => LogWriter::File {
                path: path.clone(),
                file: Mutex::new(open_append(path)?),
            },
        })
    }

    /// Whether the log is off, so callers can skip building the line at all.
    pub fn is_off(&self) -> bool {
        matches!(self, LogWriter::Off)
    }

    /// Writes one line. A failed write is reported on stderr, never to the
    /// request.
    pub fn write_line(&self, line: &str) {
        match self {
            LogWriter::Off => {}
            LogWriter::Stderr => {
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(stderr, "{line}");
            }
            LogWriter::File { path, file } => {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(error) = writeln!(file, "{line}") {
                    tracing::warn!("cannot write to {}: {error}", path.display());
                }
            }
        }
    }

    /// Opens the file again under its name (after logrotate moved it).
    pub fn reopen(&self) {
        if let LogWriter::File { path, file } = self {
            match open_append(path) {
                Ok(reopened) => {
                    *file.lock().unwrap_or_else(|p| p.into_inner()) = reopened;
                }
                Err(error) => tracing::warn!("cannot reopen {}: {error}", path.display()),
            }
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}
