//! Panics go through the log, rate-limited. A panic in a connection or a
//! handler is caught where it happens (the connection ends, the request
//! gets a 500) and the process goes on; Rust's default hook would print
//! every one to stderr unthrottled, so a peer that can trigger one could
//! flood the log. Here the first panic in each second is logged at ERROR
//! with its place; the others in that second are counted and reported with
//! the next logged one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One panic line per this interval, at most.
const ONE_LINE_PER: Duration = Duration::from_secs(1);

/// When the last line was written, and the panics not logged since.
static LAST_LINE: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

/// Replaces the process's panic hook with the rate-limited log line.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let mut last = LAST_LINE.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let suppressed = match *last {
            Some((at, suppressed)) if now.duration_since(at) < ONE_LINE_PER => {
                *last = Some((at, suppressed + 1));
                return;
            }
            Some((_, suppressed)) => suppressed,
            None => 0,
        };
        *last = Some((now, 0));
        drop(last);
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string())
            .replace(['\r', '\n'], " ");
        if suppressed > 0 {
            tracing::error!("panic at {place}: {message} ({suppressed} more panics not logged)");
        } else {
            tracing::error!("panic at {place}: {message}");
        }
    }));
}
