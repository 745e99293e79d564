//! The connection pool, one of three (SQLite, MySQL/MariaDB, PostgreSQL)
//! rather than sqlx's `Any` driver: `Any` converts every argument and row
//! through its own value type on each statement and hides each driver's
//! connect options (SQLite's busy timeout and journal mode, PostgreSQL's startup
//! parameters), while an enum costs one `match` per statement. The
//! `on_pool!` and `on_conn!` macros write the same statement code once for
//! the three. Each driver is a Cargo feature (`sqlite`, `mysql`,
//! `postgres`); its variants exist only when it is compiled in.

use std::time::Duration;

use sqlx::pool::PoolConnection;
#[cfg(feature = "mysql")]
use sqlx::{
    MySql,
    mysql::{MySqlConnectOptions, MySqlSslMode},
};
#[cfg(feature = "postgres")]
use sqlx::{
    Postgres,
    postgres::{PgConnectOptions, PgSslMode},
};
#[cfg(feature = "sqlite")]
use sqlx::{
    Sqlite,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

use super::dsn::{SqlAddress, SqlDriver, SqlDsn};
#[cfg(any(feature = "mysql", feature = "postgres"))]
use super::dsn_tls::SqlTlsMode;

/// A pool of connections to one database.
#[derive(Clone, Debug)]
pub(super) enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// One connection taken from the [`Pool`] (held by a session lock).
pub(super) enum Conn {
    #[cfg(feature = "sqlite")]
    Sqlite(PoolConnection<Sqlite>),
    #[cfg(feature = "mysql")]
    MySql(PoolConnection<MySql>),
    #[cfg(feature = "postgres")]
    Postgres(PoolConnection<Postgres>),
}

/// `$body` with `$v` bound to the value inside `$value`, a [`Pool`] or a
/// [`Conn`] (`$kind`), whichever database it is for.
macro_rules! on_driver {
    ($kind:ident, $value:expr, |$v:ident| $body:expr) => {
        match $value {
            #[cfg(feature = "sqlite")]
            $crate::session::backend::sql::pool::$kind::Sqlite($v) => $body,
            #[cfg(feature = "mysql")]
            $crate::session::backend::sql::pool::$kind::MySql($v) => $body,
            #[cfg(feature = "postgres")]
            $crate::session::backend::sql::pool::$kind::Postgres($v) => $body,
        }
    };
}

/// `$body` with `$p` bound to the pool, whichever database it is.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        $crate::session::backend::sql::pool::on_driver!(Pool, $pool, |$p| $body)
    };
}

/// `$body` with `$c` bound to the connection (`&mut **$c` is its executor).
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        $crate::session::backend::sql::pool::on_driver!(Conn, $conn, |$c| $body)
    };
}

pub(super) use {on_conn, on_driver, on_pool};

/// The pool settings every driver shares: `size` connections at most, a
/// wait of `acquire` for one. No ping before each use (sqlx's default),
/// which would add a round trip to every statement: sqlx pings a
/// connection when it goes back to the pool instead, off the request's
/// path, and drops it if it is broken; one that broke while idle fails one
/// statement (a 503) and is dropped.
fn pool_options<DB: sqlx::Database>(size: u32, acquire: Duration) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire)
        .test_before_acquire(false)
}

impl Pool {
    /// A lazy pool for `dsn`: nothing connects until the first statement,
    /// so nene starts while the database is down.
    pub(super) fn new(dsn: &SqlDsn) -> Pool {
        match dsn.driver {
            #[cfg(feature = "sqlite")]
            SqlDriver::Sqlite => sqlite(dsn),
            #[cfg(feature = "mysql")]
            SqlDriver::MySql => mysql(dsn),
            #[cfg(feature = "postgres")]
            SqlDriver::Postgres => postgres(dsn),
            #[allow(unreachable_patterns)] // with every driver compiled in
            _ => unreachable!("the factory refuses a driver this build lacks"),
        }
    }

    /// A connection of its own, for a session lock.
    pub(super) async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => Conn::Sqlite(pool.acquire().await?),
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => Conn::MySql(pool.acquire().await?),
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
        })
    }
}

impl Conn {
    /// Closes the connection instead of returning it to the pool: the
    /// server then drops whatever it held (locks, an open transaction).
    pub(super) fn discard(self) {
        match self {
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(conn) => drop(conn.detach()),
            #[cfg(feature = "mysql")]
            Conn::MySql(conn) => drop(conn.detach()),
            #[cfg(feature = "postgres")]
            Conn::Postgres(conn) => drop(conn.detach()),
        }
    }
}

/// A lazy SQLite pool on the DSN's file.
#[cfg(feature = "sqlite")]
fn sqlite(dsn: &SqlDsn) -> Pool {
    let options = &dsn.options;
    let SqlAddress::File { path } = &dsn.address else {
        unreachable!("a sqlite DSN names a file")
    };
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // WAL: readers never wait for the writer, and with
        // synchronous=NORMAL a commit appends to the log without
        // an fsync (the log is synced at checkpoints). The
        // rollback journal fsyncs every commit several times:
        // measured on this project's 2-core VM, 20 concurrent
        // session writes then took over 600 ms. A power loss
        // may lose the last commits, as with file sessions
        // without session.save_path_fsync; never a torn file.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // Every write waits for the one write transaction a
        // lock holds: as long as a lock may be waited for.
        .busy_timeout(options.lock_wait.max(options.timeout));
    Pool::Sqlite(
        pool_options(options.pool_size, options.acquire_timeout).connect_lazy_with(connect),
    )
}

/// The options MySQL and PostgreSQL take alike, set on either driver's
/// connect options: the server, the user, TLS. A macro because sqlx gives
/// the two option types no shared trait for these, and the CA file's setter
/// has a name of its own in each.
#[cfg(any(feature = "mysql", feature = "postgres"))]
macro_rules! server_options {
    ($connect:expr, $dsn:expr, $ssl_mode:expr, $set_ca_file:ident) => {{
        let (host, port, username, database) = server($dsn);
        let mut connect = $connect.host(host).port(port).database(database);
        if let Some(username) = username {
            connect = connect.username(username);
        }
        if let Some(password) = $dsn.password() {
            connect = connect.password(password);
        }
        let tls = &$dsn.options.tls;
        connect = connect.ssl_mode($ssl_mode(tls.mode));
        if let Some(ca) = &tls.ca_file {
            connect = connect.$set_ca_file(ca);
        }
        if let Some(cert) = &tls.cert_file {
            connect = connect.ssl_client_cert(cert);
        }
        if let Some(key) = &tls.key_file {
            connect = connect.ssl_client_key(key);
        }
        connect
    }};
}

/// A lazy MySQL/MariaDB pool on the DSN's server.
#[cfg(feature = "mysql")]
fn mysql(dsn: &SqlDsn) -> Pool {
    let connect = server_options!(MySqlConnectOptions::new(), dsn, mysql_ssl_mode, ssl_ca);
    let options = &dsn.options;
    Pool::MySql(pool_options(options.pool_size, options.acquire_timeout).connect_lazy_with(connect))
}

#[cfg(feature = "mysql")]
fn mysql_ssl_mode(mode: SqlTlsMode) -> MySqlSslMode {
    match mode {
        SqlTlsMode::Disable => MySqlSslMode::Disabled,
        // The DSN parser takes `allow` for PostgreSQL only.
        SqlTlsMode::Allow | SqlTlsMode::Prefer => MySqlSslMode::Preferred,
        SqlTlsMode::Require => MySqlSslMode::Required,
        SqlTlsMode::VerifyCa => MySqlSslMode::VerifyCa,
        SqlTlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
    }
}

/// A lazy PostgreSQL pool on the DSN's server.
#[cfg(feature = "postgres")]
fn postgres(dsn: &SqlDsn) -> Pool {
    let options = &dsn.options;
    // lock_timeout bounds the advisory lock's wait on the server
    // (0 would mean "for ever" there, hence at least 1 ms).
    let lock_timeout = format!(
        "{}ms",
        options.lock_wait.max(Duration::from_millis(1)).as_millis()
    );
    let on_start = PgConnectOptions::new().options([("lock_timeout", lock_timeout.as_str())]);
    let connect = server_options!(on_start, dsn, postgres_ssl_mode, ssl_root_cert);
    Pool::Postgres(
        pool_options(options.pool_size, options.acquire_timeout).connect_lazy_with(connect),
    )
}

#[cfg(feature = "postgres")]
fn postgres_ssl_mode(mode: SqlTlsMode) -> PgSslMode {
    match mode {
        SqlTlsMode::Disable => PgSslMode::Disable,
        SqlTlsMode::Allow => PgSslMode::Allow,
        SqlTlsMode::Prefer => PgSslMode::Prefer,
        SqlTlsMode::Require => PgSslMode::Require,
        SqlTlsMode::VerifyCa => PgSslMode::VerifyCa,
        SqlTlsMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

/// Host, port, user and database of a MySQL or PostgreSQL DSN (the parser
/// gives those drivers a server address, never a file).
#[cfg(any(feature = "mysql", feature = "postgres"))]
fn server(dsn: &SqlDsn) -> (&str, u16, Option<&String>, &str) {
    match &dsn.address {
        SqlAddress::Server {
            host,
            port,
            username,
            database,
        } => (host, *port, username.as_ref(), database),
        SqlAddress::File { .. } => unreachable!("a server DSN names a server"),
    }
}
