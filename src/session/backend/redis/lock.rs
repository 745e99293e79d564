//! A held Redis lock: its key and the random token only its holder knows;
//! released by compare-and-delete (a script that also publishes the
//! release, or hands the lock to a waiting instance), retried in the
//! background (token_lock.rs). A lock handed on comes under a short claim,
//! which its new holder's next lock try turns into a full `lock_ttl`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::session::backend::token_lock::TokenLock;
use crate::session::error::SessionError;

use super::connection::{Request, SharedConnection};
use super::scripts::RELEASE;

/// How long a lock handed to a waiter of another instance stays taken
/// before that waiter takes it with its next try (at most `lock_ttl`). The
/// waiter hears of it within milliseconds and tries at once; a waiter whose
/// instance died after it registered keeps the session from everyone for
/// this long, where a whole `lock_ttl` (30 s by default) would mean 503s
/// for its visitor meanwhile.
const HAND_OFF_CLAIM: Duration = Duration::from_secs(2);

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
    /// `{prefix}{id}`, which a release may store first.
    pub(super) session_key: String,
    /// The lock's expiry in ms (`lock_ttl`): a lock taken gets it, a lock
    /// handed on gets [`HAND_OFF_CLAIM`] at most until its holder's try.
    pub(super) ttl_ms: u64,
    /// The token may be among the lock's waiters (it registered and did
    /// not get the lock): the release also withdraws it.
    pub(super) registered: bool,
    /// Random, so that releasing can tell this holder's lock from a later one's.
    pub(super) token: String,
    /// The prefix of the channel the release is published on for waiters
    /// on other instances; empty in a cluster, where releases are not
    /// published (release_notices.rs).
    pub(super) channel_prefix: Arc<str>,
    /// When Redis expires the lock at the latest (counted from before it
    /// was taken, so never later than Redis' own clock).
    pub(super) expires_at: Instant,
}

/// The claim a lock handed on gets, in ms, for a lock TTL of `ttl_ms`.
fn claim_ms(ttl_ms: u64) -> u64 {
    let claim = u64::try_from(HAND_OFF_CLAIM.as_millis()).unwrap_or(u64::MAX);
    ttl_ms.min(claim)
}

/// What a release stores first, under the lock's token (`RELEASE_SCRIPT`).
pub(super) enum SaveFirst<'a> {
    /// Nothing: a plain release.
    Nothing,
    /// Restart the session's expiry (`EXPIRE`, this many seconds).
    Touch { ttl_secs: u64 },
    /// Store the session (`SET … EX`).
    Set { ttl_secs: u64, data: &'a [u8] },
}

impl RedisLock {
    /// Adds `RELEASE_SCRIPT` for this lock to `pipeline`, by its SHA (send
    /// it as `Request::WithScript` with [`RELEASE`]): store what `save`
    /// says while the lock is still ours, then release it (or hand it on),
    /// and withdraw this token from the waiters if it may be registered
    /// there. The script's text is not sent each time: Redis hashes the
    /// text of every `EVAL`, which cost single-instance sessions about a
    /// tenth of their req/s once the hand-off made it longer.
    pub(super) fn add_release(&self, pipeline: &mut redis::Pipeline, save: SaveFirst<'_>) {
        pipeline
            .cmd("EVALSHA")
            .arg(RELEASE.get_hash())
            .arg(3)
            .arg(&self.key)
            .arg(&self.waiters_key)
            .arg(&self.session_key)
            .arg(&self.token)
            .arg(&*self.channel_prefix)
            .arg(claim_ms(self.ttl_ms))
            .arg(if self.registered { "1" } else { "0" });
        match save {
            SaveFirst::Nothing => pipeline.arg(""),
            SaveFirst::Touch { ttl_secs } => pipeline.arg("touch").arg(ttl_secs),
            SaveFirst::Set { ttl_secs, data } => pipeline.arg("set").arg(ttl_secs).arg(data),
        };
    }
}

#[async_trait]
impl TokenLock for RedisLock {
    async fn release_once(&self) -> Result<(), SessionError> {
        let mut release = redis::pipe();
        self.add_release(&mut release, SaveFirst::Nothing);
        self.redis
            .run::<Vec<i64>>("unlock", Request::WithScript(&release, &RELEASE))
            .await
            .map(drop)
    }

    fn expires_at(&self) -> Instant {
        self.expires_at
    }

    fn token(&self) -> &str {
        &self.token
    }
}
