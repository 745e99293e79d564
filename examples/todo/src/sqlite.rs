//! SQLite through rusqlite, run on the request's own thread. sqlx runs each
//! SQLite connection on a thread of its own and hands every statement and
//! every row across with a channel: two thread wake-ups per query, which
//! cost this application more CPU than the query itself (benches/README.md,
//! "the todo application against PHP-FPM"). A local SQLite file needs no
//! such hand-off: a read in WAL mode never waits for a writer, so reads run
//! where the request runs, like any other computation of a few
//! microseconds. Writes may wait for another connection's write lock (up to
//! `BUSY_TIMEOUT`), so they go to tokio's blocking pool instead of holding a
//! request thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long a write waits for another connection's write lock before it
/// fails (busy): long enough to ride out a burst of writes, short enough
/// that a stuck writer turns into 503s rather than requests that hang.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections kept open between requests. A connection is used by one
/// request at a time and given back at once (no query awaits anything
/// while it holds one), so a burst needs at most one per thread; more than
/// this are closed when given back.
const MAX_IDLE: usize = 16;

/// Statements each connection keeps prepared: every query of the store.
const STATEMENT_CACHE: usize = 16;

/// One SQLite database file and its idle connections.
pub struct Sqlite {
    path: PathBuf,
    flags: OpenFlags,
    idle: Mutex<Vec<Connection>>,
}

impl Sqlite {
    /// The database at `path` (created, unless `read_only`); nothing is
    /// opened until the first query.
    pub fn new(path: &Path, read_only: bool) -> Sqlite {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Sqlite {
            path: path.to_path_buf(),
            flags,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `work` on an idle connection (or a new one), on this thread.
    /// For reads, and for writes at start-up.
    pub fn run<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let idle = self.lock_idle().pop();
        let connection = match idle {
            Some(connection) => connection,
            None => self.connect()?,
        };
        let result = work(&connection);
        let mut idle = self.lock_idle();
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
        result
    }

    /// Runs `work` like [`run`](Self::run), on tokio's blocking pool: for
    /// writes, which may wait for the write lock.
    pub async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        let sqlite = self.clone();
        match tokio::task::spawn_blocking(move || sqlite.run(work)).await {
            Ok(result) => result,
            // A panic in `work` is this application's bug: let it be one.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(&self.path, self.flags)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        connection.pragma_update(None, "foreign_keys", true)?;
        Ok(connection)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic never happens while the list is held: only push and pop.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
