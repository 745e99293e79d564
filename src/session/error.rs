//! What can go wrong with a session. A backend failure becomes a 503 for the
//! request that needed the session, a session grown past `session.max_size`
//! a 500 (retrying cannot help); one place, `IntoResponse` below. No message
//! carries a DSN password.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::log_limit::{Cause, admit_cause, and_more};

/// A session operation that failed; the request that needed the session is
/// answered 503 with `Retry-After: 1`.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The backend did not answer within its timeout.
    #[error("session backend {backend} timed out after {after:?} ({operation})")]
    Timeout {
        /// The backend's name (`redis`), for the log.
        backend: &'static str,
        /// What the request was doing (`read`, `write`, `lock`, …).
        operation: &'static str,
        /// How long the request waited.
        after: std::time::Duration,
    },
    /// The backend answered with an error or could not be reached.
    #[error("session backend {backend} failed ({operation}): {message}")]
    Backend {
        /// The backend's name (`files`, `redis`), for the log.
        backend: &'static str,
        /// What the request was doing (`read`, `write`, `gc`, …).
        operation: &'static str,
        /// The backend's own error, with the file or server it concerns; any
        /// password is masked.
        message: String,
    },
    /// Another request held the session's lock for longer than the wait allows.
    #[error("session #{id_tag} is locked by another request; gave up after {waited:?}")]
    LockTimeout {
        /// `SessionId::log_tag`, never the id.
        id_tag: String,
        /// How long the request waited before giving up.
        waited: std::time::Duration,
    },
    /// Stored data the codec cannot read.
    #[error("stored session data is unreadable: {0}")]
    Corrupt(String),
    /// The session grew past `session.max_size`; the change was not stored
    /// and the request is answered 500.
    #[error(
        "session #{id_tag} grew to {size} bytes, over session.max_size ({max}); this change was not stored"
    )]
    TooLarge {
        /// `SessionId::log_tag`, never the id.
        id_tag: String,
        /// The encoded session's size.
        size: usize,
        /// `session.max_size`.
        max: u64,
    },
    /// The handler read a value nene keeps only as stored bytes (a PHP
    /// object, a reference, a string that is not UTF-8); answered 500.
    #[error("session key `{key}` holds {what}, which nene cannot read; it is kept as stored")]
    Unmappable {
        /// The key the handler asked for.
        key: String,
        /// What the stored value is.
        what: &'static str,
    },
    /// The session holds data the configured format cannot store; answered
    /// 500 and nothing is stored.
    #[error("session key `{key}` cannot be stored: {reason}")]
    Unencodable {
        /// The key.
        key: String,
        /// Why the format cannot store it.
        reason: &'static str,
    },
}

impl SessionError {
    /// What the failure is about, for the log's rate limit: a backend that
    /// is down fails every request the same way, and one line a second per
    /// cause (with a count of the rest) says as much as thousands.
    fn cause(&self) -> Cause {
        match self {
            SessionError::Timeout {
                backend, operation, ..
            } => ("timed out", backend, operation),
            SessionError::Backend {
                backend, operation, ..
            } => ("failed", backend, operation),
            SessionError::LockTimeout { .. } => ("lock wait", "", ""),
            SessionError::Corrupt(_) => ("corrupt", "", ""),
            SessionError::TooLarge { .. } => ("too large", "", ""),
            SessionError::Unmappable { .. } => ("unmappable", "", ""),
            SessionError::Unencodable { .. } => ("unencodable", "", ""),
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let left_out = admit_cause(self.cause());
        if let SessionError::TooLarge { .. }
        | SessionError::Unmappable { .. }
        | SessionError::Unencodable { .. } = self
        {
            // The application stored more than the bound allows, read what
            // it cannot, or stored what the format cannot hold: a bug to
            // fix, not a passing outage, so no Retry-After.
            if let Some(left_out) = left_out {
                tracing::error!("{self}{}", and_more(left_out));
            }
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the session cannot be used as the application asked\n",
            )
                .into_response();
        }
        if let Some(left_out) = left_out {
            tracing::warn!("session unavailable: {self}{}", and_more(left_out));
        }
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "session storage unavailable, please retry\n",
        )
            .into_response()
    }
}
