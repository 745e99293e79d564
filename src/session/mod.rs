//! Sessions, in two halves.
//!
//! | where | what |
//! |---|---|
//! | [`backend`] | where session data lives: the [`SessionHandler`] contract, the lock a request holds (`lock.rs`), the factory that picks a backend from `SESSION_DSN`, the DSN types, one folder or file per backend (`files/`, `memory.rs`, `redis/`, `memcached/`, `sql/`), and `migrating.rs` for `session.migrate_from` |
//! | [`copy`] | `nene sessions copy`: every live session of one backend into another |
//! | [`lifecycle`] | what happens around every request: the [`Session`] handle a handler takes, the layer that commits it, the [`SessionRuntime`] bundle built at start-up, the cookie, the in-process queue, the write chain (group commit), refused-id warnings and counters |
//! | [`format`](mod@format) | how session data becomes bytes: `json` (nene's), PHP's `php` and `php_serialize` |
//! | `id.rs`, `error.rs`, `settings.rs` | shared by both: session ids, what can fail, the `[session]` settings |
//!
//! A request meets them in this order: the layer reads the cookie, the
//! handle starts lazily (local queue, then the backend's lock and read), the
//! handler runs, the layer commits (write chain or the backend's save) and
//! sets the cookie.

pub mod backend;
pub mod copy;
mod error;
pub mod format;
mod id;
pub mod lifecycle;
mod settings;

#[cfg(any(test, feature = "internals"))]
#[doc(hidden)]
pub use backend::BackendShorthands;
pub use backend::{
    DsnError, FileOptions, FileSessionHandler, HeldLock, LIST_PAGE_SIZE, LiveSession, LockedRead,
    MemcachedDsn, MemcachedOptions, MemorySessionHandler, MigratingSessionHandler, RedisAddress,
    RedisDsn, RedisOptions, SessionAdmin, SessionBackend, SessionDsn, SessionHandler,
    SessionHandlerFactory, SessionLock, SessionPage, SessionSetupError, SqlAddress, SqlDriver,
    SqlDsn, SqlOptions, Stored, Unreadable, redact_dsn,
};
#[cfg(feature = "memcached")]
pub use backend::{MemcachedSessionHandler, MemcachedSetupError};
#[cfg(feature = "redis")]
pub use backend::{RedisSessionHandler, RedisSetupError};
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
pub use backend::{SqlSessionHandler, SqlSetupError};
pub use error::SessionError;
pub use format::{Decoded, JsonCodec, KeptValues, PhpCodec, PhpHandler, SessionCodec, SessionData};
pub use id::{IdFormatError, MIN_ID_ENTROPY_BITS, SessionId, SessionIdFormat};
pub use lifecycle::{
    LocalLocks, ReadOnlySession, RejectedIds, Session, SessionCookie, SessionLayer, SessionMetrics,
    SessionRuntime, SessionService, SessionTimings,
};
pub use settings::{
    CacheLimiter, CookieSameSite, CookieSecure, SavePathLock, SerializeHandler, SessionSettings,
};
