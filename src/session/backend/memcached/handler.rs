//! The memcached session backend itself: [`MemcachedSessionHandler`] and
//! what each request-path call sends; how sessions and locks are stored is
//! in the module's documentation (`mod.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::session::backend::backoff::Backoff;
use crate::session::backend::dsn::SessionDsn;
use crate::session::backend::lock::WritesThroughStore;
use crate::session::backend::token_lock::{LockSettings, new_token};
use crate::session::backend::{
    DEFAULT_MAX_SESSION_BYTES, LIST_PAGE_SIZE, LiveSession, LockedRead, SessionAdmin,
    SessionHandler, SessionLock, SessionPage, Stored, Unreadable, read_without_lock,
};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

use super::client::{Command, Failure, Reply, Server};
use super::ketama::Continuum;
use super::lock::MemcachedLock;

pub(super) const BACKEND: &str = "memcached";

/// memcached reads an exptime over 30 days as a unix time, not a number
/// of seconds from now.
const RELATIVE_EXPTIME_MAX: u64 = 30 * 24 * 60 * 60;

/// How often, and how far apart, a listing asks again while another key
/// dump keeps memcached's crawler busy: 100 × 50 ms, five seconds, enough
/// for a dump of some hundred thousand keys.
const DUMP_BUSY_TRIES: u32 = 100;
const DUMP_BUSY_PAUSE: Duration = Duration::from_millis(50);

/// The memcached session backend.
pub struct MemcachedSessionHandler {
    /// The servers, in DSN order, shared with the locks handed out.
    servers: Vec<Arc<Server>>,
    /// Which server holds which key.
    ring: Continuum,
    /// Prepended to ids to make keys (`sess_` by default).
    prefix: String,
    /// Between the prefix and the id in lock keys (`lock.`).
    lock_prefix: String,
    /// `session.gc_maxlifetime`.
    ttl: Duration,
    /// Locking settings; `None` when the DSN says `lock=off`.
    lock: Option<LockSettings>,
    /// `session.max_size`: a larger stored value is reported, never kept.
    max_size: u64,
}

/// Setting up the memcached backend failed (before any connection).
#[derive(Debug, thiserror::Error)]
pub enum MemcachedSetupError {
    /// The handler was asked to serve a DSN for another backend.
    #[error("SESSION_DSN `{dsn}` does not name memcached servers")]
    NotMemcached {
        /// The DSN, password masked.
        dsn: String,
    },
}

impl MemcachedSessionHandler {
    /// A handler for the servers `dsn` names, whose sessions live `ttl`
    /// (`session.gc_maxlifetime`). Does not connect: the first command does.
    pub fn new(dsn: &SessionDsn, ttl: Duration) -> Result<Self, MemcachedSetupError> {
        let Some(memcached) = dsn.memcached() else {
            return Err(MemcachedSetupError::NotMemcached {
                dsn: dsn.redacted(),
            });
        };
        let options = &memcached.options;
        Ok(Self {
            servers: memcached
                .servers
                .iter()
                .map(|(host, port)| {
                    Arc::new(Server::new(
                        host,
                        *port,
                        options.timeout,
                        options.connect_timeout,
                    ))
                })
                .collect(),
            ring: Continuum::new(&memcached.servers),
            prefix: options.prefix.clone(),
            lock_prefix: options.lock_prefix.clone(),
            ttl,
            lock: options.lock.then_some(LockSettings {
                ttl: options.lock_ttl,
                wait: options.lock_wait,
            }),
            max_size: DEFAULT_MAX_SESSION_BYTES,
        })
    }

    /// The same handler, leaving stored values over `max_size` bytes
    /// unread (`session.max_size`).
    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = max_size;
        self
    }

    /// The session's key and the server it lives on.
    fn session_key(&self, id: &SessionId) -> (&Arc<Server>, String) {
        let server = &self.servers[self.ring.server_for(id.as_str())];
        (server, format!("{}{}", self.prefix, id.as_str()))
    }

    /// The lock's key and the server it lives on (placed by its own name,
    /// as PHP places `lock.{id}`).
    fn lock_key(&self, id: &SessionId) -> (&Arc<Server>, String) {
        let name = format!("{}{}", self.lock_prefix, id.as_str());
        let server = &self.servers[self.ring.server_for(&name)];
        (server, format!("{}{name}", self.prefix))
    }

    /// Sends `command` to `server`, turning failures into session errors.
    async fn call(
        &self,
        server: &Server,
        operation: &'static str,
        command: Command<'_>,
    ) -> Result<Reply, SessionError> {
        server
            .call(&command)
            .await
            .map_err(|failure| failure_to_error(operation, failure))
    }

    /// Stores `data` under session `id`, expiring after `lifetime`.
    async fn store(
        &self,
        id: &SessionId,
        data: &[u8],
        lifetime: Duration,
    ) -> Result<(), SessionError> {
        let (server, key) = self.session_key(id);
        let command = Command::Set {
            key: &key,
            data,
            exptime: exptime(lifetime),
            only_if_absent: false,
        };
        match self.call(server, "write", command).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected("write", &other)),
        }
    }
}

impl MemcachedSessionHandler {
    /// The lock loop behind `lock_and_read`: takes the lock of session `id`
    /// (none with `lock=off`), trying until `wait` is over, and, when the
    /// lock and the session share a server, reads the session in the same
    /// round trip; `None` when the caller must still read.
    async fn acquire(
        self: &Arc<Self>,
        id: &SessionId,
        wait: Duration,
    ) -> Result<(SessionLock, Option<Stored>), SessionError> {
        let Some(settings) = self.lock else {
            return Ok((SessionLock::none(), None));
        };
        let (server, lock_key) = self.lock_key(id);
        let (session_server, key) = self.session_key(id);
        let read_along = Arc::ptr_eq(server, session_server);
        let started = Instant::now();
        let held = MemcachedLock {
            server: server.clone(),
            key: lock_key,
            token: new_token(),
            expires_at: started + settings.ttl,
        };
        let mut backoff = Backoff::new();
        loop {
            let command = if read_along {
                Command::LockAndRead {
                    lock_key: &held.key,
                    token: &held.token,
                    exptime: exptime(settings.ttl),
                    key: &key,
                    max: self.max_size,
                }
            } else {
                Command::Set {
                    key: &held.key,
                    data: held.token.as_bytes(),
                    exptime: exptime(settings.ttl),
                    only_if_absent: true,
                }
            };
            let outcome = match self.call(server, "lock", command).await {
                Ok(Reply::Done) => Ok(Some(None)),
                Ok(Reply::Locked(read)) => self.stored_of("lock", *read).map(|s| Some(Some(s))),
                Ok(Reply::NotDone | Reply::NotLocked) => Ok(None),
                Ok(other) => Err(unexpected("lock", &other)),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(Some(stored)) => {
                    return Ok((WritesThroughStore::guard(self.clone(), held), stored));
                }
                Ok(None) => {}
                Err(error) => {
                    // The add may have been stored all the same (a timeout
                    // after memcached got it): do not leave a lock nobody
                    // knows they hold.
                    drop(WritesThroughStore::guard(self.clone(), held));
                    return Err(error);
                }
            }
            let waited = started.elapsed();
            if waited >= wait {
                return Err(SessionError::LockTimeout {
                    id_tag: id.log_tag(),
                    waited,
                });
            }
            backoff.sleep(wait - waited).await;
        }
    }

    /// What the reply to a read says is stored.
    fn stored_of(&self, operation: &'static str, reply: Reply) -> Result<Stored, SessionError> {
        match reply {
            Reply::Value(data) => Ok(Stored::Data(data)),
            Reply::NotDone => Ok(Stored::Missing),
            Reply::TooLarge(size) => Ok(Stored::Unreadable(Unreadable::TooLarge {
                size,
                max: self.max_size,
            })),
            other => Err(unexpected(operation, &other)),
        }
    }
}

impl std::fmt::Debug for MemcachedSessionHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<&str> = self.servers.iter().map(|s| s.address.as_str()).collect();
        f.debug_struct("MemcachedSessionHandler")
            .field("servers", &servers)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionHandler for MemcachedSessionHandler {
    fn name(&self) -> &'static str {
        BACKEND
    }

    /// One round trip when the lock and the session live on the same
    /// server (always, with one server): the `add` and the read go out
    /// together. While another request holds the lock, it is tried again
    /// (see `acquire`).
    async fn lock_and_read(self: Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        let (lock, stored) = self.acquire(id, wait).await?;
        let stored = match stored {
            Some(stored) => stored,
            None => match self.read(id).await {
                Ok(stored) => stored,
                Err(error) => {
                    let _ = lock.release().await;
                    return Err(error);
                }
            },
        };
        Ok((lock, stored))
    }

    /// memcached replaces a value whole: the read needs no lock.
    async fn read_for_read_only(self: Arc<Self>, id: &SessionId) -> LockedRead {
        read_without_lock(&*self, id).await
    }

    /// `mg key s v`: a value over `session.max_size` is reported by its
    /// size and its bytes are thrown away as they arrive.
    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        let (server, key) = self.session_key(id);
        let command = Command::Get {
            key: &key,
            max: self.max_size,
        };
        let reply = self.call(server, "read", command).await?;
        self.stored_of("read", reply)
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.store(id, &data, self.ttl).await
    }

    async fn touch(&self, id: &SessionId) -> Result<(), SessionError> {
        let (server, key) = self.session_key(id);
        let command = Command::Probe {
            key: &key,
            exptime: Some(exptime(self.ttl)),
        };
        // NotDone when the session is gone: nothing to keep alive, not an error.
        match self.call(server, "touch", command).await? {
            Reply::Done | Reply::NotDone => Ok(()),
            other => Err(unexpected("touch", &other)),
        }
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        let (server, key) = self.session_key(id);
        let command = Command::Delete {
            key: &key,
            cas: None,
        };
        match self.call(server, "destroy", command).await? {
            Reply::Done | Reply::NotDone => Ok(()),
            other => Err(unexpected("destroy", &other)),
        }
    }

    /// memcached expires sessions itself.
    async fn gc(&self) -> Result<u64, SessionError> {
        Ok(0)
    }

    /// `mn` to every server: each holds part of the sessions.
    async fn ping(&self) -> Result<(), SessionError> {
        for server in &self.servers {
            self.call(server, "ping", Command::NoOp).await?;
        }
        Ok(())
    }

    fn uses_locking(&self) -> bool {
        self.lock.is_some()
    }

    fn lock_wait(&self) -> Duration {
        LockSettings::wait_of(self.lock)
    }

    fn lock_expiry(&self) -> Option<Duration> {
        self.lock.map(|settings| settings.ttl)
    }
}

#[async_trait]
impl SessionAdmin for MemcachedSessionHandler {
    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError> {
        let (server, key) = self.session_key(id);
        let command = Command::Probe {
            key: &key,
            exptime: None,
        };
        match self.call(server, "exists", command).await? {
            Reply::Done => Ok(true),
            Reply::NotDone => Ok(false),
            other => Err(unexpected("exists", &other)),
        }
    }

    async fn store_copy(&self, live: &LiveSession, data: Bytes) -> Result<(), SessionError> {
        self.store(&live.id, &data, live.remaining).await
    }

    /// Every server's keys from `lru_crawler metadump hash`, the sessions
    /// among them in the order of their ids; the cursor is the last id of
    /// the page before. Each page dumps every server again (memcached has
    /// no cursor of its own) and keeps only the page's worth of keys.
    async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError> {
        let accept = |key: &str| {
            key.strip_prefix(self.prefix.as_str()).is_some_and(|rest| {
                !rest.starts_with(self.lock_prefix.as_str())
                    && SessionId::from_store(rest).is_some()
            })
        };
        let after = cursor.map(|id| format!("{}{id}", self.prefix));
        let mut keys = Vec::new();
        let mut more = false;
        for server in &self.servers {
            let mut tries = 0;
            let reply = loop {
                let dump = Command::Dump {
                    accept: &accept,
                    after: after.as_deref(),
                    keep: LIST_PAGE_SIZE,
                };
                match server.call(&dump).await {
                    // memcached runs one dump at a time; another listing
                    // (or an operator's) has the crawler: wait for it.
                    Err(Failure::Failed(message))
                        if message.contains("BUSY") && tries < DUMP_BUSY_TRIES =>
                    {
                        tries += 1;
                        tokio::time::sleep(DUMP_BUSY_PAUSE).await;
                    }
                    other => break other.map_err(|failure| failure_to_error("list", failure))?,
                }
            };
            match reply {
                Reply::Keys(found, past_the_page) => {
                    keys.extend(found);
                    more |= past_the_page;
                }
                other => return Err(unexpected("list", &other)),
            }
        }
        keys.sort();
        if keys.len() > LIST_PAGE_SIZE {
            keys.truncate(LIST_PAGE_SIZE);
            more = true;
        }
        let now = unix_now();
        let next = more
            .then(|| keys.last())
            .flatten()
            .map(|(key, _)| key[self.prefix.len()..].to_string());
        let sessions = keys
            .into_iter()
            .filter_map(|(key, exp)| {
                let remaining = match u64::try_from(exp) {
                    // -1: no expiry (not one nene wrote).
                    Err(_) => self.ttl,
                    // The second `exptime` adds is taken off again: what is
                    // reported is what the session has left at least, and a
                    // copy written with it ends as late as the original.
                    Ok(exp) => Duration::from_secs(exp.checked_sub(now + 1).filter(|s| *s > 0)?),
                };
                Some(LiveSession {
                    id: SessionId::from_store(&key[self.prefix.len()..])?,
                    remaining,
                })
            })
            .collect();
        Ok(SessionPage { sessions, next })
    }
}

/// The exptime memcached needs for an item to live at least `lifetime`.
/// One second more than asked: memcached's clock ticks in whole seconds, so
/// an item given `T2` may expire 1.01 s later; with `T3` it lives 2 to 3 s.
/// Past 30 days memcached reads the number as a unix time, so it is sent
/// as one.
fn exptime(lifetime: Duration) -> i64 {
    let seconds = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0) + 1;
    let exptime = if seconds <= RELATIVE_EXPTIME_MAX {
        seconds
    } else {
        unix_now() + seconds
    };
    i64::try_from(exptime).unwrap_or(i64::MAX)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The session error of a failed command.
pub(super) fn failure_to_error(operation: &'static str, failure: Failure) -> SessionError {
    match failure {
        Failure::TimedOut(after) => SessionError::Timeout {
            backend: BACKEND,
            operation,
            after,
        },
        Failure::Failed(message) => {
            let hint = if message.contains("too large") {
                " (memcached's item size limit, its -I option, must exceed session.max_size)"
            } else {
                ""
            };
            SessionError::Backend {
                backend: BACKEND,
                operation,
                message: format!("{message}{hint}"),
            }
        }
    }
}

pub(super) fn unexpected(operation: &'static str, reply: &Reply) -> SessionError {
    let reply = match reply {
        Reply::Value(_) | Reply::ValueWithCas(..) => "a value",
        Reply::TooLarge(_) => "a size",
        Reply::Done => "HD",
        Reply::NotDone => "a refusal",
        Reply::Keys(..) => "a key dump",
        Reply::Locked(_) | Reply::NotLocked => "a lock",
    };
    SessionError::Backend {
        backend: BACKEND,
        operation,
        message: format!("unexpected reply: {reply}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptimes_over_30_days_are_unix_times() {
        assert_eq!(exptime(Duration::from_secs(2)), 3);
        assert_eq!(exptime(Duration::from_millis(1500)), 3);
        assert_eq!(exptime(Duration::ZERO), 1);
        let thirty_days = Duration::from_secs(RELATIVE_EXPTIME_MAX - 1);
        assert_eq!(exptime(thirty_days), 2_592_000);
        let forty_days = exptime(Duration::from_secs(40 * 24 * 60 * 60));
        let expected = i64::try_from(unix_now() + 40 * 24 * 60 * 60 + 1).unwrap();
        assert!((forty_days - expected).abs() <= 1, "{forty_days}");
    }
}
