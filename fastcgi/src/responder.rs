//! The seam between the protocol and whatever answers requests: a [`Responder`]
//! turns a [`CgiRequest`] into a [`CgiResponse`] (a CGI head and a body).

use std::future::Future;

use bytes::Bytes;
use futures::stream::BoxStream;

use super::refusal::Refusal;
use super::request::CgiRequest;

/// Boxed error of a streamed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers requests. Cloned into every connection; the future it returns runs
/// on that connection's task, so a panic in it is caught there and becomes a
/// 500 for that request only.
pub trait Responder: Clone + Send + 'static {
    /// The answer to one request: a type the connection can name, so that
    /// it holds each running request without boxing it.
    type Future: Future<Output = CgiResponse> + Send + 'static;

    /// Answers one complete request. Runs on the connection's task; the
    /// connection writes what it returns as STDOUT records and an END_REQUEST.
    fn respond(&self, request: CgiRequest) -> Self::Future;

    /// Told of every request the protocol layer answered itself, never
    /// reaching [`Self::respond`] (or whose handler panicked), once its
    /// answer is written: so every request can have its access-log line.
    /// Runs on the connection's task; keep it short. Ignored by default.
    fn refused(&self, refusal: &Refusal<'_>) {
        let _ = refusal;
    }
}

/// A CGI response: `head` holds the `Status:` line, the headers and the blank
/// line that ends them; `body` follows it on STDOUT.
pub struct CgiResponse {
    /// The CGI head: the `Status:` line, headers and the blank line that ends
    /// them.
    pub head: Bytes,
    /// What follows the head on STDOUT.
    pub body: ResponseBody,
}

/// A response body: bytes known up front, or a stream written record by
/// record as it is produced.
pub enum ResponseBody {
    /// A body held in memory, written at once.
    Full(Bytes),
    /// A body written record by record as it is produced; an error from the
    /// stream ends the request with a failed application status.
    Stream(BoxStream<'static, Result<Bytes, BoxError>>),
}

/// A small plain-text response the protocol layer sends by itself (413, 431,
/// 400, 500), when a request never reaches the application. Header names
/// are spelled as PHP-FPM spells them, as in every answer nene writes
/// (`server/cgi_response.rs`); `Status` is CGI's own field.
pub fn simple_response(status: u16, reason: &str, body: &str) -> CgiResponse {
    let head = format!(
        "Status: {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    CgiResponse {
        head: Bytes::from(head),
        body: ResponseBody::Full(Bytes::copy_from_slice(body.as_bytes())),
    }
}
