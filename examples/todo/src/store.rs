//! Every query the application runs, written once with `?` placeholders and
//! run on whichever backend the pool is (PostgreSQL gets them renumbered to
//! `$1, $2, …`): through rusqlite on SQLite (`sqlite.rs`), through sqlx on
//! MariaDB/MySQL and PostgreSQL. Each todo query filters on the owner's user
//! id: that filter, in SQL, is what keeps one user from another's todos.
//!
//! Each query is a `tracing` span named as OpenTelemetry names database
//! calls (`SELECT todos`): when nene traces a request, its queries appear
//! in the trace under the handler's span, with no code of the
//! application's for it (the README's "Traces").

use std::borrow::Cow;

use rusqlite::OptionalExtension;
use serde::Serialize;
use sqlx::Row;

use crate::db::Db;

/// A query that failed, as the driver said it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// One todo as the API shows it and the list page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Todo {
    pub id: i64,
    pub title: String,
    pub done: bool,
}

/// A user's id and stored password hash (a PHC string).
pub struct UserRecord {
    pub id: i64,
    pub password_hash: String,
}

/// Runs `$body` with `$pool` bound to the server's sqlx pool: the same
/// query text and binds on each, each arm monomorphised for its driver.
/// SQLite's arm is written out in each method (rusqlite).
macro_rules! on_server {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::MySql($pool) => $body,
            Db::Postgres($pool) => $body,
            Db::Sqlite(_) => unreachable!("SQLite goes through rusqlite"),
        }
    };
}

/// `?` placeholders renumbered as PostgreSQL's `$1, $2, …`. (The queries
/// here hold no `?` inside string literals.)
fn numbered(sql: &str) -> String {
    let mut numbered = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            numbered.push_str(&format!("${n}"));
        } else {
            numbered.push(c);
        }
    }
    numbered
}

/// A todo from a row of `SELECT id, title, done …`, by position as for
/// SQLite (`todo_from_sqlite`): sqlx finds a column by name with a map
/// lookup and a comparison per value, ~180 instructions each, 60 for the
/// 20-item list on MariaDB.
macro_rules! todo_from_row {
    ($row:expr) => {
        Todo {
            id: $row.try_get(0)?,
            title: $row.try_get(1)?,
            done: $row.try_get(2)?,
        }
    };
}

impl Db {
    /// `sql` in this backend's placeholder syntax.
    fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        match self {
            Db::Postgres(_) => Cow::Owned(numbered(sql)),
            _ => Cow::Borrowed(sql),
        }
    }

    /// A new user's id, or `None` when the name is taken (the UNIQUE
    /// constraint decides, so two registrations racing cannot both win).
    #[tracing::instrument(name = "INSERT users", skip_all, fields(otel.kind = "client", db.system.name = self.backend(), db.operation.name = "INSERT", db.collection.name = "users"))]
    pub async fn create_user(&self, username: &str, hash: &str) -> Result<Option<i64>, StoreError> {
        const INSERT: &str = "INSERT INTO users (username, password_hash) VALUES (?, ?)";
        const RETURNING: &str =
            "INSERT INTO users (username, password_hash) VALUES (?, ?) RETURNING id";
        let result = match self {
            Db::Sqlite(sqlite) => {
                let (username, hash) = (username.to_string(), hash.to_string());
                let inserted = sqlite
                    .write(move |connection| {
                        connection
                            .prepare_cached(RETURNING)?
                            .query_row((username, hash), |row| row.get::<_, i64>(0))
                    })
                    .await;
                return match inserted {
                    Ok(id) => Ok(Some(id)),
                    Err(error) if is_sqlite_unique_violation(&error) => Ok(None),
                    Err(error) => Err(error.into()),
                };
            }
            Db::MySql(pool) => sqlx::query(INSERT)
                .bind(username)
                .bind(hash)
                .execute(pool)
                .await
                .map(|done| done.last_insert_id() as i64),
            Db::Postgres(pool) => sqlx::query(&numbered(RETURNING))
                .bind(username)
                .bind(hash)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get::<i64, _>("id")),
        };
        match result {
            Ok(id) => Ok(Some(id)),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    #[tracing::instrument(name = "SELECT users", skip_all, fields(otel.kind = "client", db.system.name = self.backend(), db.operation.name = "SELECT", db.collection.name = "users"))]
    pub async fn find_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        const FIND: &str = "SELECT id, password_hash FROM users WHERE username = ?";
        if let Db::Sqlite(sqlite) = self {
            let user = sqlite.run(|connection| {
                connection
                    .prepare_cached(FIND)?
                    .query_row([username], |row| {
                        Ok(UserRecord {
                            id: row.get(0)?,
                            password_hash: row.get(1)?,
                        })
                    })
                    .optional()
            })?;
            return Ok(user);
        }
        let sql = self.sql(FIND);
        on_server!(self, pool => {
            let row = sqlx::query(&sql).bind(username).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(UserRecord {
                    id: row.try_get("id")?,
                    password_hash: row.try_get("password_hash")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// The user's todos, oldest first.
    #[tracing::instrument(name = "SELECT todos", skip_all, fields(otel.kind = "client", db.system.name = self.backend(), db.operation.name = "SELECT", db.collection.name = "todos"))]
    pub async fn list_todos(&self, user_id: i64) -> Result<Vec<Todo>, StoreError> {
        const LIST: &str = "SELECT id, title, done FROM todos WHERE user_id = ? ORDER BY id";
        match self {
            Db::Sqlite(sqlite) => Ok(sqlite.run(|connection| {
                let mut statement = connection.prepare_cached(LIST)?;
                let rows = statement.query_map([user_id], todo_from_sqlite)?;
                rows.collect::<rusqlite::Result<Vec<Todo>>>()
            })?),
            _ => {
                let sql = self.sql(LIST);
                on_server!(self, pool => {
                    let rows = sqlx::query(&sql).bind(user_id).fetch_all(pool).await?;
                    let mut todos = Vec::with_capacity(rows.len());
                    for row in rows {
                        todos.push(todo_from_row!(row));
                    }
                    Ok(todos)
                })
            }
        }
    }

    #[tracing::instrument(name = "INSERT todos", skip_all, fields(otel.kind = "client", db.system.name = self.backend(), db.operation.name = "INSERT", db.collection.name = "todos"))]
    pub async fn create_todo(&self, user_id: i64, title: &str) -> Result<Todo, StoreError> {
        const INSERT: &str = "INSERT INTO todos (user_id, title, done) VALUES (?, ?, ?)";
        const RETURNING: &str =
            "INSERT INTO todos (user_id, title, done) VALUES (?, ?, ?) RETURNING id";
        let id = match self {
            Db::Sqlite(sqlite) => {
                let title = title.to_string();
                sqlite
                    .write(move |connection| {
                        connection
                            .prepare_cached(RETURNING)?
                            .query_row((user_id, title, false), |row| row.get(0))
                    })
                    .await?
            }
            // MySQL has no INSERT … RETURNING (MariaDB has, MySQL has not).
            Db::MySql(pool) => sqlx::query(INSERT)
                .bind(user_id)
                .bind(title)
                .bind(false)
                .execute(pool)
                .await?
                .last_insert_id() as i64,
            Db::Postgres(pool) => sqlx::query(&numbered(RETURNING))
                .bind(user_id)
                .bind(title)
                .bind(false)
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>("id")?,
        };
        Ok(Todo {
            id,
            title: title.to_string(),
            done: false,
        })
    }

    /// The todo `id` if `user_id` owns it.
    #[tracing::instrument(name = "SELECT todos", skip_all, fields(otel.kind = "client", db.system.name = self.backend(), db.operation.name = "SELECT", db.collection.name = "todos"))]
    pub async fn get_todo(&self, user_id: i64, id: i64) -> Result<Option<Todo>, StoreError> {
        const GET: &str = "SELECT id, title, done FROM todos WHERE id = ? AND user_id = ?";
        if let Db::Sqlite(sqlite) = self {
            let todo = sqlite.run(|connection| {
                connection
                    .prepare_cached(GET)?
                    .query_row((id, user_id), todo_from_sqlite)
                    .optional()
            })?;
            return Ok(todo);
        }
        let sql = self.sql(GET);
        on_server!(self, pool => {
            let row = sqlx::query(&sql).bind(id).bind(user_id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(todo_from_row!(row))),
                None => Ok(None),
            }
        })
    }

    /// Changes what is given; `None` when `user_id` owns no todo `id`.
    #[tracing::instrument(name = "UPDATE todos", skip_all, fields(otel.kind = "client", db.system.name = self.backend(), db.operation.name = "UPDATE", db.collection.name = "todos"))]
    pub async fn update_todo(
        &self,
        user_id: i64,
        id: i64,
        title: Option<&str>,
        done: Option<bool>,
    ) -> Result<Option<Todo>, StoreError> {
        const UPDATE: &str = "UPDATE todos SET title = COALESCE(?, title), done = COALESCE(?, done) \
             WHERE id = ? AND user_id = ?";
        if let Db::Sqlite(sqlite) = self {
            let title = title.map(str::to_string);
            sqlite
                .write(move |connection| {
                    connection
                        .prepare_cached(UPDATE)?
                        .execute((title, done, id, user_id))
                })
                .await?;
        } else {
            let sql = self.sql(UPDATE);
            on_server!(self, pool => sqlx::query(&sql)
                .bind(title)
                .bind(done)
                .bind(id)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|_| ()))?;
        }
        // MySQL counts only rows that changed, so "affected" cannot tell a
        // missing todo from an unchanged one: read it back instead.
        self.get_todo(user_id, id).await
    }

    /// Whether `user_id` owned a todo `id` (now deleted).
    #[tracing::instrument(name = "DELETE todos", skip_all, fields(otel.kind = "client", db.system.name = self.backend(), db.operation.name = "DELETE", db.collection.name = "todos"))]
    pub async fn delete_todo(&self, user_id: i64, id: i64) -> Result<bool, StoreError> {
        const DELETE: &str = "DELETE FROM todos WHERE id = ? AND user_id = ?";
        let affected = match self {
            Db::Sqlite(sqlite) => {
                sqlite
                    .write(move |connection| {
                        connection.prepare_cached(DELETE)?.execute((id, user_id))
                    })
                    .await? as u64
            }
            _ => {
                let sql = self.sql(DELETE);
                on_server!(self, pool => sqlx::query(&sql)
                    .bind(id)
                    .bind(user_id)
                    .execute(pool)
                    .await?
                    .rows_affected())
            }
        };
        Ok(affected > 0)
    }
}

/// A `todos` row (`id, title, done`) read by rusqlite.
fn todo_from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Todo> {
    Ok(Todo {
        id: row.get(0)?,
        title: row.get(1)?,
        done: row.get(2)?,
    })
}

/// Whether SQLite refused a write for a UNIQUE constraint.
fn is_sqlite_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error(),
        Some(failure) if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered("UPDATE t SET a = COALESCE(?, a) WHERE id = ? AND user_id = ?"),
            "UPDATE t SET a = COALESCE($1, a) WHERE id = $2 AND user_id = $3"
        );
        assert_eq!(numbered("SELECT 1"), "SELECT 1");
    }
}
