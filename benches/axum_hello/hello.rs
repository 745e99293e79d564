//! The reference for `benches/vs_axum.sh`: axum alone, serving what nene's
//! `GET /health` answers (`{"status":"ok"}` as JSON) over plain HTTP/1.1,
//! for nginx's `proxy_pass`. Same axum, tokio and runtime (multi-threaded,
//! one worker per core) as nene, so the two differ only in what sits
//! between nginx and the handler: HTTP/1.1 through hyper, or FastCGI
//! through nene (and nene's per-request layers).
//!
//! Built only by the bench script:
//! `cargo build --release --example axum_hello --features bench-axum`.

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let app = axum::Router::new().route("/health", get(health));
    axum::serve(listener, app).await
}
