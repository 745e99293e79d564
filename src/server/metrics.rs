//! Counters the accept loop keeps for the status page: PHP-FPM's "accepted
//! conn", open connections, how often the connection cap was reached, and
//! the request buffer budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::fastcgi::BufferBudget;

/// Connection counters shared by the accept loop and the status page.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    /// Connections accepted since start ("accepted conn").
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Times a new connection had to wait because `max_connections` were
    /// open (FPM's "max children reached").
    pub cap_reached: AtomicU64,
    /// The listening TCP socket, for its accept queue (`None`: not yet, no
    /// longer, or Unix). Read under the lock and cleared under it before the
    /// listener closes, so a closed fd's number is never queried after the
    /// kernel has handed it to another file.
    listen_fd: Mutex<Option<i32>>,
    /// The budget requests' params and in-memory bodies draw from, once the
    /// server runs.
    budget: OnceLock<BufferBudget>,
}

/// The accept queue of a listening TCP socket, as the kernel reports it.
#[derive(Clone, Copy, Debug)]
pub struct ListenQueue {
    /// Connections waiting to be accepted ("listen queue").
    pub waiting: u32,
    /// The backlog the socket was given ("listen queue len").
    pub capacity: u32,
}

impl ServerMetrics {
    /// All counters at zero and no listening socket yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the listening TCP socket, or clears it (`None`) before the
    /// listener closes.
    pub(super) fn set_listen_fd(&self, fd: Option<i32>) {
        *self
            .listen_fd
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fd;
    }

    /// Records the budget the server's connections share.
    pub(super) fn set_budget(&self, budget: BufferBudget) {
        let _ = self.budget.set(budget);
    }

    /// The request buffer budget, once the server runs.
    pub fn budget(&self) -> Option<&BufferBudget> {
        self.budget.get()
    }

    /// The TCP accept queue, from `TCP_INFO` (Linux reports a listening
    /// socket's queue in `tcpi_unacked` and its backlog in `tcpi_sacked`).
    /// `None` for Unix sockets or when the kernel will not say.
    pub fn listen_queue(&self) -> Option<ListenQueue> {
        let listen_fd = self
            .listen_fd
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fd = (*listen_fd)?;
        // SAFETY: getsockopt writes at most `len` bytes into `info`, a
        // plain-data struct; the fd is the open listener (the lock is held).
        unsafe {
            let mut info: libc::tcp_info = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
            let rc = libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            );
            (rc == 0 && info.tcpi_state == 10).then_some(ListenQueue {
                waiting: info.tcpi_unacked,
                capacity: info.tcpi_sacked,
            })
        }
    }
}

/// Counts one open connection for as long as it lives.
pub(super) struct OpenConnection(Arc<ServerMetrics>);

impl OpenConnection {
    /// Counts the connection as accepted and open.
    pub fn new(metrics: Arc<ServerMetrics>) -> Self {
        metrics.accepted.fetch_add(1, Ordering::Relaxed);
        metrics.open.fetch_add(1, Ordering::Relaxed);
        Self(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}
