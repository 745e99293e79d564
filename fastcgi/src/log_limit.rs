//! A warning a peer can trigger at will (a refused connection, a request
//! over a connection's cap, a panic, a backend that is down under load)
//! must not let that peer flood the log: [`LogLimit`] admits one line per
//! second and counts the rest, and the next admitted line says how many it
//! stands for. [`admit_cause`] does the same per cause, for warnings whose
//! call site serves many causes (every session failure goes through one).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// At most one line per this long, per kind of warning.
const ONE_LINE_PER: Duration = Duration::from_secs(1);

/// The rate limit of one kind of warning; a `static` per call site.
#[derive(Debug)]
pub struct LogLimit {
    /// When the last line was admitted, and how many were left out since.
    state: Mutex<LimitState>,
}

impl LogLimit {
    /// A limit that admits the first line at once.
    pub const fn new() -> Self {
        Self {
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(left_out)` when a line may be written now (`left_out` is how
    /// many were counted instead since the previous line); `None` when a
    /// line was written less than a second ago (this one is counted).
    pub fn admit(&self) -> Option<u64> {
        admit(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One limit's state: when its last line was admitted, and how many were
/// left out since.
type LimitState = (Option<Instant>, u64);

/// [`LogLimit::admit`] on the state of one limit.
fn admit((last, left_out): &mut LimitState) -> Option<u64> {
    let now = Instant::now();
    if last.is_some_and(|last| now.duration_since(last) < ONE_LINE_PER) {
        *left_out += 1;
        return None;
    }
    *last = Some(now);
    Some(std::mem::take(left_out))
}

/// What a warning is about, in fixed words (kind, backend, operation): one
/// line per second is admitted per cause. Fixed words keep the number of
/// causes, and so the map below, as small as the code that names them.
pub type Cause = (&'static str, &'static str, &'static str);

/// [`LogLimit::admit`] for warnings of `cause`.
pub fn admit_cause(cause: Cause) -> Option<u64> {
    static LIMITS: LazyLock<Mutex<HashMap<Cause, LimitState>>> = LazyLock::new(Default::default);
    let mut limits = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    admit(limits.entry(cause).or_default())
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// ` (and N more since the previous line)`, or nothing.
pub fn and_more(left_out: u64) -> String {
    if left_out == 0 {
        String::new()
    } else {
        format!(" (and {left_out} more since the previous line)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_second_and_a_count_of_the_rest() {
        let limit = LogLimit::new();
        assert_eq!(limit.admit(), Some(0));
        for _ in 0..500 {
            assert_eq!(limit.admit(), None);
        }
        std::thread::sleep(ONE_LINE_PER + Duration::from_millis(50));
        assert_eq!(limit.admit(), Some(500));
        assert_eq!(limit.admit(), None);
    }

    #[test]
    fn each_cause_has_its_own_line_per_second() {
        let down = ("test: timed out", "redis", "write");
        let other = ("test: timed out", "redis", "lock");
        assert_eq!(admit_cause(down), Some(0));
        assert_eq!(
            admit_cause(other),
            Some(0),
            "another cause is not held back"
        );
        for _ in 0..9 {
            assert_eq!(admit_cause(down), None);
        }
        std::thread::sleep(ONE_LINE_PER + Duration::from_millis(50));
        assert_eq!(admit_cause(down), Some(9));
        assert_eq!(admit_cause(other), Some(0));
    }
}
