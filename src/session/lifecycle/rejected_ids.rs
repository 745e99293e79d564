//! Ids refused by `use_strict_mode` (well-formed, but not a stored session):
//! one or two are stale cookies, thousands are somebody guessing. Each is
//! counted and logged at warn with the client's address so a brute force is
//! visible, at most one line per second so the guessing cannot flood the
//! log; a line says how many it stands for. The id itself is never logged.

use std::net::IpAddr;

use crate::log_limit::{LogLimit, and_more};

/// The rate limiter behind the warn lines.
#[derive(Debug, Default)]
pub struct RejectedIds {
    /// One line a second; the rejections in between are counted.
    lines: LogLimit,
}

impl RejectedIds {
    /// Notes one rejected id from `client`; logs it unless a line was
    /// written less than a second ago.
    pub fn note(&self, client: Option<IpAddr>) {
        let Some(others) = self.lines.admit() else {
            return;
        };
        let client = client.map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
        tracing::warn!(
            "use_strict_mode: refused a session id we did not issue, from {client}{}",
            and_more(others)
        );
    }
}
