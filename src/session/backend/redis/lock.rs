//! A held Redis lock: its key and the random token only its holder knows;
//! released by compare-and-delete (a script that also publishes the
//! release), retried in the background (token_lock.rs).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::session::backend::HeldLock;
use crate::session::backend::token_lock::{TokenLock, release_or_keep_trying};
use crate::session::error::SessionError;

use super::connection::{Request, SharedConnection};
use super::scripts::RELEASE_SCRIPT;

/// A held session lock: the key and the token only its holder knows.
pub(super) struct RedisLock {
    /// The connection, kept so the lock can be released from a background
    /// task after its request was cancelled.
    pub(super) redis: Arc<SharedConnection>,
    /// `{prefix}{id}.lock`.
    pub(super) key: String,
    /// Random, so that releasing can tell this holder's lock from a later one's.
    pub(super) token: String,
    /// Whether the release is published for waiters on other instances
    /// (not in a cluster; see release_notices.rs).
    pub(super) publish: bool,
    /// When Redis expires the lock at the latest (counted from before it
    /// was taken, so never later than Redis' own clock).
    pub(super) expires_at: Instant,
}

#[async_trait]
impl TokenLock for RedisLock {
    async fn release_once(&self) -> Result<(), SessionError> {
        let mut release = redis::cmd("EVAL");
        release
            .arg(RELEASE_SCRIPT)
            .arg(1)
            .arg(&self.key)
            .arg(&self.token)
            .arg(if self.publish { "1" } else { "0" });
        self.redis
            .run::<i64>("unlock", Request::Command(&release))
            .await
            .map(drop)
    }

    fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

#[async_trait]
impl HeldLock for RedisLock {
    async fn release(self: Box<Self>) -> Result<(), SessionError> {
        release_or_keep_trying(self).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}
