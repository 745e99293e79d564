//! The one place that turns `SESSION_DSN` into a session backend
//! (docs/decisions/0006): empty → files, `redis://…` → Redis,
//! `memcached://…` → memcached, `sqlite://`, `mysql://`, `postgres://` → SQL.
//! A new backend is one more arm here. With
//! `session.migrate_from` set, the backend it names stands behind the new
//! one (migrating.rs). Nothing here opens a connection: a Redis
//! that is down at start-up fails requests that need a session, not start-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::session::{SavePathLock, SessionSettings};

use crate::session::backend::SessionHandler;
use crate::session::backend::dsn::{DsnError, SessionBackend, SessionDsn};
use crate::session::backend::files::FileSessionHandler;
use crate::session::backend::memcached::{MemcachedSessionHandler, MemcachedSetupError};
use crate::session::backend::migrating::MigratingSessionHandler;
use crate::session::backend::redis::{RedisSessionHandler, RedisSetupError};
use crate::session::backend::sql::{SqlSessionHandler, SqlSetupError};

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
    #[error(transparent)]
    Redis(#[from] RedisSetupError),
    /// The memcached handler cannot be built from the DSN.
    #[error(transparent)]
    Memcached(#[from] MemcachedSetupError),
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

    /// The backend `dsn` names, on its own.
    fn one_backend(
        dsn: &str,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn SessionHandler>, SessionSetupError> {
        let parsed = SessionDsn::parse(dsn)?;
        let ttl = Duration::from_secs(settings.gc_maxlifetime);
        let handler: Arc<dyn SessionHandler> = match parsed.backend() {
            SessionBackend::Files => Arc::new(
                FileSessionHandler::new(&settings.save_path, ttl)
                    .map_err(|source| SessionSetupError::Files {
                        path: settings.save_path.clone(),
                        source,
                    })?
                    .with_fsync(settings.save_path_fsync)
                    .with_max_size(settings.max_size)
                    .with_php_locking(settings.save_path_lock == SavePathLock::SessionFile)
                    .with_lock_wait(settings.save_path_lock_wait)
                    .with_depth(settings.save_path_depth)
                    .with_id_format_if_valid(settings.sid_length, settings.sid_bits_per_character),
            ),
            SessionBackend::Redis(_) => {
                Arc::new(RedisSessionHandler::new(&parsed, ttl)?.with_max_size(settings.max_size))
            }
            SessionBackend::Memcached(_) => Arc::new(
                MemcachedSessionHandler::new(&parsed, ttl)?.with_max_size(settings.max_size),
            ),
            SessionBackend::Sql(_) => {
                Arc::new(SqlSessionHandler::new(&parsed, ttl)?.with_max_size(settings.max_size))
            }
        };
        Ok(handler)
    }
}
