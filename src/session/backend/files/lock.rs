//! The flock protocol: a session is locked by `flock` on its own
//! `sess_{id}.lock`, which only a holder removes, and only once the session
//! is gone; a waiter that finds its lock file unlinked starts over.

use std::fs::{self, File, TryLockError};
use std::io::{self, ErrorKind};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use async_trait::async_trait;

use std::sync::Arc;

use crate::session::backend::lock::Release;
use crate::session::error::SessionError;

use super::blocking;
use super::file_io::*;
use super::paths::SessionFiles;

/// Tries at re-opening a lock file that was removed under us before giving
/// the turn back to the (sleeping) wait loop.
pub(super) const RELINK_TRIES: usize = 3;

/// A held session lock: the open, flocked `sess_{id}.lock`.
pub(super) struct FileLock {
    /// The lock itself. flock belongs to this open file description, so
    /// closing it (dropping the `File`, even without `release`) frees the
    /// session for the next request or process.
    pub(super) file: File,
    /// Where the session lives, so `release` can remove the lock file of a
    /// session that is gone (destroyed, or never written) instead of leaving
    /// one file behind per visitor.
    pub(super) files: SessionFiles,
}

#[async_trait]
impl Release for FileLock {
    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        blocking("unlock", move || {
            let FileLock { file, files } = &*self;
            // Tidy while the lock is still ours: nobody can lock this file
            // between the check and the removal.
            let tidied = if files.in_place {
                remove_if_empty_placeholder(file, files)
            } else {
                remove_lock_file_if_session_gone(file, files)
            };
            if let Err(error) = tidied {
                // Harmless: gc removes unused lock files.
                tracing::debug!("keeping lock file of {}: {error}", files.shown);
            }
            file.unlock().map_err(|e| files.error("unlock", e))
        })
        .await
    }
}

/// The outcome of one non-blocking try at a session lock.
pub(super) enum Attempt {
    /// The lock is ours, on the file the lock path names now.
    Acquired(File),
    /// Someone else holds it; the open file (if still useful) for the next try.
    Busy(Option<File>),
}

pub(super) fn open_lock_file(path: &Path) -> io::Result<File> {
    open_own(path, Access::Lock).map(|(file, _)| file)
}

/// One try at the lock in `path`, opening (creating) it unless `opened`.
pub(super) fn try_lock_file(path: &Path, opened: Option<File>) -> io::Result<Attempt> {
    let mut file = match opened {
        Some(file) => file,
        None => open_lock_file(path)?,
    };
    for _ in 0..RELINK_TRIES {
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Attempt::Busy(Some(file))),
            Err(TryLockError::Error(error)) => return Err(error),
        }
        if is_still_linked(&file, path)? {
            return Ok(Attempt::Acquired(file));
        }
        // The previous holder removed this lock file (its session was gone)
        // after we opened it: the lock that counts is on whatever file the
        // path names now.
        file = open_lock_file(path)?;
    }
    Ok(Attempt::Busy(None))
}

/// Whether `path` still names the open `file` (and not a newer file, or nothing).
pub(super) fn is_still_linked(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Removes the lock file whose lock `file` holds, when its session is gone.
/// Only a holder removes a lock file; a waiter that opened it before sees it
/// unlinked once it gets the lock, and starts over on the path.
pub(super) fn remove_lock_file_if_session_gone(
    file: &File,
    files: &SessionFiles,
) -> io::Result<bool> {
    match fs::symlink_metadata(&files.data) {
        Ok(_) => return Ok(false),
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    if !is_still_linked(file, &files.lock)? {
        return Ok(false);
    }
    remove_if_present(&files.lock)
}

/// Removes the lock file of a gone session unless someone holds it now.
pub(super) fn remove_unused_lock_file(files: &SessionFiles) -> io::Result<bool> {
    let file = match open_own(&files.lock, Access::Read) {
        Ok((file, _)) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    match file.try_lock() {
        Ok(()) => remove_lock_file_if_session_gone(&file, files),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(error)) => Err(error),
    }
}

/// With PHP's locking, taking the lock of a new session creates its file;
/// if nothing was written to it, it goes again. Left behind, an empty file
/// would make PHP's strict mode accept that id (it only checks that the file
/// exists), so a visitor's made-up id would become valid. Called while the
/// lock is ours.
pub(super) fn remove_if_empty_placeholder(file: &File, files: &SessionFiles) -> io::Result<bool> {
    if file.metadata()?.len() != 0 || !is_still_linked(file, &files.data)? {
        return Ok(false);
    }
    remove_if_present(&files.data)
}
