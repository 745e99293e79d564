//! `/health`: answers `{"status":"ok"}` to GET and to POST (whose body is read
//! and discarded), for load balancers and the compose healthcheck.

use axum::Json;
use axum::body::Bytes;
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn health_after_body(_discarded: Bytes) -> Json<Value> {
    health().await
}

pub fn route() -> MethodRouter {
    get(health).post(health_after_body)
}
