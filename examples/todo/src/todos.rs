//! The todo REST API, for the logged-in user only: `GET|POST /todo/index`
//! (list, create) and `GET|PUT|DELETE /todo/item?id=N`. Another user's todo
//! is answered exactly like a missing one (TODO-NOT-FOUND), so ids do not
//! reveal what exists.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::envelope::{JsonBody, QueryArgs, created, ok};
use crate::error::ApiError;

/// Longest title, in characters (the MariaDB column is VARCHAR(200)).
const MAX_TITLE: usize = 200;

#[derive(Deserialize)]
pub struct NewTodo {
    /// Optional here so a missing title is TODO-TITLE-REQUIRED, not a
    /// generic JSON error.
    title: Option<String>,
}

#[derive(Deserialize)]
pub struct TodoChange {
    title: Option<String>,
    done: Option<bool>,
}

#[derive(Deserialize)]
pub struct ItemQuery {
    id: Option<String>,
}

/// A title trimmed, non-empty, not too long and without control
/// characters but tabs (PostgreSQL refuses NUL in text, the others store
/// it: one answer on every database, and no invisible characters or line
/// breaks in a one-line title).
pub fn valid_title(title: Option<&str>) -> Result<String, ApiError> {
    let title = title.map(str::trim).unwrap_or_default();
    if title.is_empty() {
        return Err(ApiError::TitleRequired);
    }
    if title.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ApiError::TitleInvalid);
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ApiError::TitleTooLong { max: MAX_TITLE });
    }
    Ok(title.to_string())
}

/// `?id=N` with N a positive integer.
fn item_id(query: &ItemQuery) -> Result<i64, ApiError> {
    query
        .id
        .as_deref()
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::input(StatusCode::BAD_REQUEST, "?id= must be a positive integer"))
}

/// `GET /todo/index`: my todos, oldest first.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    Ok(ok(state.db.list_todos(user.id).await?))
}

/// `POST /todo/index` `{title}`: 201 with the new todo.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    JsonBody(input): JsonBody<NewTodo>,
) -> Result<Response, ApiError> {
    let title = valid_title(input.title.as_deref())?;
    Ok(created(state.db.create_todo(user.id, &title).await?))
}

/// `GET /todo/item?id=N`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    QueryArgs(query): QueryArgs<ItemQuery>,
) -> Result<Response, ApiError> {
    let id = item_id(&query)?;
    let todo = state.db.get_todo(user.id, id).await?;
    Ok(ok(todo.ok_or(ApiError::TodoNotFound)?))
}

/// `PUT /todo/item?id=N` `{title?, done?}`: at least one of them.
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    QueryArgs(query): QueryArgs<ItemQuery>,
    JsonBody(change): JsonBody<TodoChange>,
) -> Result<Response, ApiError> {
    let id = item_id(&query)?;
    if change.title.is_none() && change.done.is_none() {
        return Err(ApiError::input(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give a title, done, or both",
        ));
    }
    let title = match change.title.as_deref() {
        Some(title) => Some(valid_title(Some(title))?),
        None => None,
    };
    let todo = state
        .db
        .update_todo(user.id, id, title.as_deref(), change.done)
        .await?;
    Ok(ok(todo.ok_or(ApiError::TodoNotFound)?))
}

/// `DELETE /todo/item?id=N`.
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    QueryArgs(query): QueryArgs<ItemQuery>,
) -> Result<Response, ApiError> {
    let id = item_id(&query)?;
    if state.db.delete_todo(user.id, id).await? {
        Ok(ok(json!({ "id": id, "deleted": true })))
    } else {
        Err(ApiError::TodoNotFound)
    }
}
