//! The backend half of sessions: where session data lives. A
//! [`SessionHandler`] (this file) stores opaque session bytes under an id,
//! with an expiry, and locks one session against concurrent requests; the
//! lock a request holds, and what may be done while holding it, is
//! `lock.rs` ([`SessionLock`], [`HeldLock`]); `nene sessions copy`'s part is
//! [`SessionAdmin`]. The factory (`factory.rs`) is a table with a row a
//! backend: the `SESSION_DSN` schemes that name it, its DSN parser and its
//! constructor; `dsn/` is what all DSNs share. The backends, each in its
//! folder or file with its own DSN: files (`files/`), this process's memory
//! (`memory.rs`, for tests), Redis with Sentinel and Cluster (`redis/`),
//! memcached (`memcached/`, feature `memcached`) and SQL databases (`sql/`,
//! features `sqlite`, `mysql`, `postgres`); `migrating.rs` puts an old
//! backend behind a new one while sessions move.
//!
//! A new backend (docs/decisions/0028 has the list, as `memory.rs` was
//! added): its folder or file, implementing `SessionHandler`,
//! `SessionAdmin` and its lock's `HeldLock` (or, when writes need nothing
//! of the lock, `lock::Release` under `WritesThroughStore`), its DSN parser
//! and its `KIND` (the factory's row); a `SessionBackend` variant for its
//! parsed DSN in `dsn/`; the row in `factory::BACKENDS`; a `Backend` of the
//! contract suite in `tests/sessions/contract.rs`; a row in the README's DSN
//! table.

mod backoff;
mod dsn;
mod factory;
mod files;
mod lock;
mod memcached;
mod memory;
mod migrating;
mod redis;
// Only nene's own tests use them: applications do not compile them.
#[cfg(any(test, feature = "internals"))]
mod shorthands;
mod sql;
mod token_lock;
mod unreadable;

pub use dsn::{DsnError, SessionBackend, SessionDsn, redact_dsn};
pub use factory::{SessionHandlerFactory, SessionSetupError};
pub use files::{FileOptions, FileSessionHandler};
pub use lock::{HeldLock, SessionLock};
pub use memcached::{MemcachedDsn, MemcachedOptions};
#[cfg(feature = "memcached")]
pub use memcached::{MemcachedSessionHandler, MemcachedSetupError};
pub use memory::MemorySessionHandler;
pub use migrating::MigratingSessionHandler;
pub use redis::{RedisAddress, RedisDsn, RedisOptions};
#[cfg(feature = "redis")]
pub use redis::{RedisSessionHandler, RedisSetupError};
#[cfg(any(test, feature = "internals"))]
#[doc(hidden)]
pub use shorthands::BackendShorthands;
pub use sql::{SqlAddress, SqlDriver, SqlDsn, SqlOptions};
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
pub use sql::{SqlSessionHandler, SqlSetupError};
pub use unreadable::Unreadable;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::session::error::SessionError;
use crate::session::id::SessionId;

/// The largest stored session a backend loads unless told otherwise
/// (`session.max_size`'s default). Real sessions are a few KiB (a login, a
/// cart); 4 MiB is far past any of them, yet bounds what one request
/// allocates for a value that was planted or grew without bound.
pub(crate) const DEFAULT_MAX_SESSION_BYTES: u64 = 4 * 1024 * 1024;

/// How long a request waits for its session's lock unless the backend says
/// otherwise (the Redis DSN's `lock_wait`): long enough for a slow request
/// to finish, short enough that a stuck one cannot hold every later request
/// of the same session forever.
pub(crate) const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a backend found under a session id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Nothing: never stored, expired or destroyed.
    Missing,
    /// The stored bytes, for the codec to decode.
    Data(Bytes),
    /// Something the backend will not hand over: over `session.max_size`,
    /// or not a plain value. The request starts with an empty session and
    /// leaves the stored value alone unless its handler changes the session.
    Unreadable(Unreadable),
}

impl Stored {
    /// The bytes, when there are usable ones.
    pub fn data(self) -> Option<Bytes> {
        match self {
            Stored::Data(bytes) => Some(bytes),
            Stored::Missing | Stored::Unreadable(_) => None,
        }
    }
}

/// What [`SessionHandler::lock_and_read`] gives: the lock (or none) and
/// what is stored.
pub type LockedRead = Result<(SessionLock, Stored), SessionError>;

/// A live session as [`SessionAdmin::list_sessions`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSession {
    /// Its id, as stored (a PHP application's ids may have another length
    /// or alphabet than nene's own).
    pub id: SessionId,
    /// How long it has left before it expires.
    pub remaining: std::time::Duration,
}

/// One page of [`SessionAdmin::list_sessions`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionPage {
    /// The sessions on this page.
    pub sessions: Vec<LiveSession>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<String>,
}

/// How many sessions a backend lists per page unless it has a reason to
/// differ: large enough that a copy of 10,000 sessions is a few dozen round
/// trips, small enough that a page is a few MiB at most.
pub const LIST_PAGE_SIZE: usize = 500;

/// A session backend: what the request path needs. Every method is
/// bounded in time by the backend's own timeout and returns an error
/// rather than hang. What a request may do while it holds a session's lock
/// is on the lock ([`SessionLock`], [`HeldLock`]); listing and copying are
/// [`SessionAdmin`]'s.
#[async_trait]
pub trait SessionHandler: Send + Sync + 'static {
    /// Short name for logs and status pages: `files`, `redis`.
    fn name(&self) -> &'static str;

    /// Takes the exclusive lock of session `id`, waiting at most `wait`
    /// while another holder has it (one try is made even when `wait` is
    /// zero), and reads the session; in one round trip where the backend
    /// can. The lock is released if the read fails (and kept, for the
    /// request, when the data is unreadable). Backends or configurations
    /// that do not lock return [`SessionLock::none`]. The session runtime
    /// calls this with what is left of [`lock_wait`](Self::lock_wait) after
    /// the request's turn in the in-process queue, so one `lock_wait`
    /// bounds the whole wait.
    async fn lock_and_read(
        self: Arc<Self>,
        id: &SessionId,
        wait: std::time::Duration,
    ) -> LockedRead;

    /// What is stored under `id`. A value over `session.max_size` is
    /// [`Stored::Unreadable`] and is not loaded into memory.
    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError>;

    /// For a read-only session ([`ReadOnlySession`](crate::ReadOnlySession)):
    /// what is stored under `id`, read without waiting for a request that
    /// holds the lock where the backend can. This default takes the lock
    /// ([`lock_and_read`](Self::lock_and_read)), which is right for a
    /// backend whose value can be seen half-written; one that replaces
    /// values whole overrides it with [`read_without_lock`]. The session
    /// runtime gives the lock back at once, with a touch when the data is
    /// nene's to keep alive.
    async fn read_for_read_only(self: Arc<Self>, id: &SessionId) -> LockedRead {
        let wait = self.lock_wait();
        self.lock_and_read(id, wait).await
    }

    /// Stores `data` and (re)starts its expiry (`session.gc_maxlifetime`),
    /// with no lock held (locking off, or a new session).
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError>;

    /// Restarts the expiry without rewriting the data (lazy_write).
    async fn touch(&self, id: &SessionId) -> Result<(), SessionError>;

    /// Deletes the session. Deleting a missing session is not an error.
    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError>;

    /// Removes sessions unused for longer than the expiry; returns how many.
    /// A no-op for backends that expire keys themselves.
    async fn gc(&self) -> Result<u64, SessionError>;

    /// One round trip to the backend, for `nene check` and health pages.
    async fn ping(&self) -> Result<(), SessionError>;

    /// Whether requests of one session exclude each other. When true, the
    /// runtime also queues same-session requests in-process before taking
    /// the backend's lock, so they wait in order instead of polling it.
    fn uses_locking(&self) -> bool;

    /// How long a request waits for the lock of its session, in the
    /// in-process queue and then at the backend together, before it gets a
    /// 503.
    fn lock_wait(&self) -> std::time::Duration;

    /// How long a lock outlives a holder that never released it, for
    /// backends whose locks expire; `None` when they do not (flock ends
    /// with its holder).
    fn lock_expiry(&self) -> Option<std::time::Duration>;
}

/// What `nene sessions copy` needs of a backend besides reading: whether a
/// session is there, the live sessions page by page, and a write that keeps
/// a session's remaining lifetime. Never on the request path.
#[async_trait]
pub trait SessionAdmin: SessionHandler {
    /// Whether a session with this id is stored.
    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError>;

    /// Stores `data` as the copy of the session `live` lists: under its id,
    /// to expire when its remaining lifetime is over rather than after
    /// `session.gc_maxlifetime`. Otherwise like [`SessionHandler::write`].
    async fn store_copy(&self, live: &LiveSession, data: Bytes) -> Result<(), SessionError>;

    /// One page of the live (unexpired) sessions with their remaining
    /// lifetime: `cursor` is `None` for the first page and then the
    /// [`SessionPage::next`] of the page before; `next` is `None` on the
    /// last page. Pages are small (about [`LIST_PAGE_SIZE`]) so a copy
    /// never holds a whole store in memory; a session written while the
    /// listing runs may or may not be in it.
    async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError>;
}

/// [`SessionHandler::read_for_read_only`] for a backend whose reads never
/// see a value half-written: [`read`](SessionHandler::read), no lock.
pub async fn read_without_lock<H: SessionHandler + ?Sized>(
    handler: &H,
    id: &SessionId,
) -> LockedRead {
    Ok((SessionLock::none(), handler.read(id).await?))
}

/// Logs a lock release that failed (the lock's expiry frees the session
/// later), one line a second with a count of the rest: a backend that is
/// down fails every release at once.
pub(crate) fn warn_release_failed(id: Option<&SessionId>, error: &SessionError) {
    static LINES: crate::log_limit::LogLimit = crate::log_limit::LogLimit::new();
    let Some(left_out) = LINES.admit() else {
        return;
    };
    let which = id.map_or_else(
        || "an abandoned session lock".to_string(),
        |id| format!("the lock of session #{}", id.log_tag()),
    );
    tracing::warn!(
        "releasing {which} failed: {error}{}",
        crate::log_limit::and_more(left_out)
    );
}
