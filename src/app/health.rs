//! `/health`: answers `{"status":"ok"}` to GET and to POST (whose body is
//! drained and discarded), for load balancers and the compose healthcheck.

use axum::Json;
use axum::body::Body;
use axum::routing::{MethodRouter, get};
use futures::StreamExt;
use serde_json::{Value, json};

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The body is drained a chunk at a time and never held whole: a `Bytes`
/// extractor buffers all of it (8 MiB under nene's default bound), and 150
/// such POSTs at once took nene from 19 MiB to over 800 MiB of RSS although
/// the runtime had spilled every body to disk.
async fn health_after_body(body: Body) -> Json<Value> {
    let mut chunks = body.into_data_stream();
    while let Some(Ok(_discarded)) = chunks.next().await {}
    health().await
}

pub fn route() -> MethodRouter {
    get(health).post(health_after_body)
}
