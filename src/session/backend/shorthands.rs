//! Shorthands over the backend contract for the tests of backends: take a
//! lock without keeping what was read, save and release in one call, ask
//! whether anything is stored. Built only on [`SessionHandler`] and
//! [`SessionLock`], so a test through them tests what the runtime calls.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::session::backend::{LockedRead, SessionHandler, SessionLock, Stored};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

/// See the module header.
#[doc(hidden)]
#[async_trait]
pub trait BackendShorthands {
    /// [`SessionHandler::lock_and_read`] waiting the whole `lock_wait`.
    async fn locked_read(&self, id: &SessionId) -> LockedRead;

    /// The lock of `id`, waiting at most `wait`; what was read is dropped.
    async fn lock_within(
        &self,
        id: &SessionId,
        wait: Duration,
    ) -> Result<SessionLock, SessionError>;

    /// [`lock_within`](Self::lock_within) the whole `lock_wait`.
    async fn lock(&self, id: &SessionId) -> Result<SessionLock, SessionError>;

    /// [`SessionLock::save_and_release`] with this backend as the store.
    async fn save_and_unlock(
        &self,
        id: &SessionId,
        data: Option<Bytes>,
        lock: SessionLock,
    ) -> Result<(), SessionError>;

    /// Whether anything (readable or not) is stored under `id`.
    async fn is_stored(&self, id: &SessionId) -> Result<bool, SessionError>;
}

#[async_trait]
impl<H: SessionHandler + ?Sized> BackendShorthands for Arc<H> {
    async fn locked_read(&self, id: &SessionId) -> LockedRead {
        let wait = self.lock_wait();
        self.clone().lock_and_read(id, wait).await
    }

    async fn lock_within(
        &self,
        id: &SessionId,
        wait: Duration,
    ) -> Result<SessionLock, SessionError> {
        Ok(self.clone().lock_and_read(id, wait).await?.0)
    }

    async fn lock(&self, id: &SessionId) -> Result<SessionLock, SessionError> {
        self.lock_within(id, self.lock_wait()).await
    }

    async fn save_and_unlock(
        &self,
        id: &SessionId,
        data: Option<Bytes>,
        lock: SessionLock,
    ) -> Result<(), SessionError> {
        lock.save_and_release(&**self, id, data).await
    }

    async fn is_stored(&self, id: &SessionId) -> Result<bool, SessionError> {
        Ok(self.read(id).await? != Stored::Missing)
    }
}
