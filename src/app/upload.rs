//! `/upload/*`: what an application does with a request body too large for
//! memory. `POST /upload` takes a `multipart/form-data` form
//! ([`UploadForm`]) and answers its fields and, for each file, its name,
//! content type, size and SHA-1 (read back from disk). `POST /upload/raw`
//! reads the body as a stream (nene spilled it to a file in
//! `upload_tmp_dir`) and answers its length and SHA-1 without ever holding
//! it whole.

use axum::Json;
use axum::body::Body;
use axum::routing::{MethodRouter, post};
use futures::StreamExt;
use nene::UploadForm;
use serde_json::{Value, json};
use sha1_smol::Sha1;
use std::io::Read;

async fn raw(body: Body) -> Result<Json<Value>, (http::StatusCode, String)> {
    let mut stream = body.into_data_stream();
    let mut hasher = Sha1::new();
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
        "sha1": hasher.digest().to_string(),
    })))
}

async fn form(form: UploadForm) -> Result<Json<Value>, (http::StatusCode, String)> {
    let fields: serde_json::Map<String, Value> = form
        .fields()
        .iter()
        .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
        .collect();
    let mut files = Vec::new();
    for file in form.files() {
        let path = file.path().to_path_buf();
        // Hashing a large file is blocking work: off the connection's task.
        let sha1 = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut file = std::fs::File::open(path)?;
            let mut hasher = Sha1::new();
            let mut buffer = vec![0; 64 * 1024];
            loop {
                let read = file.read(&mut buffer)?;
                if read == 0 {
                    return Ok(hasher.digest().to_string());
                }
                hasher.update(&buffer[..read]);
            }
        })
        .await
        .map_err(|error| (http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?
        .map_err(|error| (http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
        files.push(json!({
            "field": file.field(),
            "name": file.file_name(),
            "type": file.content_type(),
            "size": file.size(),
            "sha1": sha1,
        }));
    }
    // The files are deleted when `form` is dropped; an application that keeps
    // one calls `file.persist(to)` first.
    Ok(Json(json!({ "fields": fields, "files": files })))
}

pub fn form_route() -> MethodRouter {
    post(form)
}

pub fn raw_route() -> MethodRouter {
    post(raw)
}
