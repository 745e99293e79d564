//! A held Redis lock: its key and the random token only its holder knows;
//! released by compare-and-delete (a script that also publishes the
//! release, or hands the lock to a waiting instance), retried in the
//! background (token_lock.rs). A lock handed on comes under a short claim,
//! which its new holder's next lock try turns into a full `lock_ttl`.
//!
//! What a holder writes is fenced by the token: the request's last save
//! goes inside the release script, and a write chain's writes are
//! `CHECKED_SAVE_SCRIPT`, so nothing is stored once the lock has moved on
//! (docs/decisions/0020).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::session::backend::lock::{Release, write_or_touch};
use crate::session::backend::token_lock::TokenLock;
use crate::session::backend::{HeldLock, SessionHandler, SessionLock};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

use super::RedisSessionHandler;
use super::connection::Request;
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
    /// The backend that took it: its connections carry the writes and the
    /// release, also from a background task after the request was cancelled.
    pub(super) store: Arc<RedisSessionHandler>,
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
    pub(super) registered: AtomicBool,
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
            .arg(if self.registered.load(Ordering::Relaxed) {
                "1"
            } else {
                "0"
            });
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
        self.store
            .redis
            .run::<Vec<i64>>("unlock", Request::WithScript(&release, &RELEASE))
            .await
            .map(drop)
    }

    fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

#[async_trait]
impl HeldLock for RedisLock {
    /// The locked session's own writes are fenced (`CHECKED_SAVE_SCRIPT`):
    /// stored only while the lock still holds this token, so a write that
    /// arrives late (after a dropped or slow connection, behind the chain's
    /// last write on another connection) never lands on newer data. A write
    /// under the id a regenerate made is plain: that id has no lock, and in
    /// a cluster it lives in another slot than this lock.
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        if self.store.key(id) != self.session_key {
            return self.store.write(id, data).await;
        }
        self.store
            .checked_save(id, Some(&data), &self.token, false, true)
            .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.store.destroy(id).await
    }

    /// One round trip: the `SET … EX` (or `EXPIRE`) goes inside the
    /// release script, stored only while the lock still holds this token.
    /// If the connection drops under it, `CHECKED_SAVE_SCRIPT` (scripts.rs)
    /// is the retry.
    async fn save_and_release(
        self: Arc<Self>,
        id: &SessionId,
        data: Option<Bytes>,
    ) -> Result<(), SessionError> {
        let store = &self.store;
        if store.key(id) != self.session_key {
            // Not this lock's session (never asked of the runtime, which
            // writes a new id with `write`): plain, then released.
            let saved = write_or_touch(&**store, id, data).await;
            drop(SessionLock::held(self));
            return saved;
        }
        let save = match &data {
            Some(data) => SaveFirst::Set {
                ttl_secs: store.ttl_secs,
                data: data.as_ref(),
            },
            None => SaveFirst::Touch {
                ttl_secs: store.ttl_secs,
            },
        };
        let mut pipeline = redis::pipe();
        self.add_release(&mut pipeline, save);
        store.add_wait(&mut pipeline);
        let saved = match store
            .run_writes(id, "write", &pipeline, Some(&RELEASE), false)
            .await
        {
            // 0: the lock was not ours any more; nothing was stored. A
            // touch lost nothing (the session is the new holder's now, and
            // this request changed nothing of it).
            Ok(replies) if replies.first() == Some(&0) && data.is_some() => {
                Err(store.lock_lost(id))
            }
            Ok(_) => Ok(()),
            Err(failure) if failure.dropped => {
                store
                    .checked_save(id, data.as_ref(), &self.token, true, false)
                    .await
            }
            Err(failure) => Err(failure.error),
        };
        if saved.is_err() {
            // The pipeline may not have reached Redis: release on its own,
            // in the background (best effort; the lock TTL is the backstop).
            drop(SessionLock::held(self));
        }
        saved
    }

    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        Release::release(self).await
    }

    /// Chain writes are fenced, so the order two of them arrive in cannot
    /// lose a change. Not in a cluster yet: there a write a node redirected
    /// (`MOVED`, `ASK`) is sent again through the cluster connection
    /// (cluster_route.rs), a path the fault tests do not cover; until they
    /// do, a cluster keeps one chain write at a time.
    fn sends_last_write_behind(&self) -> bool {
        !self.store.hash_tag
    }
}
