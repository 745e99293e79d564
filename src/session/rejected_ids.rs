//! Ids refused by `use_strict_mode` (well-formed, but not a stored session):
//! one or two are stale cookies, thousands are somebody guessing. Each is
//! counted and logged at warn with the client's address so a brute force is
//! visible, at most one line per second so the guessing cannot flood the
//! log; a line says how many it stands for. The id itself is never logged.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one log line per this long.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The rate limiter behind the warn lines.
#[derive(Debug, Default)]
pub struct RejectedIds {
    /// When the last line was written, and rejections since then that got
    /// no line of their own.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RejectedIds {
    /// Notes one rejected id from `client`; logs it unless a line was
    /// written less than a second ago.
    pub fn note(&self, client: Option<IpAddr>) {
        let now = Instant::now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let (last, suppressed) = &mut *state;
        if last.is_some_and(|last| now.duration_since(last) < LOG_EVERY) {
            *suppressed += 1;
            return;
        }
        let others = std::mem::take(suppressed);
        *last = Some(now);
        drop(state);
        let client = client.map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
        if others == 0 {
            tracing::warn!("use_strict_mode: refused a session id we did not issue, from {client}");
        } else {
            tracing::warn!(
                "use_strict_mode: refused a session id we did not issue, from {client} \
                 (and {others} more since the previous line)"
            );
        }
    }
}
