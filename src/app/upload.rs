//! `/upload/*`: what an application does with a request body too large for
//! memory. `POST /upload/raw` reads the body as a stream (nene spilled it to
//! a file in `upload_tmp_dir`) and answers its length and SHA-256 without
//! ever holding it whole.

use axum::Json;
use axum::body::Body;
use axum::routing::{MethodRouter, post};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

async fn raw(body: Body) -> Result<Json<Value>, (http::StatusCode, String)> {
    let mut stream = body.into_data_stream();
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            (
                http::StatusCode::BAD_REQUEST,
                format!("the body could not be read: {error}\n"),
            )
        })?;
        bytes += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(Json(json!({
        "bytes": bytes,
        "sha256": format!("{:x}", hasher.finalize()),
    })))
}

pub fn raw_route() -> MethodRouter {
    post(raw)
}
