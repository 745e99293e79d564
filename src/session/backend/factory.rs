//! The one place that turns `SESSION_DSN` into a session backend
//! (docs/decisions/0006): a table with one row a backend ([`BACKENDS`]):
//! the DSN schemes that name it, its parser (in its folder) and its
//! constructor. Empty or `files` → files, `memory://` → this process's
//! memory, `redis…://` → Redis, `memcached://` → memcached, `sqlite://`,
//! `mysql://`, `postgres://` → SQL. Redis Cluster, Redis over TLS,
//! memcached and each SQL driver are Cargo features; their DSNs are parsed
//! in every build, and the constructor of one this build left out is a
//! start-up error naming the feature, never a fallback. With
//! `session.migrate_from` set, the backend it names stands behind the new
//! one (migrating.rs). Nothing here opens a connection: a Redis that is
//! down at start-up fails requests that need a session, not start-up.

use std::path::PathBuf;
use std::sync::Arc;

use crate::session::SessionSettings;
use crate::session::backend::dsn::{DsnError, Parser, SessionBackend, SessionDsn};
#[cfg(feature = "memcached")]
use crate::session::backend::memcached::MemcachedSetupError;
use crate::session::backend::migrating::MigratingSessionHandler;
#[cfg(feature = "redis")]
use crate::session::backend::redis::RedisSetupError;
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
use crate::session::backend::sql::SqlSetupError;
use crate::session::backend::{SessionAdmin, SessionHandler};
use crate::session::backend::{files, memcached, memory, redis, sql};

/// One kind of session backend: a row of the factory's table.
pub(crate) struct BackendKind {
    /// The DSN schemes that name it, lowercase (none for files, which an
    /// empty DSN or `files` names).
    pub(crate) schemes: &'static [&'static str],
    /// Its DSN forms, as a start-up error lists what is accepted.
    pub(crate) forms: &'static [&'static str],
    /// Reads what follows `scheme://` (the scheme lowercased).
    pub(crate) parse: fn(&Parser<'_>, &str, &str) -> Result<SessionBackend, DsnError>,
    /// Builds the backend from its DSN and the `[session]` settings
    /// (sessions live `session.gc_maxlifetime`); or says which feature
    /// this build lacks.
    pub(crate) open: fn(&SessionDsn, &SessionSettings) -> Opened,
}

/// What a backend's constructor gives.
pub(crate) type Opened = Result<Arc<dyn SessionAdmin>, SessionSetupError>;

impl BackendKind {
    /// A row: the backend's DSN schemes, forms and parser (from its
    /// `dsn.rs`) and its constructor.
    pub(crate) const fn new(
        schemes: &'static [&'static str],
        forms: &'static [&'static str],
        parse: fn(&Parser<'_>, &str, &str) -> Result<SessionBackend, DsnError>,
        open: fn(&SessionDsn, &SessionSettings) -> Opened,
    ) -> Self {
        Self {
            schemes,
            forms,
            parse,
            open,
        }
    }
}

/// Every backend nene knows, compiled in or not.
pub(crate) const BACKENDS: &[BackendKind] = &[
    files::KIND,
    memory::KIND,
    redis::KIND,
    memcached::KIND,
    sql::KIND,
];

/// Picks and builds the session backend.
pub struct SessionHandlerFactory;

/// Why no session backend could be set up; every message is safe to print
/// (DSN passwords are masked).
#[derive(Debug, thiserror::Error)]
pub enum SessionSetupError {
    /// `SESSION_DSN` does not parse.
    #[error(transparent)]
    Dsn(#[from] DsnError),
    /// `session.save_path` is not a directory, cannot be created, or is not
    /// writable.
    // The handler's error already names the path.
    #[error("{source}")]
    Files {
        /// The configured `session.save_path`.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The Redis client cannot be built from the DSN (an unreadable
    /// `tls_ca_file`, settings the client refuses).
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(#[from] RedisSetupError),
    /// The memcached handler cannot be built from the DSN.
    #[cfg(feature = "memcached")]
    #[error(transparent)]
    Memcached(#[from] MemcachedSetupError),
    /// The DSN names a backend this build of the application left out.
    #[error(
        "SESSION_DSN `{dsn}`: this build has no {backend} sessions; build the application with nene's `{feature}` feature (in Cargo.toml: nene = {{ …, features = [\"{feature}\"] }}, or `cargo build --features {feature}` in nene's repository)"
    )]
    NotCompiled {
        /// The DSN, password masked.
        dsn: String,
        /// The backend in words.
        backend: &'static str,
        /// The Cargo feature that brings it in.
        feature: &'static str,
    },
    /// `session.migrate_from` does not parse as a DSN.
    #[error("session.migrate_from: {0}")]
    MigrateFrom(DsnError),
    /// `session.migrate_from` names the backend `session.dsn` already uses:
    /// there is nothing to move, and reading "the old one" would read the
    /// new one twice.
    #[error(
        "session.migrate_from `{0}` names the same backend as session.dsn; remove it once the move is over"
    )]
    MigrateFromSame(String),
    /// The SQL backend cannot be set up from the DSN.
    #[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
    #[error(transparent)]
    Sql(#[from] SqlSetupError),
}

impl SessionHandlerFactory {
    /// The backend `dsn` names, with sessions living
    /// `settings.gc_maxlifetime` seconds; files go to `settings.save_path`.
    /// With `settings.migrate_from` set, the old backend it names stands
    /// behind it ([`MigratingSessionHandler`]).
    pub fn from_dsn(
        dsn: &str,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn SessionHandler>, SessionSetupError> {
        let new = Self::one_backend(dsn, settings)?;
        if settings.migrate_from.trim().is_empty() {
            return Ok(new);
        }
        let old_dsn =
            SessionDsn::parse(&settings.migrate_from).map_err(SessionSetupError::MigrateFrom)?;
        if old_dsn.backend() == SessionDsn::parse(dsn)?.backend() {
            return Err(SessionSetupError::MigrateFromSame(old_dsn.redacted()));
        }
        let old = Self::one_backend(&settings.migrate_from, settings)?;
        Ok(Arc::new(MigratingSessionHandler::new(new, old)))
    }

    /// The backend `dsn` names, on its own, with what `nene sessions copy`
    /// needs of it (`session.migrate_from` plays no part).
    pub fn admin(
        dsn: &str,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn SessionAdmin>, SessionSetupError> {
        Self::one_backend(dsn, settings)
    }

    /// The backend `dsn` names, on its own: its row's constructor.
    fn one_backend(
        dsn: &str,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn SessionAdmin>, SessionSetupError> {
        let parsed = SessionDsn::parse(dsn)?;
        (parsed.kind().open)(&parsed, settings)
    }
}

impl SessionSetupError {
    /// The error of a DSN whose backend this build left out.
    pub(crate) fn not_compiled(
        dsn: &SessionDsn,
        backend: &'static str,
        feature: &'static str,
    ) -> Self {
        Self::NotCompiled {
            dsn: dsn.redacted(),
            backend,
            feature,
        }
    }
}
