//! The backend half of sessions: where session data lives. A
//! [`SessionHandler`] stores opaque session bytes under an id, with an
//! expiry, and can lock one session against concurrent requests. Small on
//! purpose: a new backend is one folder implementing it plus one arm in the
//! factory (`factory.rs`), which picks the backend from `SESSION_DSN`
//! (`dsn/`). The backends: files (`files/`), Redis with Sentinel and
//! Cluster (`redis/`), memcached (`memcached/`, feature `memcached`) and SQL
//! databases (`sql/`, features `sqlite`, `mysql`, `postgres`);
//! `migrating.rs` puts an old backend behind a new one while sessions move.

mod dsn;
mod factory;
mod files;
#[cfg(feature = "memcached")]
mod memcached;
mod migrating;
mod redis;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
mod sql;
mod token_lock;
mod unreadable;

pub use dsn::{
    DsnError, MemcachedDsn, MemcachedOptions, RedisAddress, RedisDsn, RedisOptions, SessionBackend,
    SessionDsn, SqlAddress, SqlDriver, SqlDsn, SqlOptions, redact_dsn,
};
pub use factory::{SessionHandlerFactory, SessionSetupError};
pub use files::FileSessionHandler;
#[cfg(feature = "memcached")]
pub use memcached::{MemcachedSessionHandler, MemcachedSetupError};
pub use migrating::MigratingSessionHandler;
pub use redis::{RedisSessionHandler, RedisSetupError};
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
pub use sql::{SqlSessionHandler, SqlSetupError};
pub use unreadable::Unreadable;

use std::any::Any;

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

/// A live session as [`SessionHandler::list_sessions`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSession {
    /// Its id, as stored (a PHP application's ids may have another length
    /// or alphabet than nene's own).
    pub id: SessionId,
    /// How long it has left before it expires.
    pub remaining: std::time::Duration,
}

/// One page of [`SessionHandler::list_sessions`].
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

/// A session backend. Every method is bounded in time by the backend's own
/// timeout and returns an error rather than hang.
#[async_trait]
pub trait SessionHandler: Send + Sync + 'static {
    /// Short name for logs and status pages: `files`, `redis`.
    fn name(&self) -> &'static str;

    /// Takes the exclusive lock of session `id`, waiting at most `wait`
    /// while another holder has it (one try is made even when `wait` is
    /// zero). Backends that do not lock return [`SessionLock::none`].
    async fn lock_within(
        &self,
        id: &SessionId,
        wait: std::time::Duration,
    ) -> Result<SessionLock, SessionError>;

    /// [`lock_within`](Self::lock_within) the whole
    /// [`lock_wait`](Self::lock_wait).
    async fn lock(&self, id: &SessionId) -> Result<SessionLock, SessionError> {
        self.lock_within(id, self.lock_wait()).await
    }

    /// What is stored under `id`. A value over `session.max_size` is
    /// [`Stored::Unreadable`] and is not loaded into memory.
    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError>;

    /// [`lock_within`](Self::lock_within) then [`read`](Self::read); a
    /// backend that can do both in one round trip overrides it. The lock is
    /// released if the read fails (and kept, for the request, when the data
    /// is unreadable). The session runtime calls this with what is left of
    /// `lock_wait` after the request's turn in the in-process queue, so
    /// one `lock_wait` bounds the whole wait.
    async fn lock_and_read_within(
        &self,
        id: &SessionId,
        wait: std::time::Duration,
    ) -> Result<(SessionLock, Stored), SessionError> {
        let lock = self.lock_within(id, wait).await?;
        match self.read(id).await {
            Ok(data) => Ok((lock, data)),
            Err(error) => {
                let _ = lock.release().await;
                Err(error)
            }
        }
    }

    /// [`lock_and_read_within`](Self::lock_and_read_within) the whole
    /// [`lock_wait`](Self::lock_wait).
    async fn lock_and_read(&self, id: &SessionId) -> Result<(SessionLock, Stored), SessionError> {
        self.lock_and_read_within(id, self.lock_wait()).await
    }

    /// For a read-only session ([`ReadOnlySession`](crate::ReadOnlySession)):
    /// what is stored under `id`, read without waiting for a request that
    /// holds the lock where the backend can. This default takes the lock
    /// ([`lock_and_read`](Self::lock_and_read)) and returns it, which is
    /// right for a backend whose value can be seen half-written; one that
    /// replaces values whole overrides it with [`read_without_lock`]. The
    /// session runtime gives the lock back at once, with a touch when the
    /// data is nene's to keep alive.
    async fn read_for_read_only(
        &self,
        id: &SessionId,
    ) -> Result<(SessionLock, Stored), SessionError> {
        self.lock_and_read(id).await
    }

    /// Stores `data` and (re)starts its expiry (`session.gc_maxlifetime`).
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError>;

    /// Restarts the expiry without rewriting the data (lazy_write).
    async fn touch(&self, id: &SessionId) -> Result<(), SessionError>;

    /// Stores `data` ([`write`](Self::write)), or when it is `None` only
    /// restarts the expiry ([`touch`](Self::touch)), then releases `lock`.
    /// A backend that can do both in one round trip overrides it. The lock
    /// is released even when saving fails; a failed release is logged, not
    /// returned (the data is saved and the lock expires by itself).
    async fn save_and_unlock(
        &self,
        id: &SessionId,
        data: Option<Bytes>,
        lock: SessionLock,
    ) -> Result<(), SessionError> {
        save_then_release(self, id, data, lock).await
    }

    /// Stores `data` like [`write`](Self::write), as a write of a chain of
    /// hand-offs (write_chain.rs) that holds the lock whose token is
    /// `token`. A backend that can should store it only while the lock
    /// still holds `token` (a fenced write, as Redis does): a write that
    /// arrives late, after the lock moved on, must store nothing.
    async fn write_holding(
        &self,
        id: &SessionId,
        data: Bytes,
        token: &str,
    ) -> Result<(), SessionError> {
        let _ = token;
        self.write(id, data).await
    }

    /// Whether a chain's last write ([`save_and_unlock`](Self::save_and_unlock))
    /// may be sent while its previous write is unanswered: both are fenced
    /// by the lock's token ([`write_holding`](Self::write_holding)), so the
    /// earlier one stores nothing if it arrives after the last released the
    /// lock, whatever the order on the wire. Saves a round trip at the end
    /// of every run of hand-offs.
    fn sends_last_write_behind(&self) -> bool {
        false
    }

    /// Deletes the session. Deleting a missing session is not an error.
    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError>;

    /// Whether a session with this id is stored (use_strict_mode).
    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError>;

    /// Removes sessions unused for longer than the expiry; returns how many.
    /// A no-op for backends that expire keys themselves.
    async fn gc(&self) -> Result<u64, SessionError>;

    /// One round trip to the backend, for `nene check` and health pages.
    async fn ping(&self) -> Result<(), SessionError>;

    /// Stores `data` to expire after `lifetime` rather than the configured
    /// `session.gc_maxlifetime`: `nene sessions copy` keeps each session's
    /// remaining lifetime. Otherwise like [`write`](Self::write).
    async fn write_with_lifetime(
        &self,
        id: &SessionId,
        data: Bytes,
        lifetime: std::time::Duration,
    ) -> Result<(), SessionError> {
        let _ = (id, data, lifetime);
        Err(unsupported(self.name(), "write_with_lifetime"))
    }

    /// One page of the live (unexpired) sessions with their remaining
    /// lifetime, for `nene sessions copy`: `cursor` is `None` for the first
    /// page and then the [`SessionPage::next`] of the page before; `next` is
    /// `None` on the last page. Pages are small (about [`LIST_PAGE_SIZE`]) so
    /// a copy never holds a whole store in memory; a session written while
    /// the listing runs may or may not be in it.
    async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError> {
        let _ = cursor;
        Err(unsupported(self.name(), "list_sessions"))
    }

    /// Whether requests of one session exclude each other. When true, the
    /// runtime also queues same-session requests in-process before taking
    /// the backend's lock, so they wait in order instead of polling it.
    fn uses_locking(&self) -> bool {
        true
    }

    /// How long a request waits for the lock of its session, in the
    /// in-process queue and then at the backend together, before it gets a
    /// 503.
    fn lock_wait(&self) -> std::time::Duration {
        DEFAULT_LOCK_WAIT
    }

    /// How long a lock outlives a holder that never released it, for
    /// backends whose locks expire; `None` when they do not (flock ends
    /// with its holder).
    fn lock_expiry(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The error of an operation a backend cannot do.
fn unsupported(backend: &'static str, operation: &'static str) -> SessionError {
    SessionError::Backend {
        backend,
        operation,
        message: "this backend cannot do that".to_string(),
    }
}

/// [`SessionHandler::read_for_read_only`] for a backend whose reads never
/// see a value half-written: [`read`](SessionHandler::read), no lock.
pub async fn read_without_lock<H: SessionHandler + ?Sized>(
    handler: &H,
    id: &SessionId,
) -> Result<(SessionLock, Stored), SessionError> {
    Ok((SessionLock::none(), handler.read(id).await?))
}

/// The plain [`SessionHandler::save_and_unlock`]: write (or touch), then
/// release, in two steps. For backends that override it but sometimes
/// cannot do better.
pub async fn save_then_release<H: SessionHandler + ?Sized>(
    handler: &H,
    id: &SessionId,
    data: Option<Bytes>,
    lock: SessionLock,
) -> Result<(), SessionError> {
    let saved = match data {
        Some(data) => handler.write(id, data).await,
        None => handler.touch(id).await,
    };
    if let Err(error) = lock.release().await {
        warn_release_failed(Some(id), &error);
    }
    saved
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

/// Releasing a held lock; implemented by each backend's lock.
#[async_trait]
pub trait HeldLock: Send + Sync + 'static {
    /// Gives the lock up. Only the holder's own lock is released (a lock
    /// that expired and was taken by someone else is left alone).
    async fn release(self: Box<Self>) -> Result<(), SessionError>;

    /// The random token the lock holds in the backend, for locks that are
    /// a key holding one (token_lock.rs).
    fn token(&self) -> Option<&str> {
        None
    }

    /// The lock as `Any`, so that the backend that made it can take it back
    /// (to fold its release into another round trip).
    fn as_any(&self) -> &dyn Any;

    /// The boxed lock as `Any`, so that [`SessionLock::take_as`] can downcast
    /// it to the backend's own type.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// A session lock as the runtime holds it: released explicitly after the
/// write. If it is dropped without that (the request was cancelled), the
/// release runs in a background task so the lock never outlives its TTL.
#[must_use = "a lock must be released"]
pub struct SessionLock {
    held: Option<Box<dyn HeldLock>>,
}

impl SessionLock {
    /// No lock: for backends or configurations without locking.
    pub fn none() -> Self {
        Self { held: None }
    }

    /// A lock a backend has just taken.
    pub fn held(lock: Box<dyn HeldLock>) -> Self {
        Self { held: Some(lock) }
    }

    /// Whether a backend lock is held (false for [`none`](Self::none) and
    /// after [`take_as`](Self::take_as) took it).
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// The held lock's token ([`HeldLock::token`]), if it has one.
    pub fn token(&self) -> Option<&str> {
        self.held.as_ref()?.token()
    }

    /// Takes the held lock back as the backend's own type `T`, if it is one;
    /// otherwise the lock stays as it was.
    pub fn take_as<T: HeldLock>(&mut self) -> Option<Box<T>> {
        if !self.held.as_ref()?.as_any().is::<T>() {
            return None;
        }
        self.held.take()?.into_any().downcast::<T>().ok()
    }

    /// Releases the lock now, rather than in a background task on drop; a
    /// lock that is not held releases nothing.
    pub async fn release(mut self) -> Result<(), SessionError> {
        match self.held.take() {
            Some(lock) => lock.release().await,
            None => Ok(()),
        }
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(lock) = self.held.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(error) = lock.release().await {
                    warn_release_failed(None, &error);
                }
            });
        }
    }
}
