//! A request answered without the application (413, 431, 400, 503, a
//! handler's panic as 500): the event the protocol layer reports to its
//! [`Responder`](super::Responder) after writing the answer, so the server
//! around it can log every request, refused or not. The event carries
//! bytes and numbers only; what a log line looks like is the server's
//! business.

use std::time::Duration;

use super::params::CgiParams;

/// One refused request, as far as it is known.
#[derive(Clone, Copy, Debug)]
pub struct Refusal<'a> {
    /// The HTTP status the peer was answered with.
    pub status: u16,
    /// The params as far as they were readable: all of them when the body
    /// was refused; the whole pairs that arrived within the bounds when the
    /// params themselves were; `None` when nothing of them is left (a
    /// handler that panicked took its request with it).
    pub params: Option<&'a CgiParams>,
    /// From the request's BEGIN_REQUEST to its answer.
    pub elapsed: Duration,
}
