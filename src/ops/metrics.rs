//! Request counters kept by the operations layer for the status page:
//! active requests (FPM's "active processes"), their maximum, totals, slow
//! and timed-out requests, request durations, and when nene started.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use super::durations::RequestDurations;

/// Shared by every request through the operations layer; relaxed atomics, since
/// the counters are independent and only read for display.
#[derive(Debug)]
pub struct OpsMetrics {
    /// Wall-clock start, shown as `start time`.
    pub started_at: SystemTime,
    /// Monotonic start, for `start since` (uptime), which a clock change must
    /// not skew.
    pub started: Instant,
    /// Requests being handled now.
    pub active: AtomicU64,
    /// The most handled at once since start.
    pub max_active: AtomicU64,
    /// Requests answered since start.
    pub requests: AtomicU64,
    /// Requests slower than `request_slowlog_timeout`.
    pub slow: AtomicU64,
    /// Requests cut by `request_terminate_timeout` (504).
    pub timed_out: AtomicU64,
    /// Requests answered without the application (413, 431, 400, 503) or
    /// whose handler panicked (500); only a panicked one is also in
    /// `requests`.
    pub refused: AtomicU64,
    /// How long answered requests took, by route and status class.
    pub durations: RequestDurations,
}

impl Default for OpsMetrics {
    fn default() -> Self {
        Self {
            started_at: SystemTime::now(),
            started: Instant::now(),
            active: AtomicU64::new(0),
            max_active: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            durations: RequestDurations::default(),
        }
    }
}

/// The current value of one counter, for display.
pub fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl OpsMetrics {
    /// Counts a request as active and updates the maximum.
    pub fn request_started(&self) {
        let now = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_active.fetch_max(now, Ordering::Relaxed);
    }

    /// Counts an active request as answered (or abandoned by its client).
    pub fn request_ended(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}
