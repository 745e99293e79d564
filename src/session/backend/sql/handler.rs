//! The SQL session backend itself: [`SqlSessionHandler`] and the
//! statements of each request-path call; the module's documentation
//! (`mod.rs`) says how the table, the pool and the locks behave.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Row;

use super::dsn::{SqlAddress, SqlDriver, SqlDsn};
use crate::session::backend::dsn::SessionDsn;
use crate::session::backend::{
    DEFAULT_MAX_SESSION_BYTES, LiveSession, LockedRead, SessionAdmin, SessionHandler, SessionLock,
    SessionPage, Stored, Unreadable, read_without_lock,
};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

use super::lock::{self, Held, Shared, SqlLock};
use super::pool::{Pool, on_conn, on_pool};
use super::schema::Queries;
use super::{schema, sqlite_file, tls};

/// The backend's name in logs and errors, per driver.
pub(super) fn backend_name(driver: SqlDriver) -> &'static str {
    match driver {
        SqlDriver::Sqlite => "sqlite",
        SqlDriver::MySql => "mysql",
        SqlDriver::Postgres => "postgres",
    }
}

/// The SQL session backend.
pub struct SqlSessionHandler {
    /// The database, which picks the dialect and locking.
    pub(super) driver: SqlDriver,
    /// The bounded pool.
    pool: Pool,
    /// The statements, with the table filled in.
    queries: Queries,
    /// The table's name, for messages.
    table: String,
    /// Whether a missing table is created.
    create_table: bool,
    /// Set once the table is known to exist.
    ready: tokio::sync::OnceCell<()>,
    /// `None` with `lock=off`.
    lock_wait: Option<Duration>,
    /// Bound on each statement.
    pub(super) timeout: Duration,
    /// Bound on getting a pooled connection.
    acquire_timeout: Duration,
    /// `session.gc_maxlifetime` in whole seconds.
    pub(super) ttl_secs: i64,
    /// `session.max_size`.
    max_size: u64,
    /// Host, port and database (or file) for messages; no password.
    target: String,
    /// The password, only to mask it out of the database's messages.
    password: Option<String>,
}

/// Setting up the SQL backend failed (before any connection is attempted).
#[derive(Debug, thiserror::Error)]
pub enum SqlSetupError {
    /// The handler was asked to serve a DSN for another backend.
    #[error("SESSION_DSN `{dsn}` does not name a SQL database")]
    NotSql {
        /// The DSN, password masked.
        dsn: String,
    },
    /// A TLS file the DSN names (`sslrootcert`/`ssl-ca`, the client
    /// certificate or key) cannot be read.
    #[error("SESSION_DSN `{dsn}`: the TLS {what} {path} cannot be read: {reason}")]
    TlsFile {
        /// The DSN, password masked.
        dsn: String,
        /// Which file: CA, client certificate, client key.
        what: &'static str,
        /// The path as given.
        path: String,
        /// What opening it said.
        reason: String,
    },
    /// The SQLite database file, or its `-wal` or `-shm`, can be read by
    /// others than nene.
    #[error("SESSION_DSN `{dsn}`: {message}")]
    SqliteNotPrivate {
        /// The DSN, password masked.
        dsn: String,
        /// Which file, its mode, and the command that fixes it.
        message: String,
    },
}

/// Seconds since the Unix epoch, as the table stores times.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Runs `$body` with `$e` an executor: the connection of the lock `$on`
/// (`Some` for what a lock holder does), else the pool. `$write` marks the
/// lock's connection as written to.
macro_rules! run {
    ($self:ident, $op:expr, $on:expr, $write:expr, |$e:ident| $body:expr) => {{
        match $on {
            Some(held) => {
                let mut held = held.lock().await;
                held.dirty |= $write;
                match held.conn.as_mut() {
                    Some(conn) => {
                        $self
                            .bounded($op, async {
                                on_conn!(conn, |c| {
                                    let $e = &mut **c;
                                    $body
                                })
                            })
                            .await
                    }
                    None => {
                        $self
                            .bounded($op, async { on_pool!(&$self.pool, |$e| $body) })
                            .await
                    }
                }
            }
            None => {
                $self
                    .bounded($op, async { on_pool!(&$self.pool, |$e| $body) })
                    .await
            }
        }
    }};
}

impl SqlSessionHandler {
    /// A handler for the database `dsn` names, whose sessions live `ttl`
    /// (`session.gc_maxlifetime`, whole seconds, at least one). Does not
    /// connect.
    pub fn new(dsn: &SessionDsn, ttl: Duration) -> Result<Self, SqlSetupError> {
        let Some(sql) = dsn.sql() else {
            return Err(SqlSetupError::NotSql {
                dsn: dsn.redacted(),
            });
        };
        if let SqlAddress::File { path } = &sql.address {
            sqlite_file::make_private(path).map_err(|message| SqlSetupError::SqliteNotPrivate {
                dsn: dsn.redacted(),
                message,
            })?;
        }
        tls::check(sql, &dsn.redacted())?;
        Ok(Self::from_sql(sql, ttl))
    }

    fn from_sql(sql: &SqlDsn, ttl: Duration) -> Self {
        let options = &sql.options;
        let target = match &sql.address {
            SqlAddress::File { path } => path.display().to_string(),
            SqlAddress::Server {
                host,
                port,
                database,
                ..
            } => format!("{host}:{port}/{database}"),
        };
        Self {
            driver: sql.driver,
            pool: Pool::new(sql),
            queries: Queries::new(sql.driver, &options.table),
            table: options.table.clone(),
            create_table: options.create_table,
            ready: tokio::sync::OnceCell::new(),
            lock_wait: options.lock.then_some(options.lock_wait),
            timeout: options.timeout,
            acquire_timeout: options.acquire_timeout,
            ttl_secs: i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX),
            max_size: DEFAULT_MAX_SESSION_BYTES,
            target,
            password: sql.password().map(str::to_string),
        }
    }

    /// The same handler, leaving stored values over `max_size` bytes
    /// unread (`session.max_size`).
    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = max_size;
        self
    }

    /// The database's error as a session error: a full pool is a timeout;
    /// the message names the database, never the password.
    fn failed(&self, operation: &'static str, error: sqlx::Error) -> SessionError {
        if let sqlx::Error::PoolTimedOut = error {
            return SessionError::Timeout {
                backend: self.name(),
                operation,
                after: self.acquire_timeout,
            };
        }
        let mut message = format!("{}: {error}", self.target);
        if let Some(password) = self.password.as_deref().filter(|p| !p.is_empty()) {
            message = message.replace(password, "***");
        }
        SessionError::Backend {
            backend: self.name(),
            operation,
            message,
        }
    }

    /// `work` bounded by the pool's wait plus the statement timeout.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, SessionError> {
        let within = self.acquire_timeout + self.timeout;
        match tokio::time::timeout(within, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.failed(operation, error)),
            Err(_) => Err(SessionError::Timeout {
                backend: self.name(),
                operation,
                after: within,
            }),
        }
    }

    /// Creates the table, or checks that it exists, once (again after a failure).
    async fn ready(&self) -> Result<(), SessionError> {
        self.ready
            .get_or_try_init(|| async {
                let statements = if self.create_table {
                    self.queries.create.as_slice()
                } else {
                    std::slice::from_ref(&self.queries.probe)
                };
                let made = self
                    .bounded("create table", async {
                        for statement in statements {
                            on_pool!(&self.pool, |p| sqlx::query(statement)
                                .execute(p)
                                .await
                                .map(drop))?;
                        }
                        Ok(())
                    })
                    .await;
                match made {
                    Err(SessionError::Backend { message, .. }) if !self.create_table => {
                        Err(SessionError::Backend {
                            backend: self.name(),
                            operation: "find table",
                            message: format!(
                                "the sessions table `{}` is missing or unusable (create_table=off; create it with Symfony PdoSessionHandler's schema, or set create_table=on): {message}",
                                self.table
                            ),
                        })
                    }
                    other => other,
                }
            })
            .await
            .map(drop)
    }

    /// Takes session `id`'s lock, waiting at most `wait`, and, when `read`,
    /// reads it over the same connection. MySQL's `GET_LOCK` is given
    /// `wait` itself; PostgreSQL's `lock_timeout` and SQLite's busy timeout
    /// are set per connection to the whole `lock_wait`, so a shorter `wait`
    /// (the rest of a request's wait after its turn in nene's queue) ends
    /// with a timeout here, which gives up the connection and whatever lock
    /// it would have taken: rare enough not to be worth a `SET lock_timeout`
    /// round trip on every lock.
    async fn acquire(self: &Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        self.ready().await?;
        let Some(configured) = self.lock_wait else {
            return Ok((SessionLock::none(), self.read(id).await?));
        };
        let started = tokio::time::Instant::now();
        let mut conn =
            match tokio::time::timeout(self.acquire_timeout + self.timeout, self.pool.acquire())
                .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(error)) => return Err(self.failed("lock", error)),
                Err(_) => {
                    return Err(SessionError::Timeout {
                        backend: self.name(),
                        operation: "lock",
                        after: self.acquire_timeout + self.timeout,
                    });
                }
            };
        // The server ends the wait itself (the connection stays usable)
        // unless `wait` is shorter than the connection's own setting.
        let server_bounds_it = self.driver == SqlDriver::MySql || wait >= configured;
        let bound = if server_bounds_it {
            wait + self.timeout
        } else {
            wait
        };
        let taken = tokio::time::timeout(bound, lock::take(&mut conn, id.as_str(), wait)).await;
        match taken {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                return Err(SessionError::LockTimeout {
                    id_tag: id.log_tag(),
                    waited: started.elapsed(),
                });
            }
            Ok(Err(error)) => {
                conn.discard();
                return Err(self.failed("lock", error));
            }
            Err(_) => {
                // The statement may still take the lock: the connection
                // goes, and with it anything it would hold.
                conn.discard();
                return Err(SessionError::LockTimeout {
                    id_tag: id.log_tag(),
                    waited: started.elapsed(),
                });
            }
        }
        let held = Arc::new(tokio::sync::Mutex::new(Held {
            conn: Some(conn),
            dirty: false,
        }));
        let lock = SessionLock::held(Arc::new(SqlLock {
            store: self.clone(),
            id: id.as_str().to_string(),
            held: held.clone(),
        }));
        match self.read_on(Some(&held), id).await {
            Ok(stored) => Ok((lock, stored)),
            Err(error) => {
                let _ = lock.release().await;
                Err(error)
            }
        }
    }

    /// Inserts or replaces `id`'s row, expiring `lifetime` seconds from now,
    /// over the lock's connection `on` if given.
    pub(super) async fn store(
        &self,
        on: Option<&Shared>,
        id: &SessionId,
        data: &[u8],
        lifetime: i64,
    ) -> Result<(), SessionError> {
        self.ready().await?;
        let now = now();
        let query = &self.queries.write;
        run!(self, "write", on, true, |e| sqlx::query(query)
            .bind(id.as_str())
            .bind(data)
            .bind(now.saturating_add(lifetime))
            .bind(now)
            .execute(e)
            .await
            .map(drop))
    }
}

impl std::fmt::Debug for SqlSessionHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSessionHandler")
            .field("driver", &self.driver)
            .field("target", &self.target)
            .field("table", &self.table)
            .field("lock_wait", &self.lock_wait)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SqlSessionHandler {
    /// What is stored under `id`, over the lock's connection `on` if
    /// given. The size comes first, in the same statement: a value over
    /// `session.max_size` is never sent.
    async fn read_on(&self, on: Option<&Shared>, id: &SessionId) -> Result<Stored, SessionError> {
        self.ready().await?;
        let max = i64::try_from(self.max_size).unwrap_or(i64::MAX);
        let query = &self.queries.read;
        let row: Option<(i64, Option<Vec<u8>>)> =
            run!(self, "read", on, false, |e| sqlx::query(query)
                .bind(max)
                .bind(id.as_str())
                .bind(now())
                .fetch_optional(e)
                .await
                .and_then(|row| row
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .transpose()))?;
        Ok(match row {
            None => Stored::Missing,
            Some((_, Some(data))) => Stored::Data(Bytes::from(data)),
            Some((size, None)) => Stored::Unreadable(Unreadable::TooLarge {
                size: u64::try_from(size).unwrap_or(0),
                max: self.max_size,
            }),
        })
    }

    /// Restarts `id`'s expiry, over the lock's connection `on` if given.
    pub(super) async fn touch_on(
        &self,
        on: Option<&Shared>,
        id: &SessionId,
    ) -> Result<(), SessionError> {
        self.ready().await?;
        let now = now();
        let query = &self.queries.touch;
        run!(self, "touch", on, true, |e| sqlx::query(query)
            .bind(now.saturating_add(self.ttl_secs))
            .bind(now)
            .bind(id.as_str())
            .bind(now)
            .execute(e)
            .await
            .map(drop))
    }

    /// Deletes `id`'s row, over the lock's connection `on` if given.
    pub(super) async fn destroy_on(
        &self,
        on: Option<&Shared>,
        id: &SessionId,
    ) -> Result<(), SessionError> {
        self.ready().await?;
        let query = &self.queries.destroy;
        run!(self, "destroy", on, true, |e| sqlx::query(query)
            .bind(id.as_str())
            .execute(e)
            .await
            .map(drop))
    }
}

#[async_trait]
impl SessionHandler for SqlSessionHandler {
    fn name(&self) -> &'static str {
        backend_name(self.driver)
    }

    /// Locks, then reads over the lock's connection.
    async fn lock_and_read(self: Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        self.acquire(id, wait).await
    }

    /// MySQL/MariaDB and PostgreSQL: a row is replaced whole and the locks
    /// are advisory, so neither the read nor the touch after it waits for a
    /// holder. SQLite: its lock is the database's one write lock (`BEGIN
    /// IMMEDIATE`), which the touch needs too, so the read takes the session
    /// lock first, as PHP's `read_and_close` does: waiting for a holder in
    /// the open, bounded by `lock_wait`, rather than in SQLite's busy
    /// handler.
    async fn read_for_read_only(self: Arc<Self>, id: &SessionId) -> LockedRead {
        match self.driver {
            SqlDriver::Sqlite => {
                let wait = self.lock_wait();
                self.lock_and_read(id, wait).await
            }
            SqlDriver::MySql | SqlDriver::Postgres => read_without_lock(&*self, id).await,
        }
    }

    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        self.read_on(None, id).await
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.store(None, id, &data, self.ttl_secs).await
    }

    async fn touch(&self, id: &SessionId) -> Result<(), SessionError> {
        self.touch_on(None, id).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.destroy_on(None, id).await
    }

    /// Deletes expired rows. nene runs it in a task of its own
    /// (gc_probability / gc_divisor), off the request path.
    async fn gc(&self) -> Result<u64, SessionError> {
        self.ready().await?;
        let query = &self.queries.gc;
        self.bounded("gc", async {
            on_pool!(&self.pool, |p| sqlx::query(query)
                .bind(now())
                .execute(p)
                .await
                .map(|done| done.rows_affected()))
        })
        .await
    }

    /// Reads the table (without rows): the database answers, and the
    /// table is there and readable.
    async fn ping(&self) -> Result<(), SessionError> {
        self.ready().await?;
        let query = &self.queries.probe;
        #[cfg(feature = "sqlite")]
        if let Pool::Sqlite(pool) = &self.pool {
            // In WAL mode a file another process holds (BEGIN EXCLUSIVE)
            // can still be read: only taking the write lock shows whether
            // sessions can be stored.
            return self
                .bounded("ping", async {
                    let mut connection = pool.acquire().await?;
                    sqlx::query("BEGIN IMMEDIATE")
                        .execute(&mut *connection)
                        .await?;
                    let probed = sqlx::query(query).execute(&mut *connection).await;
                    sqlx::query("ROLLBACK").execute(&mut *connection).await?;
                    probed.map(drop)
                })
                .await;
        }
        self.bounded("ping", async {
            on_pool!(&self.pool, |p| sqlx::query(query)
                .execute(p)
                .await
                .map(drop))
        })
        .await
    }

    fn uses_locking(&self) -> bool {
        self.lock_wait.is_some()
    }

    fn lock_wait(&self) -> Duration {
        self.lock_wait
            .unwrap_or(crate::session::backend::DEFAULT_LOCK_WAIT)
    }

    /// The database ends a lock with its holder's connection.
    fn lock_expiry(&self) -> Option<Duration> {
        None
    }
}

#[async_trait]
impl SessionAdmin for SqlSessionHandler {
    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError> {
        self.ready().await?;
        let query = &self.queries.exists;
        run!(self, "exists", None::<&Shared>, false, |e| sqlx::query(
            query
        )
        .bind(id.as_str())
        .bind(now())
        .fetch_optional(e)
        .await
        .map(|row| row.is_some()))
    }

    async fn store_copy(&self, live: &LiveSession, data: Bytes) -> Result<(), SessionError> {
        let lifetime = i64::try_from(live.remaining.as_secs()).unwrap_or(i64::MAX);
        self.store(None, &live.id, &data, lifetime).await
    }

    async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError> {
        self.ready().await?;
        let now = now();
        let query = &self.queries.list;
        let after = cursor.unwrap_or_default();
        let rows: Vec<(Vec<u8>, i64)> = self
            .bounded("list", async {
                on_pool!(&self.pool, |p| sqlx::query(query)
                    .bind(after.as_str())
                    .bind(now)
                    .fetch_all(p)
                    .await
                    .and_then(|rows| rows
                        .iter()
                        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                        .collect::<Result<Vec<_>, sqlx::Error>>()))
            })
            .await?;
        let next = (rows.len() >= usize::try_from(schema::PAGE).unwrap_or(usize::MAX))
            .then(|| {
                rows.last()
                    .map(|(id, _)| String::from_utf8_lossy(id).into_owned())
            })
            .flatten();
        let sessions = rows
            .into_iter()
            .filter_map(|(id, lifetime)| {
                // Ids nene could not have made (another application's) are skipped.
                let id = SessionId::from_store(std::str::from_utf8(&id).ok()?)?;
                Some(LiveSession {
                    id,
                    remaining: Duration::from_secs(u64::try_from(lifetime - now).unwrap_or(0)),
                })
            })
            .collect();
        Ok(SessionPage { sessions, next })
    }
}
