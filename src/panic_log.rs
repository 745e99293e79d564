//! Panics go through the log, rate-limited. A panic in a connection or a
//! handler is caught where it happens (the connection ends, the request
//! gets a 500) and the process goes on; Rust's default hook would print
//! every one to stderr unthrottled, so a peer that can trigger one could
//! flood the log. Here the first panic in each second is logged at ERROR
//! with its place; the others in that second are counted and reported with
//! the next logged one.

use crate::log_limit::LogLimit;

/// One panic line per second, at most.
static PANIC_LINES: LogLimit = LogLimit::new();

/// Replaces the process's panic hook with the rate-limited log line.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let Some(suppressed) = PANIC_LINES.admit() else {
            return;
        };
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
