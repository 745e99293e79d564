//! Switching session backends without logging anyone out
//! (`session.migrate_from`, docs/decisions/0017). The new backend is the
//! one that counts: locks, writes and touches go there. A session id the
//! new backend does not have is looked up in the old one, and when found it
//! is stored in the new one at once (its lifetime starts again, as with any
//! use of a session), so the rest of the request — a lazy-write touch, a regenerate —
//! finds it where it now lives. Destroy goes to both, so a logout during
//! the switch cannot leave the old copy to be picked up again.
//!
//! The old backend is only read (and destroyed from): an operator sets
//! `migrate_from` to the old DSN when switching `SESSION_DSN`, and removes
//! it after `session.gc_maxlifetime`, when every session the old backend
//! still has has expired. A failure of the old backend is a failure of the
//! request that needed it (a 503), never a silent "no session".

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::session::backend::{
    HeldLock, LiveSession, LockedRead, SessionAdmin, SessionHandler, SessionLock, SessionPage,
    Stored,
};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

/// The new backend, with the old one behind it for ids it lacks.
pub struct MigratingSessionHandler {
    /// Where sessions live from now on.
    new: Arc<dyn SessionAdmin>,
    /// Where they lived before the switch; read, never written.
    old: Arc<dyn SessionAdmin>,
}

impl MigratingSessionHandler {
    /// `new` in front, `old` read for what `new` lacks.
    pub fn new(new: Arc<dyn SessionAdmin>, old: Arc<dyn SessionAdmin>) -> Self {
        Self { new, old }
    }

    /// What the new backend found, or when it found nothing, what the old
    /// one has — stored in the new one first, through the new backend's
    /// `lock` (its own connection on SQL, whose other connections would
    /// wait for that lock).
    async fn or_from_old(
        &self,
        lock: &SessionLock,
        id: &SessionId,
        found: Stored,
    ) -> Result<Stored, SessionError> {
        if found != Stored::Missing {
            return Ok(found);
        }
        let old = self.old.read(id).await?;
        if let Stored::Data(data) = &old {
            lock.write(&*self.new, id, data.clone()).await?;
            tracing::info!(
                "session #{} moved from {} to {}",
                id.log_tag(),
                self.old.name(),
                self.new.name()
            );
        }
        // An unreadable old session (over session.max_size) is not moved:
        // the request sees it as unreadable, as it would have before.
        Ok(old)
    }

    /// The new backend's `lock`, as the request holds it: destroys reach
    /// the old backend too.
    fn wrap(&self, lock: SessionLock) -> SessionLock {
        match lock.into_held() {
            Some(new) => SessionLock::held(Arc::new(MigratingLock {
                new,
                old: self.old.clone() as Arc<dyn SessionHandler>,
            })),
            None => SessionLock::none(),
        }
    }
}

#[async_trait]
impl SessionHandler for MigratingSessionHandler {
    fn name(&self) -> &'static str {
        self.new.name()
    }

    /// The new backend's lock covers the move: another request of the
    /// same session waits for it, then finds the session already moved.
    async fn lock_and_read(self: Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        let (lock, found) = self.new.clone().lock_and_read(id, wait).await?;
        match self.or_from_old(&lock, id, found).await {
            Ok(stored) => Ok((self.wrap(lock), stored)),
            Err(error) => {
                let _ = lock.release().await;
                Err(error)
            }
        }
    }

    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        match self.new.read(id).await? {
            Stored::Missing => self.old.read(id).await,
            found => Ok(found),
        }
    }

    /// A session the new backend lacks is moved as for any request, under
    /// the new backend's lock (`lock_and_read`): an unlocked copy could
    /// overwrite what a locked request had just written.
    async fn read_for_read_only(self: Arc<Self>, id: &SessionId) -> LockedRead {
        let (lock, found) = self.new.clone().read_for_read_only(id).await?;
        if found != Stored::Missing {
            return Ok((self.wrap(lock), found));
        }
        let _ = lock.release().await;
        let wait = self.lock_wait();
        self.lock_and_read(id, wait).await
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.new.write(id, data).await
    }

    async fn touch(&self, id: &SessionId) -> Result<(), SessionError> {
        self.new.touch(id).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.new.destroy(id).await?;
        self.old.destroy(id).await
    }

    /// Both: the old backend's leftovers expire there too (files need gc).
    async fn gc(&self) -> Result<u64, SessionError> {
        Ok(self.new.gc().await? + self.old.gc().await?)
    }

    /// Both must answer: a request for a session not yet moved needs the old one.
    async fn ping(&self) -> Result<(), SessionError> {
        self.new.ping().await?;
        self.old.ping().await
    }

    fn uses_locking(&self) -> bool {
        self.new.uses_locking()
    }

    fn lock_wait(&self) -> Duration {
        self.new.lock_wait()
    }

    fn lock_expiry(&self) -> Option<Duration> {
        self.new.lock_expiry()
    }
}

/// What a copy would see: the new backend, where sessions go (and both for
/// `exists`, so that a session not yet moved counts as there).
#[async_trait]
impl SessionAdmin for MigratingSessionHandler {
    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError> {
        Ok(self.new.exists(id).await? || self.old.exists(id).await?)
    }

    async fn store_copy(&self, live: &LiveSession, data: Bytes) -> Result<(), SessionError> {
        self.new.store_copy(live, data).await
    }

    async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError> {
        self.new.list_sessions(cursor).await
    }
}

/// The new backend's lock during a switch: everything it does is the new
/// backend's (its fence, its connection), and a destroy also deletes the
/// old backend's copy, so a logout cannot leave it to be picked up again.
struct MigratingLock {
    /// The new backend's lock (the guard around this one releases it).
    new: Arc<dyn HeldLock>,
    /// The old backend.
    old: Arc<dyn SessionHandler>,
}

#[async_trait]
impl HeldLock for MigratingLock {
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.new.write(id, data).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.new.destroy(id).await?;
        self.old.destroy(id).await
    }

    async fn save_and_release(
        self: Arc<Self>,
        id: &SessionId,
        data: Option<Bytes>,
    ) -> Result<(), SessionError> {
        self.new.clone().save_and_release(id, data).await
    }

    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        self.new.clone().release().await
    }

    fn sends_last_write_behind(&self) -> bool {
        self.new.sends_last_write_behind()
    }
}
