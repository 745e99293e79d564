//! CSRF protection with a synchronizer token: the session holds a random
//! token (`GET /auth/csrf` hands it out) and every state-changing request
//! must echo it in `X-CSRF-Token`. One middleware around the whole
//! application checks it, so no handler can forget to. The session cookie's
//! SameSite=Lax (nene's default) is a second line, not the only one.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nene::{ReadOnlySession, Session};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The session key of the token.
const KEY: &str = "csrf_token";
/// The request header that must carry it.
pub const HEADER: &str = "x-csrf-token";

/// 32 random bytes from the OS, hex-encoded (64 characters).
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The session's token, created (and stored) if it has none yet.
pub async fn token(session: &Session) -> Result<String, ApiError> {
    if let Some(token) = session.get::<String>(KEY).await? {
        return Ok(token);
    }
    rotate(session).await
}

/// A new token replacing the old one: at login, so a token seen before
/// authentication is worth nothing after it.
pub async fn rotate(session: &Session) -> Result<String, ApiError> {
    let token = new_token();
    session.insert(KEY, &token).await?;
    Ok(token)
}

/// Middleware: GET/HEAD/OPTIONS pass; anything else needs the header equal
/// to the session's token (compared in constant time), or it is refused
/// with 403 CSRF-TOKEN-INVALID before any handler runs. The check only
/// reads the session, so it takes it read-only: it adds no wait for the
/// session's lock (a handler that writes the session takes it after).
pub async fn require_token(session: ReadOnlySession, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let sent = request
        .headers()
        .get(HEADER)
        .map(|value| value.as_bytes().to_vec());
    let expected = match session.get::<String>(KEY).await {
        Ok(expected) => expected,
        Err(error) => return ApiError::from(error).into_response(),
    };
    match (sent, expected) {
        (Some(sent), Some(expected)) if bool::from(sent.ct_eq(expected.as_bytes())) => {
            next.run(request).await
        }
        _ => ApiError::CsrfInvalid.into_response(),
    }
}
