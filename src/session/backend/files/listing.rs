//! Listing live sessions and storing one with a given remaining lifetime:
//! what `nene sessions copy` needs of the files backend. A file session's
//! remaining lifetime is `gc_maxlifetime` minus the age of its mtime, so a
//! copy sets the mtime rather than storing an expiry.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::session::backend::{LIST_PAGE_SIZE, LiveSession, SessionPage};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

use super::BACKEND;
use super::gc::{Entry, classify, session_directories};

/// The live sessions after `cursor` (an id; `None` = from the first), in id
/// order, at most [`LIST_PAGE_SIZE`]. Every page reads the directory again:
/// a directory is the only index files have, and reading 10,000 names is
/// far cheaper than copying 10,000 sessions.
pub(super) fn list_page(
    dir: &Path,
    depth: usize,
    ttl: Duration,
    cursor: Option<&str>,
) -> Result<SessionPage, SessionError> {
    let now = SystemTime::now();
    let mut live = Vec::new();
    for leaf in session_directories(dir, depth) {
        let entries = fs::read_dir(&leaf).map_err(|error| SessionError::Backend {
            backend: BACKEND,
            operation: "list",
            message: format!("{}: {error}", leaf.display()),
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Any id nene accepts, of any configured format: the sessions
            // may have been written by PHP with another sid_length.
            let Entry::Session(id) = classify(name, None) else {
                continue;
            };
            if cursor.is_some_and(|after| id <= after) {
                continue;
            }
            // Not followed: only nene's own regular files are sessions.
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            let Ok(modified) = metadata.modified() else {
                continue;
            };
            let Some(remaining) = remaining_lifetime(modified, ttl, now) else {
                continue;
            };
            if let Some(id) = SessionId::from_store(id) {
                live.push(LiveSession { id, remaining });
            }
        }
    }
    live.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let more = live.len() > LIST_PAGE_SIZE;
    live.truncate(LIST_PAGE_SIZE);
    let next = more
        .then(|| live.last().map(|last| last.id.as_str().to_string()))
        .flatten();
    Ok(SessionPage {
        sessions: live,
        next,
    })
}

/// How long a session last written at `modified` has left; `None` once
/// expired. An mtime in the future (set by a copy, or a clock stepped back)
/// adds to the lifetime.
fn remaining_lifetime(modified: SystemTime, ttl: Duration, now: SystemTime) -> Option<Duration> {
    let expires = modified + ttl;
    expires
        .duration_since(now)
        .ok()
        .filter(|left| !left.is_zero())
}

/// Sets the mtime of a freshly written session file so that it expires
/// `lifetime` from now: `now + lifetime - ttl`.
pub(super) fn expire_after(path: &Path, ttl: Duration, lifetime: Duration) -> io::Result<()> {
    let now = SystemTime::now();
    let modified = if lifetime >= ttl {
        now + (lifetime - ttl)
    } else {
        now - (ttl - lifetime)
    };
    File::open(path)?.set_modified(modified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remaining_lifetime_counts_from_the_mtime() {
        let now = SystemTime::now();
        let ttl = Duration::from_secs(100);
        assert_eq!(
            remaining_lifetime(now - Duration::from_secs(30), ttl, now),
            Some(Duration::from_secs(70))
        );
        assert_eq!(remaining_lifetime(now - ttl, ttl, now), None);
        assert_eq!(
            remaining_lifetime(now + Duration::from_secs(5), ttl, now),
            Some(Duration::from_secs(105))
        );
    }
}
