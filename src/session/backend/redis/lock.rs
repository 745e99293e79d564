//! A held Redis lock: its key and the random token only its holder knows;
//! released by compare-and-delete (a script that also publishes the
//! release, or hands the lock to a waiting instance), retried in the
//! background (token_lock.rs).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::session::backend::token_lock::TokenLock;
use crate::session::error::SessionError;

use super::connection::{Request, SharedConnection};
use super::scripts::RELEASE;

/// A held session lock: the key and the token only its holder knows.
pub(super) struct RedisLock {
    /// The connection, kept so the lock can be released from a background
    /// task after its request was cancelled.
    pub(super) redis: Arc<SharedConnection>,
    /// `{prefix}{id}.lock`.
    pub(super) key: String,
    /// `{prefix}{id}.lock.waiters`: requests of other instances waiting
    /// for the lock (scripts.rs, `RELEASE_SCRIPT`).
    pub(super) waiters_key: String,
    /// `{prefix}{id}`, which a hand-off sends along to the next holder.
    pub(super) session_key: String,
    /// The expiry a lock handed on gets, in ms (`lock_ttl`).
    pub(super) ttl_ms: u64,
    /// `session.max_size`: a larger session is not sent along.
    pub(super) max_size: u64,
    /// The token may be among the lock's waiters (it registered and did
    /// not get the lock): the release also withdraws it.
    pub(super) registered: bool,
    /// Random, so that releasing can tell this holder's lock from a later one's.
    pub(super) token: String,
    /// Whether the release is published for waiters on other instances
    /// (not in a cluster; see release_notices.rs).
    pub(super) publish: bool,
    /// When Redis expires the lock at the latest (counted from before it
    /// was taken, so never later than Redis' own clock).
    pub(super) expires_at: Instant,
}

impl RedisLock {
    /// Adds `RELEASE_SCRIPT` for this lock to `pipeline`, by its SHA (send
    /// it as `Request::WithScript` with [`RELEASE`]): release the lock (or
    /// hand it on), and withdraw this token from the waiters if it may be
    /// registered there. The script's text is not sent each time: Redis
    /// hashes the text of every `EVAL`, which cost single-instance sessions
    /// about a tenth of their req/s once the hand-off made it longer.
    pub(super) fn add_release(&self, pipeline: &mut redis::Pipeline) {
        pipeline
            .cmd("EVALSHA")
            .arg(RELEASE.get_hash())
            .arg(3)
            .arg(&self.key)
            .arg(&self.waiters_key)
            .arg(&self.session_key)
            .arg(&self.token)
            .arg(if self.publish { "1" } else { "0" })
            .arg(self.ttl_ms)
            .arg(self.max_size)
            .arg(if self.registered { "1" } else { "0" });
    }
}

#[async_trait]
impl TokenLock for RedisLock {
    async fn release_once(&self) -> Result<(), SessionError> {
        let mut release = redis::pipe();
        self.add_release(&mut release);
        self.redis
            .run::<Vec<i64>>("unlock", Request::WithScript(&release, &RELEASE))
            .await
            .map(drop)
    }

    fn expires_at(&self) -> Instant {
        self.expires_at
    }
}
