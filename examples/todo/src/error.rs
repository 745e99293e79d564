//! The one error type of the API. Every failure a handler can meet is a
//! variant here, and `IntoResponse` below is the only place that turns one
//! into an HTTP answer: the envelope `{"success":false,"error":{code,message}}`
//! with its status. Handlers just use `?`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::envelope::failure;
use crate::store::StoreError;

/// Everything the API reports as an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a title is required")]
    TitleRequired,
    #[error("the title is longer than {max} characters")]
    TitleTooLong { max: usize },
    #[error("the title has control characters (a NUL, a line break…)")]
    TitleInvalid,
    #[error("no such todo")]
    TodoNotFound,
    #[error("log in first")]
    AuthRequired,
    #[error("unknown user name or wrong password")]
    AuthInvalid,
    #[error("that user name is taken")]
    UserExists,
    #[error("a user name is 3 to 32 letters, digits, '.', '_' or '-'")]
    UsernameInvalid,
    #[error("a password is 8 to 128 characters")]
    PasswordInvalid,
    /// Malformed JSON, a wrong type, a bad id: `status` is 400 or 422.
    #[error("{message}")]
    InputInvalid { status: StatusCode, message: String },
    #[error("missing or wrong X-CSRF-Token header; GET /auth/csrf for the current token")]
    CsrfInvalid,
    /// The pool had no connection within its acquire timeout, or the
    /// database failed the query. Logged where it happens (with the
    /// backend's own message, which never holds the password).
    #[error("the database is unavailable; try again shortly")]
    DatabaseUnavailable,
    /// nene could not read or write the session (its own 503).
    #[error("the session store is unavailable; try again shortly")]
    SessionUnavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable code clients switch on, and the HTTP status.
    /// The HTTP status the error is answered with.
    pub fn status(&self) -> StatusCode {
        self.code_and_status().1
    }

    fn code_and_status(&self) -> (&'static str, StatusCode) {
        use ApiError::*;
        match self {
            TitleRequired => ("TODO-TITLE-REQUIRED", StatusCode::UNPROCESSABLE_ENTITY),
            TitleTooLong { .. } => ("TODO-TITLE-TOO-LONG", StatusCode::UNPROCESSABLE_ENTITY),
            TitleInvalid => ("TODO-TITLE-INVALID", StatusCode::UNPROCESSABLE_ENTITY),
            TodoNotFound => ("TODO-NOT-FOUND", StatusCode::NOT_FOUND),
            AuthRequired => ("AUTH-REQUIRED", StatusCode::UNAUTHORIZED),
            AuthInvalid => ("AUTH-INVALID", StatusCode::UNAUTHORIZED),
            UserExists => ("USER-EXISTS", StatusCode::CONFLICT),
            UsernameInvalid => ("USER-NAME-INVALID", StatusCode::UNPROCESSABLE_ENTITY),
            PasswordInvalid => ("USER-PASSWORD-INVALID", StatusCode::UNPROCESSABLE_ENTITY),
            InputInvalid { status, .. } => ("INPUT-INVALID", *status),
            CsrfInvalid => ("CSRF-TOKEN-INVALID", StatusCode::FORBIDDEN),
            DatabaseUnavailable => ("DATABASE-UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE),
            SessionUnavailable => ("SESSION-UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE),
            Internal => ("INTERNAL-ERROR", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    pub fn input(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError::InputInvalid {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let mut response = (status, failure(code, &self.to_string())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Both 503s are passing conditions (a restarting database, a
            // Redis failover): tell clients when to try again.
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("2"));
        }
        response
    }
}

impl From<nene::SessionError> for ApiError {
    fn from(error: nene::SessionError) -> Self {
        tracing::warn!("session unavailable: {error}");
        ApiError::SessionUnavailable
    }
}

impl From<StoreError> for ApiError {
    /// Only a database that cannot be reached or cannot take work now is
    /// "unavailable" (503, worth retrying). Any other failure is this
    /// application's bug (input it should have refused, a query the
    /// database rejects): 500, never dressed up as an outage. The log has
    /// the details.
    fn from(error: StoreError) -> Self {
        let unavailable = match &error {
            StoreError::Sqlx(error) => is_unavailability(error),
            StoreError::Sqlite(error) => is_sqlite_unavailability(error),
        };
        if unavailable {
            tracing::error!("database unavailable: {error}");
            ApiError::DatabaseUnavailable
        } else {
            tracing::error!("database refused a query: {error}");
            ApiError::Internal
        }
    }
}

/// Whether SQLite could not do the work now: busy or locked past the busy
/// timeout, read-only, an I/O error, a full disk, a file it cannot open.
fn is_sqlite_unavailability(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    error.sqlite_error_code().is_some_and(|code| {
        matches!(
            code,
            DatabaseBusy | DatabaseLocked | ReadOnly | SystemIoFailure | DiskFull | CannotOpen
        )
    })
}

/// Whether `error` says the database is out of reach or out of capacity:
/// the pool found no connection in time, the connection or its TLS broke,
/// or the server said so in its own terms.
fn is_unavailability(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database) => {
            if let Some(postgres) = database.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                // SQLSTATE classes 08 connection exception, 53 insufficient
                // resources, 57 operator intervention (a restart, a
                // cancelled statement), 40 transaction rollback (deadlock,
                // serialization): the same query may pass when retried.
                let code = postgres.code();
                return ["08", "53", "57", "40"]
                    .iter()
                    .any(|class| code.starts_with(class));
            }
            if let Some(mysql) = database.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // Too many connections, server shutting down, lock wait
                // timeout, deadlock, read-only server (a failed-over
                // replica).
                return [1040, 1053, 1205, 1213, 1290, 1836].contains(&mysql.number());
            }
            false
        }
        _ => false,
    }
}

impl From<JsonRejection> for ApiError {
    /// Bad JSON syntax or a missing content type is 400; well-formed JSON of
    /// the wrong shape (a number where a string goes) is 422.
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection {
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::input(
            status,
            format!(
                "the body is not valid JSON for this request: {}",
                rejection.body_text()
            ),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::input(
            StatusCode::BAD_REQUEST,
            format!("bad query string: {}", rejection.body_text()),
        )
    }
}
