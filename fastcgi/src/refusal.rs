//! A request answered without the application (413, 431, 400, 503, a
//! handler's panic as 500), or never complete (499: the web server stopped
//! sending it): the event the protocol layer reports to its
//! [`Responder`](super::Responder) after writing the answer, so the server
//! around it can log every request, refused or not. The event carries
//! bytes and numbers only; what a log line looks like is the server's
//! business.

use std::time::Duration;

use super::params::CgiParams;
use super::request::IncomingRequest;

/// One refused request, as far as it is known.
#[derive(Clone, Copy, Debug)]
pub struct Refusal<'a> {
    /// The HTTP status the peer was answered with; [`CLIENT_GONE`] for a
    /// request whose sender went away before it was complete.
    pub status: u16,
    /// The params as far as they were readable: all of them when the body
    /// was refused; the whole pairs that arrived within the bounds when the
    /// params themselves were; `None` when nothing of them is left (a
    /// handler that panicked took its request with it).
    pub params: Option<&'a CgiParams>,
    /// From the request's BEGIN_REQUEST to its answer.
    pub elapsed: Duration,
}

/// The status logged for a request the web server stopped sending (its
/// client cancelled an upload, the connection broke): nginx's own code for
/// "client closed request". Nobody receives it.
pub const CLIENT_GONE: u16 = 499;

impl<'a> Refusal<'a> {
    /// A request that never arrived whole, for its access-log line.
    pub(crate) fn client_gone(request: &'a IncomingRequest) -> Self {
        Refusal {
            status: CLIENT_GONE,
            params: request.params(),
            elapsed: request.started.elapsed(),
        }
    }
}
