//! How a files handler stores and locks its sessions: the `[session]`
//! settings PHP's files handler has, gathered in one value so that the
//! factory sets them from the configuration and a test sets only the ones
//! it is about.

use std::time::Duration;

use crate::session::backend::{DEFAULT_LOCK_WAIT, DEFAULT_MAX_SESSION_BYTES};
use crate::session::id::SessionIdFormat;
use crate::session::{SavePathLock, SessionSettings};

/// The options of a [`super::FileSessionHandler`]; the default is PHP's
/// files handler's own behaviour with nene's locking.
#[derive(Clone, Copy, Debug)]
pub struct FileOptions {
    /// How long `lock` waits for the current holder before it gives up with
    /// [`crate::session::SessionError::LockTimeout`] (10 s by default).
    pub lock_wait: Duration,
    /// Flush each new session file to disk before it replaces the old one
    /// (`session.save_path_fsync`; off by default, like PHP).
    pub fsync: bool,
    /// The configured id format (`sid_length`, `sid_bits_per_character`),
    /// when known: gc then takes only names of exactly that format for its
    /// own. Without it, gc takes names of any format nene can be configured
    /// with.
    pub id_format: Option<SessionIdFormat>,
    /// `session.max_size`: a larger file is not read.
    pub max_size: u64,
    /// Lock the session file itself and write it in place, as PHP does
    /// (`session.save_path_lock = session_file`), so that nene and PHP
    /// sharing a save_path exclude each other: `flock` on `sess_{id}`
    /// itself, written in place (truncate and write) instead of replaced by
    /// rename. A crash in the middle of a write can then leave a torn file,
    /// as with PHP; nene's own locking (the default) never can.
    pub php_locking: bool,
    /// PHP's `N;` save_path prefix: sessions live `depth` levels of
    /// one-character directories down, named after the id's first
    /// characters (session `abcd…` of depth 2 lives in `a/b/`). The
    /// directories are made (0700) when a session is first written, where
    /// PHP needs them made beforehand.
    pub depth: usize,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            lock_wait: DEFAULT_LOCK_WAIT,
            fsync: false,
            id_format: None,
            max_size: DEFAULT_MAX_SESSION_BYTES,
            php_locking: false,
            depth: 0,
        }
    }
}

impl FileOptions {
    /// The options the `[session]` settings give. An invalid id format is
    /// refused by the session store at start-up with its own message, so
    /// here it only leaves gc on every format nene accepts.
    pub fn from_settings(settings: &SessionSettings) -> Self {
        Self {
            lock_wait: settings.save_path_lock_wait,
            fsync: settings.save_path_fsync,
            id_format: SessionIdFormat::new(settings.sid_length, settings.sid_bits_per_character)
                .ok(),
            max_size: settings.max_size,
            php_locking: settings.save_path_lock == SavePathLock::SessionFile,
            depth: settings.save_path_depth,
        }
    }
}
