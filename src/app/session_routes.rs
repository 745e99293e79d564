//! `/session/*`: the example routes that show (and test) sessions —
//! a counter, login with id regeneration, whoami, logout.

use axum::routing::{MethodRouter, get, post};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use nene::{ReadOnlySession, Session, SessionError};

/// `GET /session/counter`: 1 on a session's first request, then N+1.
async fn counter(session: Session) -> Result<Json<Value>, SessionError> {
    let count = session.get::<u64>("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(Json(json!({ "count": count })))
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

/// `POST /session/login` with form field `user`: a new id for the session
/// (no fixation), then the user is stored.
async fn login(session: Session, Form(login): Form<Login>) -> Result<Json<Value>, SessionError> {
    session.regenerate().await?;
    session.insert("user", &login.user).await?;
    Ok(Json(json!({ "user": login.user })))
}

/// `GET /session/whoami`: the logged-in user or null. It only reads, so it
/// takes the read-only session: it never waits for the session's lock.
async fn whoami(session: ReadOnlySession) -> Result<Json<Value>, SessionError> {
    let user = session.get::<String>("user").await?;
    Ok(Json(json!({ "user": user })))
}

/// `POST /session/logout`: the session is destroyed and the cookie expired.
async fn logout(session: Session) -> Result<Json<Value>, SessionError> {
    session.destroy().await?;
    Ok(Json(json!({ "status": "logged out" })))
}

pub fn counter_route() -> MethodRouter {
    get(counter)
}

pub fn login_route() -> MethodRouter {
    post(login)
}

pub fn whoami_route() -> MethodRouter {
    get(whoami)
}

pub fn logout_route() -> MethodRouter {
    post(logout)
}
