//! Garbage collection: expired sessions, stale temp files and unused lock
//! files, and nothing else — gc acts only on names nene itself makes.

use std::fs::{self};
use std::io::{self, ErrorKind};
use std::path::Path;
use std::time::Duration;

use crate::session::error::SessionError;
use crate::session::id::SessionIdFormat;

use super::BACKEND;
use super::file_io::*;
use super::lock::*;
use super::paths::SessionFiles;

/// The `sid_bits_per_character` values whose alphabets gc accepts in names
/// when the handler was not told the configured format: all there are.
pub(super) const ID_BITS_PER_CHARACTER: [u8; 3] = [4, 5, 6];

/// Removes the session if it expired and no request holds it. The check and
/// the removal happen under the session's lock, so a request cannot write a
/// fresh file in between and lose it.
pub(super) fn remove_if_expired(files: &SessionFiles, ttl: Duration) -> io::Result<bool> {
    let lock = match try_lock_file(&files.lock, None)? {
        Attempt::Acquired(lock) => lock,
        Attempt::Busy(_) => return Ok(false),
    };
    let removed = match fs::symlink_metadata(&files.data) {
        Ok(metadata) if metadata.is_file() && is_expired(metadata.modified()?, ttl) => {
            remove_if_present(&files.data)?
        }
        Ok(_) => false,
        Err(error) if error.kind() == ErrorKind::NotFound => false,
        Err(error) => return Err(error),
    };
    remove_lock_file_if_session_gone(&lock, files)?;
    Ok(removed)
}

/// What a directory entry is to gc.
pub(super) enum Entry<'a> {
    /// `sess_{id}`.
    Session(&'a str),
    /// `sess_{id}.lock`.
    Lock(&'a str),
    /// `.sess_{id}.{16 hex digits}.tmp`, left by a write that crashed or is
    /// in flight (or `.sess_probe.….tmp`, by the writability probe).
    Temp,
    /// Anything else, even if it starts with `sess_` (an admin's
    /// `sess_important_backup`): not ours, left alone.
    Other,
}

/// Names gc may act on are exactly the names nene makes, with an `{id}`
/// that parses as a session id (`format`, or any format nene accepts).
pub(super) fn classify(name: &str, format: Option<SessionIdFormat>) -> Entry<'_> {
    if let Some(rest) = name.strip_prefix(".sess_")
        && let Some(rest) = rest.strip_suffix(".tmp")
        && let Some((id, random)) = rest.rsplit_once('.')
        && random.len() == 16
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (id == PROBE || is_session_id(id, format))
    {
        return Entry::Temp;
    }
    let Some(rest) = name.strip_prefix("sess_") else {
        return Entry::Other;
    };
    if let Some(id) = rest.strip_suffix(".lock")
        && is_session_id(id, format)
    {
        Entry::Lock(id)
    } else if is_session_id(rest, format) {
        Entry::Session(rest)
    } else {
        Entry::Other
    }
}

/// Whether `text` is an id nene could have issued: of `format` when known,
/// else of any length and alphabet [`SessionIdFormat`] allows. Both are
/// fixed alphabets without `_` or `.`, of 22 characters at least.
pub(super) fn is_session_id(text: &str, format: Option<SessionIdFormat>) -> bool {
    match format {
        Some(format) => format.parse(text).is_some(),
        None => ID_BITS_PER_CHARACTER.into_iter().any(|bits| {
            SessionIdFormat::new(text.len(), bits).is_ok_and(|format| format.parse(text).is_some())
        }),
    }
}

/// Sweeps the directory: expired sessions, stale temp files, then lock files
/// of sessions that no longer exist. Entries that vanish or fail on the way
/// are skipped; the next run tries again.
pub(super) fn collect_garbage(
    dir: &Path,
    ttl: Duration,
    id_format: Option<SessionIdFormat>,
) -> Result<u64, SessionError> {
    let entries = fs::read_dir(dir).map_err(|error| SessionError::Backend {
        backend: BACKEND,
        operation: "gc",
        message: format!("{}: {error}", dir.display()),
    })?;
    let mut removed_sessions = 0;
    let mut lock_ids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // DirEntry::metadata does not follow symlinks: only our own regular
        // files are ever removed.
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let expired = metadata.modified().is_ok_and(|m| is_expired(m, ttl));
        match classify(name, id_format) {
            Entry::Session(id) if expired => {
                let files = SessionFiles::new(dir, id);
                match remove_if_expired(&files, ttl) {
                    Ok(true) => removed_sessions += 1,
                    Ok(false) => {}
                    Err(error) => tracing::debug!("gc skipped {}: {error}", files.shown),
                }
            }
            Entry::Temp if expired => {
                if let Err(error) = remove_if_present(&entry.path()) {
                    tracing::debug!("gc skipped a temp file in {}: {error}", dir.display());
                }
            }
            Entry::Lock(id) => lock_ids.push(id.to_string()),
            Entry::Session(_) | Entry::Temp | Entry::Other => {}
        }
    }
    for id in lock_ids {
        let files = SessionFiles::new(dir, &id);
        if let Err(error) = remove_unused_lock_file(&files) {
            tracing::debug!("gc skipped the lock file of {}: {error}", files.shown);
        }
    }
    Ok(removed_sessions)
}

/// The directories sessions live in: `dir` itself, or with PHP's `N;`
/// layout every directory `depth` levels down (one-character names only;
/// symlinks are not followed).
pub(super) fn session_directories(dir: &Path, depth: usize) -> Vec<std::path::PathBuf> {
    let mut level = vec![dir.to_path_buf()];
    for _ in 0..depth {
        level = level
            .iter()
            .filter_map(|parent| fs::read_dir(parent).ok())
            .flat_map(|entries| entries.flatten())
            .filter(|entry| {
                entry.file_name().len() == 1 && entry.file_type().is_ok_and(|kind| kind.is_dir())
            })
            .map(|entry| entry.path())
            .collect();
    }
    level
}
