//! Session locks in SQL. A lock owns one pooled connection for the whole
//! request, and what it holds there depends on the database:
//!
//! - MySQL/MariaDB: `GET_LOCK(id, lock_wait)`, a named lock of the
//!   connection; PostgreSQL: `pg_advisory_lock(key)` with `lock_timeout`
//!   set to `lock_wait`. Both are what Symfony's `LOCK_ADVISORY` mode
//!   takes (same names and keys), so a PHP application in that mode
//!   shares nene's locks. Unlike `SELECT … FOR UPDATE` they also lock a
//!   session that has no row yet, leave no placeholder rows, and outlive
//!   transactions: a write made while the lock is held commits at once.
//!   Both namespaces are the server's, not the database's, and the
//!   PostgreSQL key is made of the id's first eight characters only: a
//!   clash (another application's session with the same id or prefix) can
//!   only make a request wait, never let two in at once.
//! - SQLite: `BEGIN IMMEDIATE`, the database's one write transaction, so
//!   every session's locked requests take turns on one database file. The
//!   session's writes join that transaction and commit with the release.
//!
//! What a holder writes, touches and destroys goes over the lock's own
//! connection (the lock is a value that carries it: [`HeldLock`]): on
//! SQLite any other connection would wait for the lock's own transaction,
//! so a request that regenerates its id (writes the new id, destroys the
//! old one while holding the old one's lock) would wait for itself.
//!
//! A lock dropped without release (a cancelled request) is released in the
//! background by [`SessionLock`](crate::session::backend::SessionLock)'s
//! drop; a release that fails closes the connection, which makes the
//! server drop the lock and roll back, so no connection goes back to the
//! pool holding anything.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::dsn::SqlDriver;
use crate::session::backend::HeldLock;
use crate::session::error::SessionError;
use crate::session::id::SessionId;

use super::SqlSessionHandler;
use super::pool::Conn;

/// The connection a lock holds, shared with the handler's writes of the
/// locked session.
pub(super) struct Held {
    /// `None` once released.
    pub(super) conn: Option<Conn>,
    /// Something was written through it (SQLite commits rather than rolls
    /// back on release).
    pub(super) dirty: bool,
}

/// A held lock's connection, shared by the lock and the statements run
/// over it.
pub(super) type Shared = Arc<tokio::sync::Mutex<Held>>;

/// A held SQL session lock.
pub(super) struct SqlLock {
    /// The backend that took it: its statements, run over `held`.
    pub(super) store: Arc<SqlSessionHandler>,
    /// The session id.
    pub(super) id: String,
    /// The connection holding the lock.
    pub(super) held: Shared,
}

/// The MySQL lock name: Symfony's (the id's first 64 characters, MySQL's
/// limit on lock names).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(super) fn mysql_lock_name(id: &str) -> &str {
    let end = id.char_indices().nth(64).map_or(id.len(), |(at, _)| at);
    &id[..end]
}

/// The PostgreSQL advisory lock key: Symfony's `convertStringToInt` of the
/// id's first eight bytes, so a PHP application computes the same one.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(super) fn postgres_lock_key(id: &str) -> i64 {
    let byte = |at: usize| i64::from(id.as_bytes().get(at).copied().unwrap_or(0));
    let low = (byte(3) << 24) + (byte(2) << 16) + (byte(1) << 8) + byte(0);
    let high = (byte(7) << 24) + (byte(6) << 16) + (byte(5) << 8) + byte(4);
    low.wrapping_add(high << 32)
}

/// Takes the lock of session `id` on `conn`: `Ok(false)` when another
/// holder kept it for the whole wait.
pub(super) async fn take(conn: &mut Conn, id: &str, wait: Duration) -> Result<bool, sqlx::Error> {
    let busy = |error: &sqlx::Error| {
        error.as_database_error().is_some_and(|db| {
            // SQLite: database is locked (SQLITE_BUSY); PostgreSQL:
            // lock_not_available (lock_timeout).
            db.code().as_deref() == Some("5")
                || db.code().as_deref() == Some("55P03")
                || db.message().contains("database is locked")
        })
    };
    let taken = match conn {
        #[cfg(feature = "sqlite")]
        Conn::Sqlite(c) => sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut **c)
            .await
            .map(|_| true),
        #[cfg(feature = "mysql")]
        Conn::MySql(c) => {
            sqlx::query_scalar::<_, Option<i64>>("SELECT CAST(GET_LOCK(?, ?) AS SIGNED)")
                .bind(mysql_lock_name(id))
                .bind(wait.as_secs_f64())
                .fetch_one(&mut **c)
                .await
                .map(|got| got == Some(1))
        }
        #[cfg(feature = "postgres")]
        Conn::Postgres(c) => sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(postgres_lock_key(id))
            .execute(&mut **c)
            .await
            .map(|_| true),
    };
    match taken {
        Err(error) if busy(&error) => Ok(false),
        other => other,
    }
}

impl SqlLock {
    pub(super) async fn release_held(&self) -> Result<(), SessionError> {
        let (driver, timeout) = (self.store.driver, self.store.timeout);
        let mut held = self.held.lock().await;
        let Some(mut conn) = held.conn.take() else {
            return Ok(());
        };
        let statement = match (driver, held.dirty) {
            (SqlDriver::Sqlite, true) => "COMMIT",
            (SqlDriver::Sqlite, false) => "ROLLBACK",
            (SqlDriver::MySql, _) => "DO RELEASE_LOCK(?)",
            (SqlDriver::Postgres, _) => "SELECT pg_advisory_unlock($1)",
        };
        let id = self.id.as_str();
        let released = tokio::time::timeout(timeout, async {
            match &mut conn {
                #[cfg(feature = "sqlite")]
                Conn::Sqlite(c) => sqlx::query(statement).execute(&mut **c).await.map(drop),
                #[cfg(feature = "mysql")]
                Conn::MySql(c) => sqlx::query(statement)
                    .bind(mysql_lock_name(id))
                    .execute(&mut **c)
                    .await
                    .map(drop),
                #[cfg(feature = "postgres")]
                Conn::Postgres(c) => sqlx::query(statement)
                    .bind(postgres_lock_key(id))
                    .execute(&mut **c)
                    .await
                    .map(drop),
            }
        })
        .await;
        let failure = match released {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {timeout:?}"),
        };
        // Closing the connection drops the lock and rolls back on the server.
        conn.discard();
        Err(SessionError::Backend {
            backend: super::backend_name(driver),
            operation: "unlock",
            message: failure,
        })
    }
}

/// Everything over the lock's connection; the release commits what was
/// written (SQLite) or frees the named or advisory lock.
#[async_trait]
impl HeldLock for SqlLock {
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        let ttl = self.store.ttl_secs;
        self.store.store(Some(&self.held), id, &data, ttl).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.store.destroy_on(Some(&self.held), id).await
    }

    async fn save_and_release(
        self: Arc<Self>,
        id: &SessionId,
        data: Option<Bytes>,
    ) -> Result<(), SessionError> {
        let saved = match data {
            Some(data) => self.write(id, data).await,
            None => self.store.touch_on(Some(&self.held), id).await,
        };
        let released = self.release_held().await;
        saved?;
        released
    }

    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        self.release_held().await
    }

    fn sends_last_write_behind(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_and_keys_are_symfonys() {
        assert_eq!(mysql_lock_name(&"a".repeat(100)).len(), 64);
        assert_eq!(mysql_lock_name("abc"), "abc");
        // PHP: (ord[3]<<24)+…+ord[0] + ((ord[7]<<24)+…+ord[4] << 32)
        let key = postgres_lock_key("abcdefgh");
        let low = 0x64636261_i64;
        let high = 0x68676665_i64;
        assert_eq!(key, low + (high << 32));
        assert_ne!(postgres_lock_key("abcdefgi"), key);
    }
}
