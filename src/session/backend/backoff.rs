//! The pause between tries at a busy session lock (Redis, memcached):
//! short at first, because most locks are held for one quick request, then
//! doubling up to a cap; each pause is jittered down to half, so that the
//! waiters of one session do not all try in the same millisecond.

use std::time::Duration;

/// The first pause.
const FIRST: Duration = Duration::from_millis(1);
/// The longest pause: a lock released between two tries is taken at most
/// this late.
const MAX: Duration = Duration::from_millis(50);

/// The pauses of one wait for a lock.
pub(crate) struct Backoff {
    pause: Duration,
}

impl Backoff {
    /// The pauses of a new wait.
    pub(crate) fn new() -> Self {
        Self { pause: FIRST }
    }

    /// Sleeps the next pause, never longer than `left`.
    pub(crate) async fn sleep(&mut self, left: Duration) {
        let half = self.pause / 2;
        let jitter = fastrand::u64(0..=u64::try_from(half.as_nanos()).unwrap_or(u64::MAX));
        let jittered = half + Duration::from_nanos(jitter);
        tokio::time::sleep(jittered.min(left)).await;
        self.pause = (self.pause * 2).min(MAX);
    }
}
