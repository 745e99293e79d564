//! Everything the server needs to know, decided once at start-up.

use std::time::Duration;

use ipnet::IpNet;

use crate::fastcgi::ConnectionLimits;

use super::ListenAddr;

/// The `[server]` settings the listener, the accept loop and every connection
/// run with.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// TCP address or Unix socket path to listen on.
    pub listen: ListenAddr,
    /// Permissions of a Unix socket file (like PHP-FPM's `listen.mode`):
    /// nginx's user must be able to write to it.
    pub socket_mode: u32,
    /// The listen queue's length (PHP-FPM's `listen.backlog`). nginx opens
    /// upstream connections in bursts when its kept ones are all busy; a
    /// queue that overflows drops them and the kernel retries after a second.
    pub listen_backlog: u32,
    /// Threads of the async runtime that run requests; `None` for one per
    /// CPU core (tokio's default, which its `TOKIO_WORKER_THREADS`
    /// environment variable overrides).
    pub worker_threads: Option<usize>,
    /// Bounds every connection enforces.
    pub limits: ConnectionLimits,
    /// After SIGTERM, how long requests in flight may take to finish before
    /// nene exits anyway.
    pub drain_timeout: Duration,
    /// TCP peers that may connect (PHP-FPM's `listen.allowed_clients`):
    /// whoever reaches the FastCGI port can claim any REMOTE_ADDR, so only
    /// the web server should. Not checked for a Unix socket (its mode is
    /// the gate).
    pub allowed_clients: Vec<IpNet>,
}

impl ServerSettings {
    /// Whether a TCP peer at `ip` may connect. An IPv4 client of a
    /// dual-stack socket (`::ffff:a.b.c.d`) is checked as `a.b.c.d`.
    pub fn allows_client(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed_clients.iter().any(|net| net.contains(&ip))
    }
}
