//! A held Redis lock: its key and the random token only its holder knows;
//! released by compare-and-delete, retried in the background until it
//! expires if Redis is away.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::RngExt;
use tokio::time::Instant;

use crate::session::backend::HeldLock;
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

/// Pauses between attempts at releasing a lock whose release failed.
pub(super) const RELEASE_RETRY_FIRST: Duration = Duration::from_millis(100);
pub(super) const RELEASE_RETRY_MAX: Duration = Duration::from_secs(2);

impl RedisLock {
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

    /// Keeps trying until the release gets through or the lock has expired
    /// by itself. A Redis that restarts with persistence brings the lock
    /// back, and without this the session would stay locked for the rest of
    /// `lock_ttl` after Redis is up again.
    async fn retry_release(self: Box<Self>) {
        let mut pause = RELEASE_RETRY_FIRST;
        loop {
            tokio::time::sleep(pause).await;
            if Instant::now() >= self.expires_at || self.release_once().await.is_ok() {
                return;
            }
            pause = (pause * 2).min(RELEASE_RETRY_MAX);
        }
    }
}

#[async_trait]
impl HeldLock for RedisLock {
    async fn release(self: Box<Self>) -> Result<(), SessionError> {
        let released = self.release_once().await;
        if released.is_err() {
            tokio::spawn(self.retry_release());
        }
        released
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// 128 bits from the thread's CSPRNG, as hex.
pub(super) fn new_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
