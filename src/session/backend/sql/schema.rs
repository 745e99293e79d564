//! The SQL of each database, in one place: Symfony `PdoSessionHandler`'s
//! table (`sess_id`, `sess_data`, `sess_lifetime` = the expiry as a Unix
//! time, `sess_time` = the last write) with its per-driver DDL, so that a
//! PHP application using it can share the table, and the statements nene
//! runs on it. A row whose `sess_lifetime` is before now is expired
//! (Symfony's `expiry < time()`), whether or not gc has deleted it yet.

use super::dsn::SqlDriver;

/// How many rows one [`Queries::list`] returns.
pub(super) const PAGE: i64 = crate::session::backend::LIST_PAGE_SIZE as i64;

/// Every statement the backend runs, with the table name filled in.
/// Parameters are in the order the comments give.
pub(super) struct Queries {
    /// `CREATE TABLE IF NOT EXISTS` with Symfony's column types, and the
    /// index on `sess_lifetime` Symfony's documentation gives: without it
    /// every gc scans the whole table and, on MySQL/MariaDB, locks every
    /// row it reads (measured: a hot session fell from 21.9k to 3.2k req/s
    /// as new sessions piled up over three bench rounds).
    pub(super) create: Vec<String>,
    /// Fails when the table is missing (`create_table=off`).
    pub(super) probe: String,
    /// (max, id, now) → (size, data if size <= max) of a live row.
    pub(super) read: String,
    /// (id, data, lifetime, now): insert or replace.
    pub(super) write: String,
    /// (lifetime, now, id, now): restart a live row's expiry.
    pub(super) touch: String,
    /// (id)
    pub(super) destroy: String,
    /// (id, now) → a row when live.
    pub(super) exists: String,
    /// (now): delete expired rows.
    pub(super) gc: String,
    /// (cursor, now) → (id as bytes, lifetime) of the next live rows by id.
    pub(super) list: String,
}

impl Queries {
    /// The statements for `driver` on `table` (checked by the DSN parser
    /// to be a plain identifier, so it can be interpolated). Written with
    /// `?` placeholders; PostgreSQL's are numbered (`$1`, `$2`, …).
    pub(super) fn new(driver: SqlDriver, table: &str) -> Self {
        let t = table;
        let (create, read, write, list) = match driver {
            SqlDriver::Sqlite => (
                vec![
                    format!(
                        "CREATE TABLE IF NOT EXISTS {t} (sess_id TEXT NOT NULL PRIMARY KEY, sess_data BLOB NOT NULL, sess_lifetime INTEGER NOT NULL, sess_time INTEGER NOT NULL)"
                    ),
                    format!(
                        "CREATE INDEX IF NOT EXISTS {t}_sess_lifetime_idx ON {t} (sess_lifetime)"
                    ),
                ],
                // CAST: a PHP application binding a string stores TEXT,
                // whose LENGTH would count characters, not bytes.
                format!(
                    "SELECT LENGTH(CAST(sess_data AS BLOB)), CASE WHEN LENGTH(CAST(sess_data AS BLOB)) <= ? THEN CAST(sess_data AS BLOB) END FROM {t} WHERE sess_id = ? AND sess_lifetime >= ?"
                ),
                format!(
                    "INSERT INTO {t} (sess_id, sess_data, sess_lifetime, sess_time) VALUES (?, ?, ?, ?) ON CONFLICT (sess_id) DO UPDATE SET sess_data = excluded.sess_data, sess_lifetime = excluded.sess_lifetime, sess_time = excluded.sess_time"
                ),
                format!(
                    "SELECT CAST(sess_id AS BLOB), sess_lifetime FROM {t} WHERE sess_id > ? AND sess_lifetime >= ? ORDER BY sess_id LIMIT {PAGE}"
                ),
            ),
            // MEDIUMBLOB where Symfony has BLOB: BLOB holds 64 KiB, less
            // than session.max_size's 4 MiB default (Symfony's own docs
            // suggest widening it); the column reads the same in PHP.
            // MySQL has no CREATE INDEX IF NOT EXISTS: the index is part
            // of the table.
            SqlDriver::MySql => (
                vec![format!(
                    "CREATE TABLE IF NOT EXISTS {t} (sess_id VARBINARY(128) NOT NULL PRIMARY KEY, sess_data MEDIUMBLOB NOT NULL, sess_lifetime INTEGER UNSIGNED NOT NULL, sess_time INTEGER UNSIGNED NOT NULL, INDEX {t}_sess_lifetime_idx (sess_lifetime)) COLLATE utf8mb4_bin, ENGINE = InnoDB"
                )],
                format!(
                    "SELECT CAST(LENGTH(sess_data) AS SIGNED), CASE WHEN LENGTH(sess_data) <= ? THEN sess_data END FROM {t} WHERE sess_id = ? AND sess_lifetime >= ?"
                ),
                format!(
                    "INSERT INTO {t} (sess_id, sess_data, sess_lifetime, sess_time) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE sess_data = VALUES(sess_data), sess_lifetime = VALUES(sess_lifetime), sess_time = VALUES(sess_time)"
                ),
                format!(
                    "SELECT sess_id, CAST(sess_lifetime AS SIGNED) FROM {t} WHERE sess_id > ? AND sess_lifetime >= ? ORDER BY sess_id LIMIT {PAGE}"
                ),
            ),
            SqlDriver::Postgres => (
                vec![
                    format!(
                        "CREATE TABLE IF NOT EXISTS {t} (sess_id VARCHAR(128) NOT NULL PRIMARY KEY, sess_data BYTEA NOT NULL, sess_lifetime INTEGER NOT NULL, sess_time INTEGER NOT NULL)"
                    ),
                    format!(
                        "CREATE INDEX IF NOT EXISTS {t}_sess_lifetime_idx ON {t} (sess_lifetime)"
                    ),
                ],
                format!(
                    "SELECT CAST(OCTET_LENGTH(sess_data) AS BIGINT), CASE WHEN OCTET_LENGTH(sess_data) <= ? THEN sess_data END FROM {t} WHERE sess_id = ? AND sess_lifetime >= ?"
                ),
                format!(
                    "INSERT INTO {t} (sess_id, sess_data, sess_lifetime, sess_time) VALUES (?, ?, ?, ?) ON CONFLICT (sess_id) DO UPDATE SET sess_data = EXCLUDED.sess_data, sess_lifetime = EXCLUDED.sess_lifetime, sess_time = EXCLUDED.sess_time"
                ),
                format!(
                    "SELECT convert_to(sess_id, 'UTF8'), CAST(sess_lifetime AS BIGINT) FROM {t} WHERE sess_id > ? AND sess_lifetime >= ? ORDER BY sess_id LIMIT {PAGE}"
                ),
            ),
        };
        let placeholders = |sql: String| match driver {
            SqlDriver::Postgres => numbered(&sql),
            SqlDriver::Sqlite | SqlDriver::MySql => sql,
        };
        Self {
            create,
            probe: format!("SELECT 1 FROM {t} WHERE 1 = 0"),
            read: placeholders(read),
            write: placeholders(write),
            touch: placeholders(format!(
                "UPDATE {t} SET sess_lifetime = ?, sess_time = ? WHERE sess_id = ? AND sess_lifetime >= ?"
            )),
            destroy: placeholders(format!("DELETE FROM {t} WHERE sess_id = ?")),
            exists: placeholders(format!(
                "SELECT 1 FROM {t} WHERE sess_id = ? AND sess_lifetime >= ?"
            )),
            gc: placeholders(format!("DELETE FROM {t} WHERE sess_lifetime < ?")),
            list: placeholders(list),
        }
    }
}

/// `sql` with each `?` replaced by PostgreSQL's `$1`, `$2`, … in order (no
/// statement here has a `?` anywhere else).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 1;
    for c in sql.chars() {
        if c == '?' {
            out.push_str(&format!("${next}"));
            next += 1;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered_in_order() {
        let queries = Queries::new(SqlDriver::Postgres, "sessions");
        assert_eq!(
            queries.touch,
            "UPDATE sessions SET sess_lifetime = $1, sess_time = $2 WHERE sess_id = $3 AND sess_lifetime >= $4"
        );
        assert!(
            queries.write.contains("VALUES ($1, $2, $3, $4)"),
            "{}",
            queries.write
        );
        let mysql = Queries::new(SqlDriver::MySql, "sessions");
        assert_eq!(mysql.destroy, "DELETE FROM sessions WHERE sess_id = ?");
    }
}
