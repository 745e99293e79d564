//! What the session layer counts for the status page (backend errors, lock
//! waits and timeouts, backend latency) and what it times per request for
//! the slow log (session read and write).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::session::error::SessionError;

/// Buckets of powers of two microseconds: bucket `i` holds durations below
/// 2^(i+1) µs, the last one everything from about 8.6 s up.
const BUCKETS: usize = 24;

/// A lock-free latency histogram; percentiles are bucket upper bounds, so
/// they are at most a factor of two above the truth — enough to tell 1 ms
/// from 100 ms on a status page.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
}

impl LatencyHistogram {
    /// Counts one sample in its bucket (below 1 µs counts as 1 µs).
    pub fn record(&self, elapsed: Duration) {
        let micros = elapsed.as_micros().max(1) as u64;
        let bucket = (63 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Samples recorded since start.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The duration below which `quantile` (0..1) of the samples fall.
    pub fn percentile(&self, quantile: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(1u64 << (bucket + 1)));
            }
        }
        None
    }
}

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
    /// Time of each backend round (start: lock + read; commit: write or touch).
    pub latency: LatencyHistogram,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.percentile(0.5), None);
        for _ in 0..98 {
            histogram.record(Duration::from_micros(300));
        }
        histogram.record(Duration::from_millis(40));
        histogram.record(Duration::from_millis(40));
        assert_eq!(histogram.count(), 100);
        assert_eq!(histogram.percentile(0.5), Some(Duration::from_micros(512)));
        assert_eq!(
            histogram.percentile(0.99),
            Some(Duration::from_micros(65_536))
        );
    }
}
