//! A held memcached lock: a key taken with `add` (`ms … ME`) holding a
//! random token, released only by its holder. PHP's memcached extension
//! releases its locks with a plain delete, which also deletes a lock that
//! expired and was taken by another request meanwhile; nene compares first:
//! `mg key v c` reads the token and the item's CAS, and `md key C<cas>`
//! deletes only that version, so a lock another holder took since stays.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::session::backend::token_lock::TokenLock;
use crate::session::error::SessionError;

use super::client::{Command, Reply, Server};
use super::{failure_to_error, unexpected};

/// A held session lock: the key and the token only its holder knows.
pub(super) struct MemcachedLock {
    /// The server the lock key lives on, kept so the lock can be released
    /// from a background task after its request was cancelled.
    pub(super) server: Arc<Server>,
    /// `{prefix}{lock_prefix}{id}`.
    pub(super) key: String,
    /// Random, so that releasing can tell this holder's lock from a later one's.
    pub(super) token: String,
    /// When memcached expires the lock at the latest (counted from before
    /// it was taken).
    pub(super) expires_at: Instant,
}

#[async_trait]
impl TokenLock for MemcachedLock {
    /// Compare-and-delete: deletes the lock only while it still holds this
    /// holder's token.
    async fn release_once(&self) -> Result<(), SessionError> {
        let read = Command::GetWithCas { key: &self.key };
        let cas = match self.server.call(&read).await {
            Ok(Reply::ValueWithCas(token, cas)) if token == self.token.as_bytes() => cas,
            // Gone (expired) or another holder's: nothing of ours to release.
            Ok(Reply::NotDone | Reply::ValueWithCas(..)) => return Ok(()),
            Ok(other) => return Err(unexpected("unlock", &other)),
            Err(failure) => return Err(failure_to_error("unlock", failure)),
        };
        let delete = Command::Delete {
            key: &self.key,
            cas: Some(cas),
        };
        // `EX`: the lock changed between the two commands (it expired and
        // was taken again): not ours any more, so left alone.
        match self.server.call(&delete).await {
            Ok(Reply::Done | Reply::NotDone) => Ok(()),
            Ok(other) => Err(unexpected("unlock", &other)),
            Err(failure) => Err(failure_to_error("unlock", failure)),
        }
    }

    fn expires_at(&self) -> Instant {
        self.expires_at
    }
}
