//! The bounds one FastCGI connection enforces on what a peer may send. Every
//! length read off the wire is untrusted; these say how much of it we hold.

use std::path::PathBuf;
use std::time::Duration;

/// Bounds for one connection. Built once at start-up and shared.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Total bytes of PARAMS content per request. Above it the request is
    /// answered 431 and the rest of its params are discarded unread.
    pub max_params_bytes: usize,
    /// Pairs of params per request. Above it the request is answered 431.
    pub max_params: usize,
    /// Bytes of request body (STDIN) per request. Above it the request is
    /// answered 413; the body is discarded as it arrives, never buffered.
    pub max_body_bytes: usize,
    /// A body up to this size stays in memory; a larger one is written to a
    /// temporary file in `upload_tmp_dir` as it arrives (nginx's
    /// `client_body_buffer_size`).
    pub client_body_buffer_size: usize,
    /// Where bodies over `client_body_buffer_size` (and uploaded files) are
    /// written (PHP's `upload_tmp_dir`).
    pub upload_tmp_dir: PathBuf,
    /// Bytes all requests together may hold in memory: params and bodies
    /// within `client_body_buffer_size`. A request that would go over it is
    /// answered 503.
    pub max_buffered_bytes: usize,
    /// Time from a request's first record to its last (end of STDIN). A slow
    /// or stalled peer is disconnected when it runs out.
    pub receive_timeout: Duration,
    /// Time a kept connection may sit with no request in progress.
    pub idle_timeout: Duration,
    /// Requests one connection may have open at once (multiplexing). A
    /// BEGIN_REQUEST beyond it is answered with `FCGI_OVERLOADED`.
    pub max_requests_per_connection: usize,
    /// The server-wide connection cap, reported as `FCGI_MAX_CONNS`.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// `FCGI_MAX_REQS`: the most requests the server accepts at once.
    pub fn max_requests(&self) -> usize {
        self.max_connections
            .saturating_mul(self.max_requests_per_connection)
    }
}

impl ConnectionLimits {
    /// How long a peer may take to accept a response before the connection
    /// is dropped: the same budget it has to send a request.
    pub fn write_timeout(&self) -> Duration {
        self.receive_timeout
    }
}
