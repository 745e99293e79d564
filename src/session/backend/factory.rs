//! The one place that turns `SESSION_DSN` into a session backend
//! (docs/decisions/0006): empty → files, `memory://` → this process's
//! memory, `redis://…` → Redis,
//! `memcached://…` → memcached, `sqlite://`, `mysql://`, `postgres://` → SQL.
//! A new backend is one more arm here. Redis Cluster, Redis over TLS,
//! memcached and each SQL driver are Cargo features; a DSN for one this
//! build left out is a start-up error naming the feature, never a fallback.
//! With
//! `session.migrate_from` set, the backend it names stands behind the new
//! one (migrating.rs). Nothing here opens a connection: a Redis
//! that is down at start-up fails requests that need a session, not start-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::session::{SavePathLock, SessionSettings};

use crate::session::backend::dsn::{DsnError, SessionBackend, SessionDsn};
use crate::session::backend::dsn::{RedisAddress, RedisDsn, SqlDriver};
use crate::session::backend::files::FileSessionHandler;
#[cfg(feature = "memcached")]
use crate::session::backend::memcached::{MemcachedSessionHandler, MemcachedSetupError};
use crate::session::backend::memory::MemorySessionHandler;
use crate::session::backend::migrating::MigratingSessionHandler;
use crate::session::backend::redis::{RedisSessionHandler, RedisSetupError};
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
use crate::session::backend::sql::{SqlSessionHandler, SqlSetupError};
use crate::session::backend::{SessionAdmin, SessionHandler};

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

    /// The backend `dsn` names, on its own.
    fn one_backend(
        dsn: &str,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn SessionAdmin>, SessionSetupError> {
        let parsed = SessionDsn::parse(dsn)?;
        let ttl = Duration::from_secs(settings.gc_maxlifetime);
        let handler: Arc<dyn SessionAdmin> = match parsed.backend() {
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
            SessionBackend::Memory => {
                Arc::new(MemorySessionHandler::new(ttl).with_max_size(settings.max_size))
            }
            SessionBackend::Redis(redis) => {
                if let Some((backend, feature)) = missing_redis_feature(redis) {
                    return Err(SessionSetupError::NotCompiled {
                        dsn: parsed.redacted(),
                        backend,
                        feature,
                    });
                }
                Arc::new(RedisSessionHandler::new(&parsed, ttl)?.with_max_size(settings.max_size))
            }
            SessionBackend::Memcached(_) => memcached(&parsed, ttl, settings)?,
            SessionBackend::Sql(sql) => {
                if let Some(feature) = missing_sql_feature(sql.driver) {
                    return Err(SessionSetupError::NotCompiled {
                        dsn: parsed.redacted(),
                        backend: "SQL",
                        feature,
                    });
                }
                sql_backend(&parsed, ttl, settings)?
            }
        };
        Ok(handler)
    }
}

/// The memcached backend, when this build has it.
#[cfg(feature = "memcached")]
fn memcached(
    parsed: &SessionDsn,
    ttl: Duration,
    settings: &SessionSettings,
) -> Result<Arc<dyn SessionAdmin>, SessionSetupError> {
    Ok(Arc::new(
        MemcachedSessionHandler::new(parsed, ttl)?.with_max_size(settings.max_size),
    ))
}

#[cfg(not(feature = "memcached"))]
fn memcached(
    parsed: &SessionDsn,
    _ttl: Duration,
    _settings: &SessionSettings,
) -> Result<Arc<dyn SessionAdmin>, SessionSetupError> {
    Err(SessionSetupError::NotCompiled {
        dsn: parsed.redacted(),
        backend: "memcached",
        feature: "memcached",
    })
}

/// What a Redis DSN needs that this build lacks: the backend's name for the
/// message, and the feature.
fn missing_redis_feature(redis: &RedisDsn) -> Option<(&'static str, &'static str)> {
    if matches!(redis.address, RedisAddress::Cluster { .. }) && !cfg!(feature = "redis-cluster") {
        return Some(("Redis Cluster", "redis-cluster"));
    }
    if redis.address.tls() && !cfg!(feature = "redis-tls") {
        return Some(("Redis over TLS", "redis-tls"));
    }
    None
}

/// The feature a SQL driver needs, when this build lacks it.
fn missing_sql_feature(driver: SqlDriver) -> Option<&'static str> {
    match driver {
        SqlDriver::Sqlite if !cfg!(feature = "sqlite") => Some("sqlite"),
        SqlDriver::MySql if !cfg!(feature = "mysql") => Some("mysql"),
        SqlDriver::Postgres if !cfg!(feature = "postgres") => Some("postgres"),
        _ => None,
    }
}

/// The SQL backend; only reached for a driver this build has.
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
fn sql_backend(
    parsed: &SessionDsn,
    ttl: Duration,
    settings: &SessionSettings,
) -> Result<Arc<dyn SessionAdmin>, SessionSetupError> {
    Ok(Arc::new(
        SqlSessionHandler::new(parsed, ttl)?.with_max_size(settings.max_size),
    ))
}

#[cfg(not(any(feature = "sqlite", feature = "mysql", feature = "postgres")))]
fn sql_backend(
    _parsed: &SessionDsn,
    _ttl: Duration,
    _settings: &SessionSettings,
) -> Result<Arc<dyn SessionAdmin>, SessionSetupError> {
    unreachable!("missing_sql_feature refuses every driver when no SQL feature is on")
}
