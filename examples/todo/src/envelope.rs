//! The API envelope: every answer is `{"success":true,"data":…}` or
//! `{"success":false,"error":{"code":…,"message":…}}`, so a client reads one
//! shape. Also the JSON body and query extractors whose rejections become
//! envelope errors instead of axum's plain-text ones.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ApiError;

/// The JSON answers' media type, as axum's `Json` sets it.
const JSON: &str = "application/json";

/// The success body. Serialized straight from `data`: building a
/// `serde_json::Value` first (the `json!` macro) allocates a map and a
/// string per field of every item, then serializes that again.
#[derive(Serialize)]
struct Success<T> {
    success: bool,
    data: T,
}

/// `200 {"success":true,"data":data}`. Written into a `Vec` rather than
/// through axum's `Json`, whose writer into a `BytesMut` goes through
/// `io::Write` for every token: for the 20-item list that was ~2,700
/// instructions a request more (benches/instructions.sh, APP=todo).
pub fn ok<T: Serialize>(data: T) -> Response {
    let success = Success {
        success: true,
        data,
    };
    // Room for a list page at once: `to_vec` starts at 128 bytes, and the
    // 20-item list (about 1 KB) took four allocations to grow into.
    let mut body = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut body, &success) {
        Ok(()) => ([(CONTENT_TYPE, HeaderValue::from_static(JSON))], body).into_response(),
        Err(error) => {
            tracing::error!("cannot serialize an answer: {error}");
            ApiError::Internal.into_response()
        }
    }
}

/// `201 {"success":true,"data":data}`, for a created resource.
pub fn created<T: Serialize>(data: T) -> Response {
    (StatusCode::CREATED, ok(data)).into_response()
}

/// The failure body; the status is set by `ApiError::into_response`.
pub fn failure(code: &str, message: &str) -> Json<Value> {
    Json(json!({ "success": false, "error": { "code": code, "message": message } }))
}

/// A JSON request body whose rejection is an `INPUT-INVALID` envelope.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(JsonBody(value))
    }
}

/// A query string whose rejection is an `INPUT-INVALID` envelope.
pub struct QueryArgs<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(QueryArgs(value))
    }
}
