//! Every query the application runs, written once with `?` placeholders and
//! run on whichever backend the pool is (PostgreSQL gets them renumbered to
//! `$1, $2, …`). Each todo query filters on the owner's user id: that
//! filter, in SQL, is what keeps one user from another's todos.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::Row;

use crate::db::Db;

/// One todo as the API shows it.
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

/// Runs `$body` with `$pool` bound to the concrete pool: the same query text
/// and binds on each backend, each arm monomorphised for its driver.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::MySql($pool) => $body,
            Db::Postgres($pool) => $body,
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

/// `list_todos` on SQLite: the array of `{id, title, done}` objects, oldest
/// first (`done` is stored as 0/1; `json('true')` makes it a JSON boolean).
const SQLITE_LIST_AS_JSON: &str = "SELECT json_group_array(json_object(\
    'id', id, 'title', title, 'done', json(CASE WHEN done THEN 'true' ELSE 'false' END)) \
    ORDER BY id) FROM todos WHERE user_id = ?";

macro_rules! todo_from_row {
    ($row:expr) => {
        Todo {
            id: $row.try_get("id")?,
            title: $row.try_get("title")?,
            done: $row.try_get("done")?,
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
    pub async fn create_user(
        &self,
        username: &str,
        hash: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let result = match self {
            Db::MySql(pool) => {
                sqlx::query("INSERT INTO users (username, password_hash) VALUES (?, ?)")
                    .bind(username)
                    .bind(hash)
                    .execute(pool)
                    .await
                    .map(|done| done.last_insert_id() as i64)
            }
            _ => {
                let sql = self
                    .sql("INSERT INTO users (username, password_hash) VALUES (?, ?) RETURNING id");
                on_pool!(self, pool => sqlx::query(&sql)
                    .bind(username)
                    .bind(hash)
                    .fetch_one(pool)
                    .await
                    .and_then(|row| row.try_get::<i64, _>("id")))
            }
        };
        match result {
            Ok(id) => Ok(Some(id)),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn find_user(&self, username: &str) -> Result<Option<UserRecord>, sqlx::Error> {
        let sql = self.sql("SELECT id, password_hash FROM users WHERE username = ?");
        on_pool!(self, pool => {
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

    /// The user's todos, oldest first, as the JSON array the API answers.
    ///
    /// On SQLite the database writes the array: sqlx runs each SQLite
    /// connection on a thread of its own and sends every row across to the
    /// request's task with each of its values copied; one row holding the
    /// array crosses once (with the typed envelope, 0.87× nene's CPU per
    /// request: benches/README, "the todo application against PHP-FPM").
    /// MariaDB/MySQL and PostgreSQL rows arrive on the connection the task
    /// reads anyway, so there they are read and serialized here (and
    /// MySQL's JSON_ARRAYAGG has no ORDER BY).
    pub async fn list_todos(&self, user_id: i64) -> Result<Box<RawValue>, sqlx::Error> {
        let decode_error = |error: serde_json::Error| sqlx::Error::Decode(error.into());
        if let Db::Sqlite(pool) = self {
            let array: String = sqlx::query_scalar(SQLITE_LIST_AS_JSON)
                .bind(user_id)
                .fetch_one(pool)
                .await?;
            return RawValue::from_string(array).map_err(decode_error);
        }
        let sql = self.sql("SELECT id, title, done FROM todos WHERE user_id = ? ORDER BY id");
        let todos = on_pool!(self, pool => {
            let rows = sqlx::query(&sql).bind(user_id).fetch_all(pool).await?;
            let mut todos = Vec::with_capacity(rows.len());
            for row in rows {
                todos.push(todo_from_row!(row));
            }
            todos
        });
        serde_json::value::to_raw_value(&todos).map_err(decode_error)
    }

    pub async fn create_todo(&self, user_id: i64, title: &str) -> Result<Todo, sqlx::Error> {
        let id = match self {
            // MySQL has no INSERT … RETURNING (MariaDB has, MySQL has not).
            Db::MySql(pool) => {
                sqlx::query("INSERT INTO todos (user_id, title, done) VALUES (?, ?, ?)")
                    .bind(user_id)
                    .bind(title)
                    .bind(false)
                    .execute(pool)
                    .await?
                    .last_insert_id() as i64
            }
            _ => {
                let sql = self
                    .sql("INSERT INTO todos (user_id, title, done) VALUES (?, ?, ?) RETURNING id");
                on_pool!(self, pool => sqlx::query(&sql)
                    .bind(user_id)
                    .bind(title)
                    .bind(false)
                    .fetch_one(pool)
                    .await?
                    .try_get::<i64, _>("id")?)
            }
        };
        Ok(Todo {
            id,
            title: title.to_string(),
            done: false,
        })
    }

    /// The todo `id` if `user_id` owns it.
    pub async fn get_todo(&self, user_id: i64, id: i64) -> Result<Option<Todo>, sqlx::Error> {
        let sql = self.sql("SELECT id, title, done FROM todos WHERE id = ? AND user_id = ?");
        on_pool!(self, pool => {
            let row = sqlx::query(&sql).bind(id).bind(user_id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(todo_from_row!(row))),
                None => Ok(None),
            }
        })
    }

    /// Changes what is given; `None` when `user_id` owns no todo `id`.
    pub async fn update_todo(
        &self,
        user_id: i64,
        id: i64,
        title: Option<&str>,
        done: Option<bool>,
    ) -> Result<Option<Todo>, sqlx::Error> {
        let sql = self.sql(
            "UPDATE todos SET title = COALESCE(?, title), done = COALESCE(?, done) \
             WHERE id = ? AND user_id = ?",
        );
        on_pool!(self, pool => sqlx::query(&sql)
            .bind(title)
            .bind(done)
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        // MySQL counts only rows that changed, so "affected" cannot tell a
        // missing todo from an unchanged one: read it back instead.
        self.get_todo(user_id, id).await
    }

    /// Whether `user_id` owned a todo `id` (now deleted).
    pub async fn delete_todo(&self, user_id: i64, id: i64) -> Result<bool, sqlx::Error> {
        let sql = self.sql("DELETE FROM todos WHERE id = ? AND user_id = ?");
        let affected = on_pool!(self, pool => sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected > 0)
    }
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
