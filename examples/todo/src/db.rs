//! The database connection: one DSN setting (`[todo] database_dsn`, env
//! `NENE_TODO__DATABASE_DSN`) picks SQLite, MariaDB/MySQL or PostgreSQL; a
//! bounded pool per process; the schema applied at start-up.
//!
//! The schema is a few `CREATE TABLE IF NOT EXISTS` statements per backend
//! in this file rather than sqlx migration directories: three dialects of
//! two tables read best side by side, the binary needs no migrations folder
//! next to it at run time (one file to ship in the container), and
//! `IF NOT EXISTS` makes applying it again at every start harmless. A schema
//! change would add statements here, each idempotent. (Several instances
//! starting at once against an empty PostgreSQL can race on the first
//! CREATE: start one first, or restart the loser.)

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::sqlite::Sqlite;
use crate::store::StoreError;

/// Where the DSN is configured, for error messages.
pub const SETTING: &str = "todo.database_dsn (env NENE_TODO__DATABASE_DSN)";
/// Without a setting: a file under var/, so `cargo run` needs nothing installed.
pub const DEFAULT_DSN: &str = "sqlite://var/todo.db";
const ACCEPTED: &str = "sqlite://PATH, mysql://USER:PASSWORD@HOST:PORT/DB, mariadb://…, \
     postgres://USER:PASSWORD@HOST:PORT/DB or postgresql://…";

/// At most this many connections per process to a database server: its
/// own limit is shared by every instance, and a burst queues here instead
/// of there. (SQLite's connections are `sqlite.rs`'s.)
const MAX_CONNECTIONS: u32 = 10;
/// The longest a request waits for a connection (an exhausted pool or a
/// database that is down): then it answers 503 instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A pool of one of the three backends. Queries are written once (see
/// `store.rs`) and run on whichever this is: SQLite's through rusqlite on
/// the request's thread (`sqlite.rs`), the servers' through sqlx.
#[derive(Clone)]
pub enum Db {
    Sqlite(Arc<Sqlite>),
    MySql(MySqlPool),
    Postgres(PgPool),
}

/// Why the database could not be set up; the DSN in every message is
/// redacted (`user:***@host`).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{SETTING} = {dsn:?}: unknown scheme; accepted: {ACCEPTED}")]
    UnknownScheme { dsn: String },
    #[error("{SETTING} = {dsn:?} is malformed ({reason}); accepted: {ACCEPTED}")]
    Malformed { dsn: String, reason: String },
    #[error("cannot create the SQLite directory {dir}: {reason}")]
    SqliteDir { dir: String, reason: String },
    #[error("cannot reach the database {SETTING} = {dsn:?}: {reason}")]
    Unreachable { dsn: String, reason: String },
    #[error("cannot apply the schema to {dsn:?}: {reason}")]
    Schema { dsn: String, reason: String },
    #[error(
        "the SQLite database {dsn:?} cannot be written ({reason}): make the file, its -wal and -shm files and its directory writable by this user"
    )]
    ReadOnly { dsn: String, reason: String },
}

fn pool_options<D: sqlx::Database>() -> PoolOptions<D> {
    // No ping before each acquire (sqlx's default tests every connection it
    // hands out): that is one more network round trip per query;
    // benches/todo.sh (one round of 8 s) went from 5.2k to 7.4k req/s on
    // MariaDB without it. What it costs: after the database restarts, each
    // pooled connection fails once (that request answers 503
    // DATABASE-UNAVAILABLE, retryable) before it is replaced.
    PoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
}

impl Db {
    /// Parses the DSN, connects, and applies the schema.
    pub async fn open(dsn: &str) -> Result<Db, DbError> {
        let redacted = nene::redact_dsn(dsn);
        let malformed = |error: sqlx::Error| DbError::Malformed {
            dsn: redacted.clone(),
            reason: error.to_string(),
        };
        let scheme = dsn
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        let db = match scheme.as_deref() {
            Some("sqlite") => {
                let (path, read_only) = sqlite_file(dsn).map_err(|reason| DbError::Malformed {
                    dsn: redacted.clone(),
                    reason,
                })?;
                create_parent_dir(path)?;
                Db::Sqlite(Arc::new(Sqlite::new(path, read_only)))
            }
            Some("mysql" | "mariadb") => {
                // sqlx's MySQL driver reads the URL's parts, not its scheme.
                let options = MySqlConnectOptions::from_str(dsn).map_err(malformed)?;
                let pool = pool_options().connect_with(options).await;
                Db::MySql(pool.map_err(|e| unreachable(&redacted, e))?)
            }
            Some("postgres" | "postgresql") => {
                let options = PgConnectOptions::from_str(dsn).map_err(malformed)?;
                let pool = pool_options().connect_with(options).await;
                Db::Postgres(pool.map_err(|e| unreachable(&redacted, e))?)
            }
            _ => return Err(DbError::UnknownScheme { dsn: redacted }),
        };
        db.apply_schema().await.map_err(|error| DbError::Schema {
            dsn: redacted.clone(),
            reason: error.to_string(),
        })?;
        // A read-only file opens and answers reads; only a write shows that
        // every request that changes something would fail.
        if let Db::Sqlite(sqlite) = &db {
            sqlite.run(can_write).map_err(|error| DbError::ReadOnly {
                dsn: redacted.clone(),
                reason: error.to_string(),
            })?;
        }
        tracing::info!("database {} ready ({})", redacted, db.backend());
        Ok(db)
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::MySql(_) => "mysql",
            Db::Postgres(_) => "postgres",
        }
    }

    async fn apply_schema(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(sqlite) => sqlite.run(|connection| {
                // WAL: readers do not block the writer, nor it them; a
                // writer waits (the busy timeout) rather than failing at
                // once. Kept in the file once set.
                connection.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
                for statement in SQLITE_SCHEMA {
                    connection.execute(statement, [])?;
                }
                Ok(())
            })?,
            Db::MySql(pool) => {
                for statement in MYSQL_SCHEMA {
                    sqlx::query(statement).execute(pool).await?;
                }
            }
            Db::Postgres(pool) => {
                for statement in POSTGRES_SCHEMA {
                    sqlx::query(statement).execute(pool).await?;
                }
            }
        }
        Ok(())
    }
}

/// Writes (a table created and rolled back): fails on a read-only file.
fn can_write(connection: &rusqlite::Connection) -> rusqlite::Result<()> {
    connection.execute_batch("BEGIN; CREATE TABLE main.todo_write_probe (x INTEGER); ROLLBACK;")
}

/// The file of a `sqlite://PATH` DSN (`sqlite:///abs/path` for an absolute
/// one), and whether it is opened read-only (`?mode=ro`, SQLite's own URI
/// parameter; `mode=rw` and `mode=rwc` are the default).
fn sqlite_file(dsn: &str) -> Result<(&Path, bool), String> {
    let rest = &dsn["sqlite:".len()..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err("no file: write sqlite://PATH".to_string());
    }
    let mut read_only = false;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair {
            "mode=ro" => read_only = true,
            "mode=rw" | "mode=rwc" => read_only = false,
            _ => return Err(format!("unknown option `{pair}` (only mode=ro, rw or rwc)")),
        }
    }
    Ok((Path::new(path), read_only))
}

fn unreachable(redacted: &str, error: sqlx::Error) -> DbError {
    DbError::Unreachable {
        dsn: redacted.to_string(),
        reason: error.to_string(),
    }
}

/// `sqlite://var/todo.db` must work on a fresh checkout: make `var/`.
fn create_parent_dir(file: &Path) -> Result<(), DbError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && file.as_os_str() != ":memory:" => {
            std::fs::create_dir_all(dir).map_err(|error| DbError::SqliteDir {
                dir: dir.display().to_string(),
                reason: error.to_string(),
            })
        }
        _ => Ok(()),
    }
}

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS todos (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id),
        title TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX IF NOT EXISTS todos_user ON todos (user_id, id)",
];

const MYSQL_SCHEMA: &[&str] = &[
    // utf8mb4: titles may hold any Unicode; VARCHAR(32) for a UNIQUE index.
    "CREATE TABLE IF NOT EXISTS users (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        username VARCHAR(32) NOT NULL UNIQUE,
        password_hash VARCHAR(255) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS todos (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        user_id BIGINT NOT NULL,
        title VARCHAR(200) NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE,
        INDEX todos_user (user_id, id),
        FOREIGN KEY (user_id) REFERENCES users(id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
];

const POSTGRES_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS todos (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users(id),
        title TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX IF NOT EXISTS todos_user ON todos (user_id, id)",
];
