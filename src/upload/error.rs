//! Why an upload is refused, and the one place each reason becomes a
//! response: a bound exceeded is 413, a malformed form 400, a disk that
//! cannot take the file 503 — each with the reason in the body.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// Why an [`crate::upload::UploadForm`] could not be taken from a request.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The request is not `multipart/form-data` with a boundary.
    #[error("expected a multipart/form-data body with a boundary")]
    NotMultipart,
    /// The body is not valid multipart (cut short, bad headers, …).
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    /// A file is larger than `upload_max_filesize`.
    #[error("file in field {field:?} is over upload_max_filesize ({limit} bytes)")]
    FileTooLarge {
        /// The form field of the file.
        field: String,
        /// `upload_max_filesize`.
        limit: u64,
    },
    /// More files than `max_file_uploads`.
    #[error("more than max_file_uploads ({0}) files")]
    TooManyFiles(usize),
    /// More text fields than `max_input_vars`.
    #[error("more than max_input_vars ({0}) fields")]
    TooManyFields(usize),
    /// The text fields together are larger than nene holds in memory.
    #[error("text fields over {0} bytes together; send large values as files")]
    FieldsTooLarge(usize),
    /// A text field is not UTF-8.
    #[error("field {0:?} is not UTF-8 text")]
    FieldNotText(String),
    /// The file could not be written to `upload_tmp_dir` (full, gone).
    #[error("the upload could not be stored: {0}")]
    Storage(#[from] std::io::Error),
}

impl UploadError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            UploadError::NotMultipart
            | UploadError::Malformed(_)
            | UploadError::FieldNotText(_) => StatusCode::BAD_REQUEST,
            UploadError::FileTooLarge { .. }
            | UploadError::TooManyFiles(_)
            | UploadError::TooManyFields(_)
            | UploadError::FieldsTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!("upload refused: {self}");
            // The path and the system's words stay in the log.
            return (status, "the upload could not be stored; try again\n").into_response();
        }
        tracing::info!("upload refused: {self}");
        (status, format!("{self}\n")).into_response()
    }
}
