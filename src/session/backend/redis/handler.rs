//! The Redis session backend itself: [`RedisSessionHandler`], its
//! connections (one per node, more for writes that wait for replicas), and
//! what each request-path call sends. The module's own documentation
//! (`mod.rs`) says how sessions and locks are stored and what happens when
//! Redis stalls or restarts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use tokio::time::Instant;

use super::dsn::RedisAddress;
use crate::session::backend::backoff::Backoff;
use crate::session::backend::dsn::SessionDsn;
use crate::session::backend::token_lock::{LockSettings, new_token};
use crate::session::backend::{
    DEFAULT_MAX_SESSION_BYTES, LiveSession, LockedRead, SessionAdmin, SessionHandler, SessionLock,
    SessionPage, Stored,
};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

use super::connection::{self, Request, SharedConnection, evalsha, max_reply_for, node_for};
use super::lock::RedisLock;
use super::release_notices::{ReleaseNotices, channel_of};
use super::scripts::{CHECKED_SAVE, LOCK_AND_READ, parse_lock_and_read, parse_read_and_touch};
use super::touched_read::TouchedRead;

pub(super) const BACKEND: &str = "redis";

/// Connections for writes with `wait`: each write waits a replica round trip
/// on its connection, so one connection serializes them; a few let writes of
/// different sessions wait at the same time, at the cost of a few idle
/// connections per instance.
const WAIT_CONNECTIONS: usize = 8;

/// The key naming the waiters of the lock `lock_key` (scripts.rs,
/// `RELEASE_SCRIPT`): `sess_{id}.lock.waiters`, in a cluster in the lock's
/// slot by its hash tag. Never listed as a session: `.` is no id character.
fn waiters_key(lock_key: &str) -> String {
    [lock_key, WAITERS_SUFFIX].concat()
}

/// What [`waiters_key`] appends to the lock's key.
const WAITERS_SUFFIX: &str = ".waiters";

/// The longest pause between tries while a release notice is awaited: the
/// notice normally ends the wait; this only bounds how late a waiter notices
/// a lock that expired or was released without a notice.
const LOCK_RETRY_MAX_NOTIFIED: Duration = Duration::from_millis(250);

/// The Redis session backend.
pub struct RedisSessionHandler {
    /// The connection, shared with the locks this handler hands out so that
    /// a lock can be released after the request that took it is gone.
    pub(super) redis: Arc<SharedConnection>,
    /// The connections session writes and destroys go over: `redis` itself,
    /// or with `wait` [`WAIT_CONNECTIONS`] others, because `WAIT` holds its
    /// connection until the replicas answer: locks and reads must not queue
    /// behind it, and writes of different sessions should not queue behind
    /// each other's waits. A session always uses the same one (its `WAIT`
    /// must follow its own write on the same connection).
    writes: Vec<Arc<SharedConnection>>,
    /// `wait` / `wait_timeout`: replicas that must acknowledge a write.
    wait: Option<(u32, Duration)>,
    /// Keys carry the id as a hash tag (Redis Cluster).
    pub(super) hash_tag: bool,
    /// Releases published by other instances, so a waiting request retries
    /// when the lock is free instead of polling.
    notices: ReleaseNotices,
    /// Prepended to ids to make keys (`sess_` by default).
    pub(super) prefix: String,
    /// `{prefix}released:`, the prefix of the channels lock releases are
    /// published on (release_notices.rs); empty in a cluster, where they
    /// are not published.
    channel_prefix: Arc<str>,
    /// Appended to the session key to name its lock (`.lock`, or `_LOCK`
    /// as phpredis names it).
    pub(super) lock_suffix: String,
    /// `session.gc_maxlifetime` in whole seconds: the `EX` of every write
    /// and the `EXPIRE` of every touch (Redis' smallest expiry is 1 s).
    pub(super) ttl_secs: u64,
    /// Locking settings; `None` when the DSN says `lock=off`.
    lock: Option<LockSettings>,
    /// `session.max_size`: a larger stored value is never sent to nene.
    max_size: u64,
}

/// Setting up the Redis backend failed (before any connection is attempted).
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// The handler was asked to serve a DSN for another backend (files).
    #[error("SESSION_DSN `{dsn}` does not name a Redis server")]
    NotRedis {
        /// The DSN, password masked.
        dsn: String,
    },
    /// The `tls_ca_file` option names a file that cannot be read.
    #[error("SESSION_DSN `{dsn}`: cannot read tls_ca_file {}: {source}", path.display())]
    CaFile {
        /// The DSN, password masked.
        dsn: String,
        /// The CA file as given in the DSN.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The redis crate refuses the connection settings (for example a CA file
    /// it cannot parse).
    #[error("SESSION_DSN `{dsn}`: the Redis client refused these settings: {message}")]
    Client {
        /// The DSN, password masked.
        dsn: String,
        /// The client's reason.
        message: String,
    },
}

impl RedisSessionHandler {
    /// A handler for the Redis server `dsn` names, whose sessions live `ttl`
    /// (`session.gc_maxlifetime`, rounded down to whole seconds, at least
    /// one). Does not connect: the first command does,
    /// so nene starts (and serves what needs no session) while Redis is down.
    pub fn new(dsn: &SessionDsn, ttl: Duration) -> Result<Self, RedisSetupError> {
        let Some(redis_dsn) = dsn.redis() else {
            return Err(RedisSetupError::NotRedis {
                dsn: dsn.redacted(),
            });
        };
        let options = &redis_dsn.options;
        let connection = |timeout: Duration| -> Result<Arc<SharedConnection>, RedisSetupError> {
            Ok(Arc::new(SharedConnection {
                node: node_for(redis_dsn, dsn, options.connect_timeout)?,
                opening: tokio::sync::Mutex::new(None),
                shared: Mutex::new(None),
                max_reply: AtomicU64::new(max_reply_for(DEFAULT_MAX_SESSION_BYTES)),
                timeouts_in_a_row: AtomicU32::new(0),
                timeout,
                connect_timeout: options.connect_timeout,
                target: redis_dsn.address.to_string(),
                password: redis_dsn.password().map(str::to_string),
            }))
        };
        let redis = connection(options.timeout)?;
        let wait =
            (options.wait_replicas > 0).then_some((options.wait_replicas, options.wait_timeout));
        let writes = match wait {
            // A write's bound covers its WAIT too, so that replicas that do
            // not answer are reported as such, not as a Redis timeout.
            Some((_, wait_timeout)) => (0..WAIT_CONNECTIONS)
                .map(|_| connection(options.timeout + wait_timeout))
                .collect::<Result<_, _>>()?,
            None => vec![redis.clone()],
        };
        let cluster = matches!(redis_dsn.address, RedisAddress::Cluster { .. });
        Ok(Self {
            redis,
            writes,
            wait,
            hash_tag: cluster,
            notices: ReleaseNotices::new(options.connect_timeout + options.timeout),
            prefix: options.prefix.clone(),
            channel_prefix: if cluster {
                Arc::from("")
            } else {
                Arc::from(format!("{}released:", options.prefix))
            },
            lock_suffix: options.lock_suffix.clone(),
            ttl_secs: ttl.as_secs().max(1),
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
        // Replies are bounded by it too (endpoint.rs); no connection is
        // open yet, so every one opens with the new bound.
        let max_reply = max_reply_for(max_size);
        for connection in std::iter::once(&self.redis).chain(&self.writes) {
            connection.max_reply.store(max_reply, Ordering::Relaxed);
        }
        self
    }

    /// `{prefix}{id}`; in a cluster `{prefix}{{id}}`, so that the session
    /// and its lock, which one script touches together, share a slot.
    pub(super) fn key(&self, id: &SessionId) -> String {
        self.key_with_room(id, 0)
    }

    /// [`Self::key`] with room for `extra` bytes more. Written by hand, not
    /// with `format!`: its first guess of the length is 0 for `"{}{}"`, so
    /// every key cost two allocations, and a session read makes three keys.
    fn key_with_room(&self, id: &SessionId, extra: usize) -> String {
        let id = id.as_str();
        let mut key = String::with_capacity(self.prefix.len() + id.len() + 2 + extra);
        key.push_str(&self.prefix);
        if self.hash_tag {
            key.push('{');
            key.push_str(id);
            key.push('}');
        } else {
            key.push_str(id);
        }
        key
    }

    fn lock_key(&self, id: &SessionId) -> String {
        let mut key = self.key_with_room(id, self.lock_suffix.len());
        key.push_str(&self.lock_suffix);
        key
    }

    /// Appends `WAIT n timeout` to a pipeline of writes, when `wait` is set;
    /// its reply is the pipeline's only one.
    pub(super) fn add_wait(&self, pipeline: &mut redis::Pipeline) {
        if let Some((replicas, timeout)) = self.wait {
            pipeline
                .cmd("WAIT")
                .arg(replicas)
                .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        }
    }

    /// The connection session `id`'s writes go over.
    fn writes_for(&self, id: &SessionId) -> &Arc<SharedConnection> {
        let hash = id.as_str().bytes().fold(0usize, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(usize::from(byte))
        });
        &self.writes[hash % self.writes.len()]
    }

    /// Sends a pipeline of writes of session `id` (ending with `WAIT` when
    /// set) and checks that enough replicas acknowledged them; returns the
    /// replies of the commands not ignored, WAIT's taken off. `script` is
    /// the one an `EVALSHA` in the pipeline runs (`Request::WithScript`).
    pub(super) async fn run_writes(
        &self,
        id: &SessionId,
        operation: &'static str,
        pipeline: &redis::Pipeline,
        script: Option<&redis::Script>,
        retry: bool,
    ) -> Result<Vec<i64>, connection::Failure> {
        let request = match script {
            Some(script) => Request::WithScript(pipeline, script),
            None => Request::Pipeline(pipeline),
        };
        let writes = self.writes_for(id);
        let mut replies: Vec<i64> = if retry {
            writes.run_reporting(operation, request).await?
        } else {
            writes.attempt(operation, &request).await?
        };
        let acknowledged = if self.wait.is_some() {
            replies.pop()
        } else {
            None
        };
        self.enough_replicas(operation, acknowledged)
            .map_err(|error| connection::Failure {
                error,
                dropped: false,
                may_have_applied: true,
            })?;
        Ok(replies)
    }

    /// `Ok` unless `wait` is set and fewer replicas than it asks for
    /// acknowledged. The write stays on the primary either way (Redis cannot
    /// take it back); the request is answered 503 because the write is not
    /// as safe as the operator asked for: a failover now may lose it.
    fn enough_replicas(
        &self,
        operation: &'static str,
        acknowledged: Option<i64>,
    ) -> Result<(), SessionError> {
        let Some((replicas, timeout)) = self.wait else {
            return Ok(());
        };
        let acknowledged = acknowledged.unwrap_or(0);
        if acknowledged >= i64::from(replicas) {
            return Ok(());
        }
        Err(self.redis.failed(
            operation,
            &format!(
                "stored on the primary, but {acknowledged} of the {replicas} replicas `wait` asks for acknowledged it within {timeout:?}"
            ),
        ))
    }

    /// The lock loop behind [`SessionHandler::lock_and_read`]: tries until
    /// `wait` is over.
    async fn acquire(self: &Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        let Some(settings) = self.lock else {
            return Ok((SessionLock::none(), self.read(id).await?));
        };
        let lock_key = self.lock_key(id);
        let held = Arc::new(RedisLock {
            store: self.clone(),
            waiters_key: waiters_key(&lock_key),
            session_key: self.key(id),
            key: lock_key,
            token: new_token(),
            channel_prefix: self.channel_prefix.clone(),
            ttl_ms: u64::try_from(settings.ttl.as_millis()).unwrap_or(u64::MAX),
            registered: AtomicBool::new(false),
            expires_at: Instant::now() + settings.ttl,
        });
        // `LOCK_AND_READ_SCRIPT` (scripts.rs); with `register`, a busy lock
        // makes this request a waiter the holder hands the lock to directly.
        let keys = [
            held.session_key.as_str(),
            held.key.as_str(),
            held.waiters_key.as_str(),
        ];
        let (token, ttl_ms) = (&held.token, held.ttl_ms);
        let try_lock = |register: Option<Duration>| {
            let mut command = evalsha(&LOCK_AND_READ, &keys);
            command
                .arg(token)
                .arg(ttl_ms)
                .arg(self.max_size)
                .arg("1")
                .arg(register.map_or(String::new(), |left| {
                    // At least 1 ms: 0 would be a waiter given up already.
                    left.as_millis().max(1).to_string()
                }));
            command
        };
        // A SHA-1, worked out only when the lock is contended.
        let channel = || channel_of(&self.channel_prefix, keys[1]);
        // From here the lock is released (and this request withdrawn from
        // the waiters) in the background if the request ends without it:
        // a try may have taken it unseen, or a holder may hand it over.
        let lock = SessionLock::held(held.clone());
        let mut registered = false;

        let started = Instant::now();
        let mut backoff = Backoff::new();
        // A session contended lately has its channel subscribed already:
        // each try below is then armed to hear a release that comes while
        // it is on its way.
        let mut watch = self.notices.existing(channel, token);
        loop {
            let release = watch.as_ref().map(|watch| watch.armed());
            // Only a request that hears releases can be handed the lock.
            let register = watch
                .as_ref()
                .map(|_| wait.saturating_sub(started.elapsed()));
            let command = try_lock(register);
            if register.is_some() && !registered {
                // From now on its release also withdraws it from the waiters.
                registered = true;
                held.registered.store(true, Ordering::Relaxed);
            }
            let reply = self
                .redis
                .run_reporting::<Value>("lock", Request::Script(&command, &LOCK_AND_READ))
                .await;
            let parsed = match reply {
                Ok(reply) => parse_lock_and_read(reply, self.max_size)
                    .map_err(|message| self.redis.failed("lock", &message)),
                Err(failure) => {
                    if !failure.may_have_applied && !registered {
                        // Nothing to release: the lock was never ours.
                        lock.disarm();
                    }
                    return Err(failure.error);
                }
            };
            match parsed {
                Ok(Some(stored)) => return Ok((lock, stored)),
                Ok(None) => {}
                Err(error) => return Err(error),
            }
            if watch.is_none() {
                watch = self
                    .notices
                    .watch(&self.redis.node, &channel(), token)
                    .await;
                if watch.is_some() {
                    // A release between the try above and the subscription
                    // sent its notice to nobody: try once more now, armed
                    // and registered as a waiter.
                    continue;
                }
            }
            let waited = started.elapsed();
            if waited >= wait {
                if !registered {
                    // No try took it, and no holder can hand it over.
                    lock.disarm();
                }
                return Err(SessionError::LockTimeout {
                    id_tag: id.log_tag(),
                    waited,
                });
            }
            let remaining = wait - waited;
            match release {
                Some(release) => {
                    let _ =
                        tokio::time::timeout(LOCK_RETRY_MAX_NOTIFIED.min(remaining), release).await;
                    // A release, or the lock handed to this request: the
                    // next try takes it (it holds this request's token
                    // then, and the try gives it the full TTL).
                }
                None => backoff.sleep(remaining).await,
            }
        }
    }
}

impl RedisSessionHandler {
    /// `CHECKED_SAVE_SCRIPT` (scripts.rs): stores `data` (or touches, for
    /// `None`), and unlocks with `unlock`, only while the lock holds
    /// `token`. The writes of a write chain (`HeldLock::write`), and the
    /// retry of a request's save (`HeldLock::save_and_release`) after a dropped
    /// connection. With `retry`, sent once more on a new connection if the
    /// first one dropped under it (the script is safe to repeat).
    pub(super) async fn checked_save(
        &self,
        id: &SessionId,
        data: Option<&Bytes>,
        token: &str,
        unlock: bool,
        retry: bool,
    ) -> Result<(), SessionError> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("EVALSHA")
            .arg(CHECKED_SAVE.get_hash())
            .arg(2)
            .arg(self.key(id))
            .arg(self.lock_key(id))
            .arg(token)
            .arg(self.ttl_secs)
            .arg(if unlock { "1" } else { "0" })
            .arg(&*self.channel_prefix);
        if let Some(data) = data {
            pipeline.arg(data.as_ref());
        }
        // WAIT in the same pipeline as the write: WAIT counts the replicas
        // that have this connection's writes, and in a cluster the
        // pipeline goes where its first key's slot lives (alone, WAIT has
        // no key and would go to any node).
        self.add_wait(&mut pipeline);
        let replies = self
            .run_writes(id, "write", &pipeline, Some(&CHECKED_SAVE), retry)
            .await
            .map_err(|failure| failure.error)?;
        if replies.first() == Some(&1) {
            return Ok(());
        }
        Err(self.lock_lost(id))
    }

    /// The error of a fenced write that found the session's lock held by
    /// another request (it expired, or an earlier attempt whose reply was
    /// lost released it and another request took it): nothing was stored.
    pub(super) fn lock_lost(&self, id: &SessionId) -> SessionError {
        self.redis.failed(
            "write",
            &format!(
                "the lock of session #{} had passed to another request before this write; this change was not stored",
                id.log_tag()
            ),
        )
    }

    /// `SET … EX` (and `WAIT` when set) for session `id`.
    fn set_pipeline(&self, id: &SessionId, data: &Bytes) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("SET")
            .arg(self.key(id))
            .arg(data.as_ref())
            .arg("EX")
            .arg(self.ttl_secs)
            .ignore();
        self.add_wait(&mut pipeline);
        pipeline
    }
}

impl RedisSessionHandler {
    /// `LOCK_AND_READ_SCRIPT` told only to read session `id`, restarting
    /// its expiry (`touch`, seconds) when it is a string nene may use.
    async fn read_script(&self, id: &SessionId, touch: Option<u64>) -> Result<Value, SessionError> {
        let lock_key = self.lock_key(id);
        let mut command = evalsha(
            &LOCK_AND_READ,
            &[&self.key(id), &lock_key, &waiters_key(&lock_key)],
        );
        command.arg("").arg(0).arg(self.max_size).arg("1").arg("");
        match touch {
            Some(secs) => command.arg(secs),
            None => command.arg(""),
        };
        self.redis
            .run::<Value>("read", Request::Script(&command, &LOCK_AND_READ))
            .await
    }
}

impl std::fmt::Debug for RedisSessionHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionHandler")
            .field("target", &self.redis.target)
            .field("prefix", &self.prefix)
            .field("ttl_secs", &self.ttl_secs)
            .field("lock", &self.lock)
            .field("timeout", &self.redis.timeout)
            .field("connect_timeout", &self.redis.connect_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionHandler for RedisSessionHandler {
    fn name(&self) -> &'static str {
        BACKEND
    }

    /// One round trip: `LOCK_AND_READ_SCRIPT` (scripts.rs) takes the lock
    /// and reads; while another request holds the lock, it is tried again
    /// (see `acquire`). With `lock=off` this is a plain read.
    async fn lock_and_read(self: Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        self.acquire(id, wait).await
    }

    /// `LOCK_AND_READ_SCRIPT` (scripts.rs) without the lock: only a string within
    /// `session.max_size` comes back.
    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        let reply = self.read_script(id, None).await?;
        match parse_lock_and_read(reply, self.max_size) {
            Ok(Some(stored)) => Ok(stored),
            Ok(None) => Err(self.redis.failed("read", "the lock script refused a read")),
            Err(message) => Err(self.redis.failed("read", &message)),
        }
    }

    /// A Redis value is replaced whole, so the read needs no lock; and it
    /// restarts the session's expiry in the same round trip
    /// (touched_read.rs), which the runtime gives back if the data turns
    /// out to be none of nene's.
    async fn read_for_read_only(self: Arc<Self>, id: &SessionId) -> LockedRead {
        let reply = self.read_script(id, Some(self.ttl_secs)).await?;
        let (stored, before_ms) = parse_read_and_touch(reply, self.max_size)
            .map_err(|message| self.redis.failed("read", &message))?;
        let touched = match (&stored, before_ms) {
            (Stored::Data(data), Some(before_ms)) => SessionLock::held(Arc::new(TouchedRead {
                store: self.clone(),
                id: id.clone(),
                data: data.clone(),
                before_ms,
                read_at: Instant::now(),
            })),
            _ => SessionLock::none(),
        };
        Ok((touched, stored))
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        let pipeline = self.set_pipeline(id, &data);
        self.run_writes(id, "write", &pipeline, None, true)
            .await
            .map(drop)
            .map_err(|failure| failure.error)
    }

    async fn touch(&self, id: &SessionId) -> Result<(), SessionError> {
        let mut expire = redis::cmd("EXPIRE");
        expire.arg(self.key(id)).arg(self.ttl_secs);
        // 0 when the session is gone: nothing to keep alive, not an error.
        self.redis
            .run::<i64>("touch", Request::Command(&expire))
            .await
            .map(drop)
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        // Waited for like a write: a logout a failover undid would be worse
        // than a lost change.
        let mut pipeline = redis::pipe();
        pipeline.cmd("DEL").arg(self.key(id)).ignore();
        self.add_wait(&mut pipeline);
        self.run_writes(id, "destroy", &pipeline, None, true)
            .await
            .map(drop)
            .map_err(|failure| failure.error)
    }

    /// Redis expires sessions itself.
    async fn gc(&self) -> Result<u64, SessionError> {
        Ok(0)
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

    async fn ping(&self) -> Result<(), SessionError> {
        self.redis
            .run::<String>("ping", Request::Command(&redis::cmd("PING")))
            .await
            .map(drop)
    }
}

#[async_trait]
impl SessionAdmin for RedisSessionHandler {
    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError> {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.key(id));
        let count: i64 = self.redis.run("exists", Request::Command(&exists)).await?;
        Ok(count > 0)
    }

    async fn store_copy(&self, live: &LiveSession, data: Bytes) -> Result<(), SessionError> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("SET")
            .arg(self.key(&live.id))
            .arg(data.as_ref())
            .arg("PX")
            .arg(u64::try_from(live.remaining.as_millis().max(1)).unwrap_or(u64::MAX))
            .ignore();
        self.add_wait(&mut pipeline);
        self.run_writes(&live.id, "write", &pipeline, None, true)
            .await
            .map(drop)
            .map_err(|failure| failure.error)
    }

    async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError> {
        self.list_page(cursor).await
    }
}
