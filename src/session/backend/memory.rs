//! Sessions in this process's memory (`SESSION_DSN=memory://`): for an
//! application's own tests and for trying nene without a server, as
//! Symfony's `MockArraySessionStorage` and tower-sessions' `MemoryStore`
//! are. Nothing survives a restart and nothing is shared with another
//! instance, so it is no backend for production behind a load balancer.
//!
//! It keeps the whole contract all the same: expiry (`session.gc_maxlifetime`,
//! swept by gc like files), `session.max_size`, and a lock per session that
//! a second holder waits for within `lock_wait`, so the contract suite runs
//! over it with no service at all. Like Redis without `maxmemory`, it
//! grows with the sessions it holds until they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use crate::session::SessionSettings;
use crate::session::backend::dsn::{DsnError, Parser, SessionBackend, SessionDsn};
use crate::session::backend::factory::{BackendKind, Opened};
use crate::session::backend::lock::{Release, WritesThroughStore};
use crate::session::backend::{
    DEFAULT_LOCK_WAIT, DEFAULT_MAX_SESSION_BYTES, LIST_PAGE_SIZE, LiveSession, LockedRead,
    SessionAdmin, SessionHandler, SessionLock, SessionPage, Stored, Unreadable,
};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

/// The factory's row for `memory://`.
pub(crate) const KIND: BackendKind = BackendKind {
    schemes: &["memory"],
    forms: &["memory:// (this process's memory, for tests)"],
    parse,
    open,
};

/// `memory://` with nothing after it.
fn parse(parser: &Parser<'_>, _scheme: &str, rest: &str) -> Result<SessionBackend, DsnError> {
    if !rest.is_empty() {
        return Err(parser
            .malformed("`memory://` takes nothing after it: the sessions live in this process"));
    }
    Ok(SessionBackend::Memory)
}

/// An empty store in this process.
fn open(_parsed: &SessionDsn, settings: &SessionSettings) -> Opened {
    Ok(Arc::new(
        MemorySessionHandler::new(settings.lifetime()).with_max_size(settings.max_size),
    ))
}

/// The sessions and their locks, shared by every handler made from one.
#[derive(Default)]
struct Store {
    sessions: Mutex<HashMap<String, Entry>>,
    /// The lock of each session someone holds or waits for; an entry goes
    /// when its last holder releases it.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct Entry {
    data: Bytes,
    expires_at: Instant,
}

/// The in-memory session backend.
pub struct MemorySessionHandler {
    store: Arc<Store>,
    ttl: Duration,
    lock_wait: Duration,
    max_size: u64,
}

impl MemorySessionHandler {
    /// An empty store whose sessions live `ttl` (`session.gc_maxlifetime`).
    pub fn new(ttl: Duration) -> Self {
        Self {
            store: Arc::default(),
            ttl,
            lock_wait: DEFAULT_LOCK_WAIT,
            max_size: DEFAULT_MAX_SESSION_BYTES,
        }
    }

    /// Another handler on the same sessions and locks (as a second instance
    /// on the same Redis would be), with this one's settings.
    pub fn on_the_same_store(&self) -> Self {
        Self {
            store: self.store.clone(),
            ..*self
        }
    }

    /// The same handler, leaving stored values over `max_size` bytes
    /// unread (`session.max_size`).
    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = max_size;
        self
    }

    /// The same handler, waiting at most `lock_wait` for a session's lock.
    pub fn with_lock_wait(mut self, lock_wait: Duration) -> Self {
        self.lock_wait = lock_wait;
        self
    }

    /// The same handler, its sessions living `ttl`.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.store
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn store_for(&self, id: &SessionId, data: Bytes, lifetime: Duration) {
        let entry = Entry {
            data,
            expires_at: Instant::now() + lifetime,
        };
        self.sessions().insert(id.as_str().to_string(), entry);
    }

    /// Takes the lock of session `id`: one try, then waits at most `wait`.
    async fn take_lock(
        &self,
        id: &SessionId,
        wait: Duration,
    ) -> Result<OwnedMutexGuard<()>, SessionError> {
        let mutex = self
            .store
            .locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(id.as_str().to_string())
            .or_default()
            .clone();
        if let Ok(guard) = mutex.clone().try_lock_owned() {
            return Ok(guard);
        }
        let started = Instant::now();
        let taken = tokio::time::timeout(wait, mutex.lock_owned()).await;
        let guard = taken.map_err(|_| SessionError::LockTimeout {
            id_tag: id.log_tag(),
            waited: started.elapsed(),
        });
        if guard.is_err() {
            forget_unused_lock(&self.store, id.as_str());
        }
        guard
    }
}

/// Removes the lock of session `id` from the map when nobody holds or
/// waits for it (only the map's own reference is left), so the map holds
/// no more locks than there are requests.
fn forget_unused_lock(store: &Store, id: &str) {
    let mut locks = store
        .locks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if locks
        .get(id)
        .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
    {
        locks.remove(id);
    }
}

/// A held session lock: the guard of its mutex.
struct MemoryLock {
    store: Arc<Store>,
    id: String,
    guard: Mutex<Option<OwnedMutexGuard<()>>>,
}

#[async_trait]
impl Release for MemoryLock {
    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        let guard = self
            .guard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        drop(guard);
        forget_unused_lock(&self.store, &self.id);
        Ok(())
    }
}

#[async_trait]
impl SessionHandler for MemorySessionHandler {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn lock_and_read(self: Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        let guard = self.take_lock(id, wait).await?;
        let lock = MemoryLock {
            store: self.store.clone(),
            id: id.as_str().to_string(),
            guard: Mutex::new(Some(guard)),
        };
        let stored = self.read(id).await?;
        Ok((WritesThroughStore::guard(self, lock), stored))
    }

    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        let sessions = self.sessions();
        let Some(entry) = sessions
            .get(id.as_str())
            .filter(|entry| entry.expires_at > Instant::now())
        else {
            return Ok(Stored::Missing);
        };
        let size = entry.data.len() as u64;
        if size > self.max_size {
            return Ok(Stored::Unreadable(Unreadable::TooLarge {
                size,
                max: self.max_size,
            }));
        }
        Ok(Stored::Data(entry.data.clone()))
    }

    /// A value is replaced whole under the map's lock: never seen half-written.
    async fn read_for_read_only(self: Arc<Self>, id: &SessionId) -> LockedRead {
        Ok((SessionLock::none(), self.read(id).await?))
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.store_for(id, data, self.ttl);
        Ok(())
    }

    async fn touch(&self, id: &SessionId) -> Result<(), SessionError> {
        let now = Instant::now();
        if let Some(entry) = self.sessions().get_mut(id.as_str())
            && entry.expires_at > now
        {
            entry.expires_at = now + self.ttl;
        }
        Ok(())
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.sessions().remove(id.as_str());
        Ok(())
    }

    async fn gc(&self) -> Result<u64, SessionError> {
        let now = Instant::now();
        let mut sessions = self.sessions();
        let before = sessions.len();
        sessions.retain(|_, entry| entry.expires_at > now);
        Ok((before - sessions.len()) as u64)
    }

    /// Memory is always there.
    async fn ping(&self) -> Result<(), SessionError> {
        Ok(())
    }

    fn uses_locking(&self) -> bool {
        true
    }

    fn lock_wait(&self) -> Duration {
        self.lock_wait
    }

    /// A lock ends with its holder (a dropped guard releases it).
    fn lock_expiry(&self) -> Option<Duration> {
        None
    }
}

#[async_trait]
impl SessionAdmin for MemorySessionHandler {
    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError> {
        Ok(self.read(id).await? != Stored::Missing)
    }

    async fn store_copy(&self, live: &LiveSession, data: Bytes) -> Result<(), SessionError> {
        self.store_for(&live.id, data, live.remaining);
        Ok(())
    }

    /// In the order of their ids; the cursor is the last id of the page before.
    async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError> {
        let now = Instant::now();
        let mut live: Vec<LiveSession> = self
            .sessions()
            .iter()
            .filter(|(id, entry)| {
                entry.expires_at > now && cursor.as_deref().is_none_or(|after| id.as_str() > after)
            })
            .filter_map(|(id, entry)| {
                Some(LiveSession {
                    id: SessionId::from_store(id)?,
                    remaining: entry.expires_at - now,
                })
            })
            .collect();
        live.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let next = (live.len() > LIST_PAGE_SIZE).then(|| {
            live.truncate(LIST_PAGE_SIZE);
            live.last().map(|last| last.id.as_str().to_string())
        });
        Ok(SessionPage {
            sessions: live,
            next: next.flatten(),
        })
    }
}
