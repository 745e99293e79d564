//! What the session layer counts for the status page (backend errors, lock
//! waits and timeouts, histograms of backend and lock times) and what it
//! times per request for the slow log (session read and write).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::LatencyHistogram;
use crate::session::error::SessionError;

/// Counters shared by every request.
#[derive(Debug, Default)]
pub struct SessionMetrics {
    /// Backend operations that failed or timed out (each became a 503).
    pub backend_errors: AtomicU64,
    /// Requests that had to wait for another request of their session.
    pub lock_waits: AtomicU64,
    /// Requests that gave up waiting for a session lock (503).
    pub lock_timeouts: AtomicU64,
    /// Requests that started with the lock and data the previous request of
    /// their session handed over, without a backend round trip.
    pub hand_offs: AtomicU64,
    /// Time of each session start that went to the backend: lock (with any
    /// wait for another instance's hold of it) and read.
    pub start: LatencyHistogram,
    /// Time of each commit: write or touch, and the unlock.
    pub commit: LatencyHistogram,
    /// Time a request of a locking backend queued in this process behind
    /// other requests of its session before it went for the lock (most
    /// wait nothing).
    pub lock_wait: LatencyHistogram,
}

impl SessionMetrics {
    /// Counts a failed session operation: a lock timeout, or any other error
    /// as a backend error.
    pub(crate) fn count_error(&self, error: &SessionError) {
        let counter = match error {
            SessionError::LockTimeout { .. } => &self.lock_timeouts,
            _ => &self.backend_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where one request's session time went; the runtime puts one into the
/// request's extensions and reads it back for the slow log.
#[derive(Debug, Default)]
pub struct SessionTimings {
    read_micros: AtomicU64,
    write_micros: AtomicU64,
}

impl SessionTimings {
    /// Adds time spent starting the session.
    pub(crate) fn add_read(&self, elapsed: Duration) {
        self.read_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Adds time spent committing the session.
    pub(crate) fn add_write(&self, elapsed: Duration) {
        self.write_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Time spent starting the session (queue, lock, read).
    pub fn read(&self) -> Duration {
        Duration::from_micros(self.read_micros.load(Ordering::Relaxed))
    }

    /// Time spent committing it (write, touch or destroy, unlock).
    pub fn write(&self) -> Duration {
        Duration::from_micros(self.write_micros.load(Ordering::Relaxed))
    }
}
