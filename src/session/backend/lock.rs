//! A session lock as a value. A backend's `lock_and_read` returns a
//! [`SessionLock`]: the guard of a held lock that carries what may be done
//! while holding it — write (a write chain's writes, fenced where the
//! backend can), destroy, save-and-release in one step, release — and
//! releases the lock in the background if it is dropped without that (a
//! cancelled request), so a lock never outlives its expiry. Each backend's
//! lock knows its own backend: Redis fences writes with the lock's token,
//! SQL writes over the lock's own connection; a decorator (migrating.rs)
//! wraps the lock it is given and must forward every method, because none
//! has a default.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::session::backend::{SessionHandler, warn_release_failed};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

/// What a held lock can do; implemented by each backend's lock (and by
/// what a Redis read-only read holds: not a lock, but the expiry it
/// restarted, which `release` gives back; redis/touched_read.rs). `id` is
/// the locked session or, after a regenerate, the id that replaces it (its
/// writes must go where the lock's own do: on SQLite any other connection
/// would wait for the lock's transaction).
#[async_trait]
pub trait HeldLock: Send + Sync + 'static {
    /// Stores `data` while the lock is held. Where the backend can, only
    /// while the lock is still this holder's (a fenced write, as Redis
    /// does): a write that arrives after the lock moved on stores nothing
    /// and fails.
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError>;

    /// Deletes session `id` while the lock is held.
    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError>;

    /// Stores `data` (or, for `None`, restarts the expiry), then releases
    /// the lock; in one round trip where the backend can. The lock is
    /// released even when saving fails.
    async fn save_and_release(
        self: Arc<Self>,
        id: &SessionId,
        data: Option<Bytes>,
    ) -> Result<(), SessionError>;

    /// Gives the lock up. Only the holder's own lock is released (a lock
    /// that expired and was taken by someone else is left alone).
    async fn release(self: Arc<Self>) -> Result<(), SessionError>;

    /// Whether a write chain's last write (which releases the lock) may go
    /// out while its previous write is unanswered: true where both are
    /// fenced, so that whichever arrives late stores nothing (write_chain.rs).
    fn sends_last_write_behind(&self) -> bool;
}

/// A session lock as the runtime holds it, or no lock (a backend or
/// configuration without locking: then writes go to the store as they
/// would without a lock). Released explicitly at commit; if dropped
/// without that, released in a background task.
#[must_use = "a lock must be released"]
pub struct SessionLock {
    held: Option<Arc<dyn HeldLock>>,
}

impl SessionLock {
    /// No lock.
    pub fn none() -> Self {
        Self { held: None }
    }

    /// A lock a backend has just taken.
    pub fn held(lock: Arc<dyn HeldLock>) -> Self {
        Self { held: Some(lock) }
    }

    /// Whether something of the backend's is held: a lock (or, after a
    /// Redis read-only read, the expiry it restarted).
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// Drops the guard without releasing: for a backend that knows the
    /// lock was never taken (its try failed before reaching the server).
    pub fn disarm(mut self) {
        self.held = None;
    }

    /// Stores `data` under `id` through the lock ([`HeldLock::write`]), or
    /// with `store`'s plain write when no lock is held.
    pub async fn write<S: SessionHandler + ?Sized>(
        &self,
        store: &S,
        id: &SessionId,
        data: Bytes,
    ) -> Result<(), SessionError> {
        match &self.held {
            Some(lock) => lock.write(id, data).await,
            None => store.write(id, data).await,
        }
    }

    /// Deletes `id` through the lock ([`HeldLock::destroy`]), or with
    /// `store` when no lock is held.
    pub async fn destroy<S: SessionHandler + ?Sized>(
        &self,
        store: &S,
        id: &SessionId,
    ) -> Result<(), SessionError> {
        match &self.held {
            Some(lock) => lock.destroy(id).await,
            None => store.destroy(id).await,
        }
    }

    /// Stores `data` (or restarts the expiry for `None`) and releases the
    /// lock ([`HeldLock::save_and_release`]); with no lock held, `store`'s
    /// plain write or touch.
    pub async fn save_and_release<S: SessionHandler + ?Sized>(
        mut self,
        store: &S,
        id: &SessionId,
        data: Option<Bytes>,
    ) -> Result<(), SessionError> {
        match self.held.take() {
            Some(lock) => lock.save_and_release(id, data).await,
            None => write_or_touch(store, id, data).await,
        }
    }

    /// Releases the lock now, rather than in a background task on drop; no
    /// lock releases nothing.
    pub async fn release(mut self) -> Result<(), SessionError> {
        match self.held.take() {
            Some(lock) => lock.release().await,
            None => Ok(()),
        }
    }

    /// See [`HeldLock::sends_last_write_behind`]; false without a lock.
    pub fn sends_last_write_behind(&self) -> bool {
        self.held
            .as_ref()
            .is_some_and(|lock| lock.sends_last_write_behind())
    }

    /// The held lock out of its guard, unreleased: for a decorator that
    /// wraps it in a lock of its own (as migrating.rs does), whose guard
    /// then releases it.
    pub fn into_held(mut self) -> Option<Arc<dyn HeldLock>> {
        self.held.take()
    }

    /// The held lock itself, for writes made while the guard stays where it
    /// is (a write chain writes from its own task while its queue keeps the
    /// guard). Dropping the returned handle releases nothing.
    pub(crate) fn shared(&self) -> Option<Arc<dyn HeldLock>> {
        self.held.clone()
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(lock) = self.held.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(error) = lock.release().await {
                    warn_release_failed(None, &error);
                }
            });
        }
    }
}

/// Stores `data` with `store`'s plain write, or for `None` only restarts
/// the expiry: a save where no lock has a better way.
pub(crate) async fn write_or_touch<S: SessionHandler + ?Sized>(
    store: &S,
    id: &SessionId,
    data: Option<Bytes>,
) -> Result<(), SessionError> {
    match data {
        Some(data) => store.write(id, data).await,
        None => store.touch(id).await,
    }
}

/// The releasing half of a lock whose holder's writes need nothing of it
/// (files: flock; memcached: a token key), made a [`HeldLock`] by
/// [`WritesThroughStore`].
#[async_trait]
pub(crate) trait Release: Send + Sync + 'static {
    /// Gives the lock up (see [`HeldLock::release`]).
    async fn release(self: Arc<Self>) -> Result<(), SessionError>;
}

/// A lock whose writes, destroys and touches go to its store as they
/// would without it, then release it: the backends whose lock does not
/// fence or carry writes.
pub(crate) struct WritesThroughStore<S, L> {
    /// The backend that took the lock.
    pub(crate) store: Arc<S>,
    /// The lock itself.
    pub(crate) lock: Arc<L>,
}

impl<S, L> WritesThroughStore<S, L>
where
    S: SessionHandler,
    L: Release,
{
    /// `lock`, taken by `store`, as the runtime holds it.
    pub(crate) fn guard(store: Arc<S>, lock: L) -> SessionLock {
        SessionLock::held(Arc::new(Self {
            store,
            lock: Arc::new(lock),
        }))
    }
}

#[async_trait]
impl<S, L> HeldLock for WritesThroughStore<S, L>
where
    S: SessionHandler,
    L: Release,
{
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.store.write(id, data).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.store.destroy(id).await
    }

    async fn save_and_release(
        self: Arc<Self>,
        id: &SessionId,
        data: Option<Bytes>,
    ) -> Result<(), SessionError> {
        let saved = write_or_touch(&*self.store, id, data).await;
        if let Err(error) = self.lock.clone().release().await {
            warn_release_failed(Some(id), &error);
        }
        saved
    }

    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        self.lock.clone().release().await
    }

    fn sends_last_write_behind(&self) -> bool {
        false
    }
}
