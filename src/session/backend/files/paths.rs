//! The files of one session: `sess_{id}`, its lock file, temp names for
//! writes, and how messages name them without the id.

use std::io::{self};
use std::path::{Path, PathBuf};

use crate::session::error::SessionError;
use crate::session::id::log_tag_of;

use super::BACKEND;

/// The files of one session, and how messages name them.
#[derive(Clone, Debug)]
pub(super) struct SessionFiles {
    /// The directory, for temp files next to the data (a rename is only
    /// atomic within one file system).
    pub(super) dir: PathBuf,
    /// `sess_{id}`, the stem of every file of this session.
    pub(super) name: String,
    /// `sess_{id}`: the data, replaced whole by every write.
    pub(super) data: PathBuf,
    /// `sess_{id}.lock`: what `lock` flocks. Not the data file, because a
    /// write renames a new inode over it and a lock on the old one would no
    /// longer exclude anybody. With PHP's locking it is the data file itself.
    pub(super) lock: PathBuf,
    /// PHP's locking (`session.save_path_lock = session_file`): the data
    /// file is flocked and rewritten in place, as PHP's files handler does.
    pub(super) in_place: bool,
    /// The data path with the id replaced by its log tag: errors name the
    /// file without writing any part of a session id into logs.
    pub(super) shown: String,
}

impl SessionFiles {
    pub(super) fn new(dir: &Path, id: &str) -> SessionFiles {
        let name = format!("sess_{id}");
        SessionFiles {
            dir: dir.to_path_buf(),
            data: dir.join(&name),
            lock: dir.join(format!("{name}.lock")),
            in_place: false,
            shown: dir
                .join(format!("sess_#{}", log_tag_of(id)))
                .display()
                .to_string(),
            name,
        }
    }

    /// The same files with PHP's locking: the data file is the lock.
    pub(super) fn locking_the_session_file(mut self) -> SessionFiles {
        self.lock = self.data.clone();
        self.in_place = true;
        self
    }

    /// A fresh temp file name for a write: hidden, unique per write, and
    /// recognisable by gc (`.sess_*.tmp`) when a crash leaves it behind.
    pub(super) fn temp(&self) -> PathBuf {
        self.dir
            .join(format!(".{}.{:016x}.tmp", self.name, fastrand::u64(..)))
    }

    pub(super) fn error(&self, operation: &'static str, error: io::Error) -> SessionError {
        SessionError::Backend {
            backend: BACKEND,
            operation,
            message: format!("{}: {error}", self.shown),
        }
    }
}
