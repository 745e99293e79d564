//! [`ReadOnlySession`]: the session of a request that only reads it, as
//! PHP's `session_start(['read_and_close' => true])`. On most backends it
//! does not wait for the session's lock, so a page that only shows who is
//! logged in does not queue behind a slow request of the same visitor.

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::session::error::SessionError;
use crate::session::lifecycle::session::Session;

/// The session of the current request, read-only. Take it as a handler
/// argument (or in an extractor or middleware) instead of [`Session`] where
/// nothing is written:
///
/// - the stored data is read once, when first asked for, without taking the
///   session's lock: another request of the same session holding it does not
///   delay this one, and this one does not delay it. That holds for Redis,
///   memcached, MySQL/MariaDB, PostgreSQL and nene's own files. On SQLite,
///   and on files with PHP's locking (`session.save_path_lock = session_file`), a
///   value can only be read whole (or touched) under the lock, so there the
///   read takes it and gives it back at once, as PHP's `read_and_close`
///   does;
/// - the session's expiry restarts, as for any request that uses it (PHP's
///   `read_and_close` leaves it alone; a visitor who only reads would be
///   logged out after `gc_maxlifetime`); data nene cannot read is left
///   alone, not even touched;
/// - nothing is written and no cookie is sent, whatever the request offered:
///   an unknown id reads as an empty session and is not replaced;
/// - once the request has started the writable [`Session`] (a middleware
///   that changed it, say), reads see the request's own changes.
///
/// What it reads is the last stored state: a change another request is
/// making at the same moment is seen by the next read-only request, not by
/// this one.
///
/// ```
/// use nene::{ReadOnlySession, SessionError};
///
/// async fn whoami(session: ReadOnlySession) -> Result<String, SessionError> {
///     let user = session.get::<String>("user").await?;
///     Ok(user.unwrap_or_else(|| "nobody".to_string()))
/// }
/// ```
#[derive(Clone)]
pub struct ReadOnlySession(Session);

impl ReadOnlySession {
    /// The value under `key`, if present and of type `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.0.get_read_only(key).await
    }
}

/// The session layer puts a [`Session`] into every request; this is a
/// read-only view of it.
impl<S: Send + Sync> FromRequestParts<S> for ReadOnlySession {
    type Rejection = <Session as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Session::from_request_parts(parts, state)
            .await
            .map(ReadOnlySession)
    }
}
