//! Listing live sessions for `nene sessions copy`: `SCAN` over the session
//! keys, then each key's `PTTL`, a page at a time. The `SCAN` cursor is the
//! page cursor, so a copy never holds more than one page of keys.

use std::time::Duration;

use redis::Value;

use crate::session::backend::{LIST_PAGE_SIZE, LiveSession, SessionPage};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

use super::RedisSessionHandler;
use super::connection::Request;

impl RedisSessionHandler {
    /// One `SCAN` step from `cursor` and the remaining lifetime of what it
    /// found. `SCAN` may return a key twice or an empty step; the copy skips
    /// what the destination already has, so a repeat costs nothing.
    pub(super) async fn list_page(
        &self,
        cursor: Option<String>,
    ) -> Result<SessionPage, SessionError> {
        if self.hash_tag {
            // A cluster's SCAN runs per node; its cursor is not one value.
            return Err(SessionError::Backend {
                backend: super::BACKEND,
                operation: "list",
                message: "listing sessions is not supported on redis+cluster://; \
                          copy from each primary with a redis:// DSN"
                    .to_string(),
            });
        }
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor.as_deref().unwrap_or("0"))
            .arg("MATCH")
            .arg(format!("{}*", glob_escape(&self.prefix)))
            .arg("COUNT")
            .arg(LIST_PAGE_SIZE);
        let (next, keys): (String, Vec<Vec<u8>>) =
            self.redis.run("list", Request::Command(&scan)).await?;
        let ids: Vec<SessionId> = keys
            .iter()
            .filter_map(|key| std::str::from_utf8(key).ok())
            .filter(|key| !key.ends_with(&self.lock_suffix))
            .filter_map(|key| key.strip_prefix(&self.prefix))
            .filter_map(SessionId::from_store)
            .collect();
        let mut sessions = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            let mut pipeline = redis::pipe();
            for id in &ids {
                pipeline.cmd("PTTL").arg(self.key(id));
            }
            let ttls: Vec<Value> = self.redis.run("list", Request::Pipeline(&pipeline)).await?;
            for (id, ttl) in ids.into_iter().zip(ttls) {
                // -2: gone since the SCAN; -1: no expiry (not written by a
                // session handler), left out rather than copied forever.
                if let Value::Int(millis) = ttl
                    && millis > 0
                {
                    sessions.push(LiveSession {
                        id,
                        remaining: Duration::from_millis(millis as u64),
                    });
                }
            }
        }
        Ok(SessionPage {
            sessions,
            next: (next != "0").then_some(next),
        })
    }
}

/// `text` as a literal in a `SCAN MATCH` pattern.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn glob_characters_in_the_prefix_are_literal() {
        assert_eq!(glob_escape("sess_"), "sess_");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
