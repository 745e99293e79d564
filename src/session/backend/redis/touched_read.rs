//! What a read-only read leaves a request holding on Redis: not a lock,
//! but the session's expiry, which the read restarted in its own round
//! trip (`LOCK_AND_READ_SCRIPT` with a TTL) rather than in a second one
//! after the data was decoded. The runtime then either keeps it (the data
//! was nene's: `save_and_release` with nothing to save is free) or gives it
//! back (`release`: the data did not decode, or outlived
//! `session.absolute_lifetime`, and decision 0019 says such data is not
//! even touched), which puts the expiry back as it was
//! (`RESTORE_EXPIRY_SCRIPT`), unless the session was written since.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::session::backend::{HeldLock, SessionHandler};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

use super::RedisSessionHandler;
use super::connection::{Request, evalsha};
use super::scripts::RESTORE_EXPIRY;

/// A session whose expiry a read-only read restarted.
pub(super) struct TouchedRead {
    pub(super) store: Arc<RedisSessionHandler>,
    pub(super) id: SessionId,
    /// What the read returned, to tell whether the session changed since
    /// (hashed only when the expiry is put back, which is rare).
    pub(super) data: Bytes,
    /// The expiry before the read, in ms (-1: none).
    pub(super) before_ms: i64,
    /// When the read was answered, to take off the time since.
    pub(super) read_at: Instant,
}

#[async_trait]
impl HeldLock for TouchedRead {
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.store.write(id, data).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.store.destroy(id).await
    }

    /// The expiry was restarted with the read: nothing is left to do for a
    /// touch.
    async fn save_and_release(
        self: Arc<Self>,
        id: &SessionId,
        data: Option<Bytes>,
    ) -> Result<(), SessionError> {
        match data {
            Some(data) => self.store.write(id, data).await,
            None => Ok(()),
        }
    }

    /// Puts the expiry back as it was before the read.
    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        let before = if self.before_ms < 0 {
            -1
        } else {
            let elapsed = i64::try_from(self.read_at.elapsed().as_millis()).unwrap_or(i64::MAX);
            (self.before_ms - elapsed).max(1)
        };
        let mut command = evalsha(&RESTORE_EXPIRY, &[&self.store.key(&self.id)]);
        command
            .arg(sha1_smol::Sha1::from(&self.data[..]).digest().to_string())
            .arg(before);
        self.store
            .redis
            .run::<i64>("touch", Request::Script(&command, &RESTORE_EXPIRY))
            .await
            .map(drop)
    }

    fn sends_last_write_behind(&self) -> bool {
        false
    }
}
