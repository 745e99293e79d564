//! Sessions in Redis (ADR-0010): the data of session `id` is a plain string
//! under `{prefix}{id}` (`sess_{id}` by default) that Redis expires after
//! `session.gc_maxlifetime` seconds, so gc is a no-op. A request's lock is a
//! second key, `{prefix}{id}.lock`, holding a random token.
//!
//! Redis may be down when nene starts, stall, or restart under it. None of
//! that may stop nene or hang a request: the connection is opened on first
//! use, reopened by itself after a failure, and every command is bounded by
//! the DSN's `timeout` (plus `connect_timeout` while a connection is being
//! opened). A request that cannot reach Redis gets an error (a 503), and the
//! next one tries again.
//!
//! Redis may also close a connection under nene: its own `timeout` setting
//! for idle clients, `CLIENT KILL`, a proxy or a load balancer that drops
//! idle connections. A command that failed that way (not a timeout, not an
//! error reply) is sent once more on a fresh connection: every command here
//! is safe to repeat (see `CHECKED_SAVE_SCRIPT` for the one that needs care).
//! Nothing keeps idle connections alive: the retry costs one reconnect after
//! an idle period, a keep-alive ping would cost traffic on every idle
//! connection and still lose to a proxy with a shorter idle limit.
//!
//! A key that holds something nene cannot use (a hash, a value over
//! `session.max_size`) is reported as [`Stored::Unreadable`], never loaded:
//! the lock is still taken, so the request goes on with an empty session.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::RngExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, ConnectionAddr, FromRedisValue, IntoConnectionInfo, RedisConnectionInfo, RedisError,
    Script, ScriptInvocation, Value,
};
use tokio::time::Instant;

use super::dsn::{RedisAddress, RedisDsn, SessionDsn};
use super::error::SessionError;
use super::handler::{
    DEFAULT_MAX_SESSION_BYTES, HeldLock, SessionHandler, SessionLock, Stored, save_then_release,
};
use super::id::SessionId;
use super::unreadable::Unreadable;

const BACKEND: &str = "redis";

/// Deletes the lock only if it still holds the releasing request's token: a
/// lock that expired and was taken by another request is not ours to delete.
const RELEASE_SCRIPT: &str =
    "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end";

/// Takes the lock (when ARGV[1] is a token) and reads the session, in one
/// round trip. Only a plain string of at most ARGV[3] bytes is sent back:
/// a key of another type, or a value over `session.max_size`, is reported
/// instead, so nene never loads it. With ARGV[4] = '0' nothing is read.
/// Taking the lock is idempotent — a lock that already holds this token
/// counts as taken — so a retry after a dropped connection does not wait
/// for its own lock.
///
/// KEYS: session key, lock key. ARGV: token ('' = no lock), lock TTL in
/// ms, max size, read ('1'/'0'). Reply: {0} when another request holds the
/// lock; otherwise {1}, {1,'type',T}, {1,'size',N} or {1,'data',bytes}.
const LOCK_AND_READ_SCRIPT: &str = r"
if ARGV[1] ~= '' and not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
   and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return {0}
end
if ARGV[4] == '0' then return {1} end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {1} end
if kind ~= 'string' then return {1, 'type', kind} end
local size = redis.call('STRLEN', KEYS[1])
if size > tonumber(ARGV[3]) then return {1, 'size', size} end
return {1, 'data', redis.call('GET', KEYS[1])}
";

/// The retry of a save whose connection dropped before its reply came. The
/// first attempt may or may not have been applied, and another request may
/// have taken the lock since, so a blind repeat could overwrite its newer
/// data: this writes (or touches) and unlocks only while the lock still
/// holds this request's token. When it does not, the save counts as done if
/// it was a touch or if the stored value is exactly what this request wrote
/// (the first attempt got through), and as failed otherwise.
///
/// KEYS: session key, lock key. ARGV: token, TTL in seconds, data (absent
/// for a touch). Reply: 1 stored, 0 not stored.
const CHECKED_SAVE_SCRIPT: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  if ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
  else
    redis.call('EXPIRE', KEYS[1], ARGV[2])
  end
  redis.call('DEL', KEYS[2])
  return 1
end
if not ARGV[3] then return 1 end
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[3] then
  return 1
end
return 0
";

static LOCK_AND_READ: LazyLock<Script> = LazyLock::new(|| Script::new(LOCK_AND_READ_SCRIPT));
static CHECKED_SAVE: LazyLock<Script> = LazyLock::new(|| Script::new(CHECKED_SAVE_SCRIPT));

/// First pause between attempts to take a busy lock; it doubles up to
/// [`LOCK_RETRY_MAX`]. Short at first because most locks are held for one
/// quick request.
const LOCK_RETRY_FIRST: Duration = Duration::from_millis(1);
const LOCK_RETRY_MAX: Duration = Duration::from_millis(50);

/// After this many timeouts in a row the connection is presumed dead (a
/// peer that vanished without a reset looks exactly like a slow one) and is
/// replaced by a fresh one.
const TIMEOUTS_BEFORE_RECONNECT: u32 = 2;

/// The Redis session backend.
pub struct RedisSessionHandler {
    /// The connection, shared with the locks this handler hands out so that
    /// a lock can be released after the request that took it is gone.
    redis: Arc<SharedConnection>,
    /// Prepended to ids to make keys (`sess_` by default).
    prefix: String,
    /// `session.gc_maxlifetime` in whole seconds: the `EX` of every write
    /// and the `EXPIRE` of every touch (Redis' smallest expiry is 1 s).
    ttl_secs: u64,
    /// Locking settings; `None` when the DSN says `lock=off`.
    lock: Option<LockSettings>,
    /// `session.max_size`: a larger stored value is never sent to nene.
    max_size: u64,
}

/// How session locks behave (`lock_ttl`, `lock_wait`).
#[derive(Clone, Copy, Debug)]
struct LockSettings {
    /// The lock key's expiry, so a holder that died does not block the session for ever.
    ttl: Duration,
    /// How long a request waits for a lock before it gives up.
    wait: Duration,
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
        let client = client_for(redis_dsn, dsn)?;
        let options = &redis_dsn.options;
        Ok(Self {
            redis: Arc::new(SharedConnection {
                client,
                manager: Mutex::new(None),
                timeouts_in_a_row: AtomicU32::new(0),
                timeout: options.timeout,
                connect_timeout: options.connect_timeout,
                target: redis_dsn.address.to_string(),
                password: redis_dsn.password().map(str::to_string),
            }),
            prefix: options.prefix.clone(),
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
        self
    }

    fn key(&self, id: &SessionId) -> String {
        format!("{}{}", self.prefix, id.as_str())
    }

    fn lock_key(&self, id: &SessionId) -> String {
        format!("{}{}.lock", self.prefix, id.as_str())
    }

    /// The lock loop behind [`SessionHandler::lock`] and [`Self::lock_and_read`].
    async fn acquire(
        &self,
        id: &SessionId,
        read: bool,
    ) -> Result<(SessionLock, Stored), SessionError> {
        let Some(settings) = self.lock else {
            let stored = if read {
                self.read(id).await?
            } else {
                Stored::Missing
            };
            return Ok((SessionLock::none(), stored));
        };
        let held = RedisLock {
            redis: self.redis.clone(),
            key: self.lock_key(id),
            token: new_token(),
            expires_at: Instant::now() + settings.ttl,
        };
        let mut invocation = LOCK_AND_READ.prepare_invoke();
        invocation
            .key(self.key(id))
            .key(&held.key)
            .arg(&held.token)
            .arg(u64::try_from(settings.ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(self.max_size)
            .arg(if read { "1" } else { "0" });

        let started = Instant::now();
        let mut pause = LOCK_RETRY_FIRST;
        loop {
            let reply = self
                .redis
                .run_reporting::<Value>("lock", Request::Script(&invocation))
                .await;
            let parsed = match reply {
                Ok(reply) => parse_lock_and_read(reply, self.max_size)
                    .map_err(|message| self.redis.failed("lock", &message)),
                Err(failure) => {
                    if failure.may_have_applied {
                        // The lock may have been taken after all; do not
                        // leave a lock nobody knows they hold.
                        drop(SessionLock::held(Box::new(held)));
                    }
                    return Err(failure.error);
                }
            };
            match parsed {
                Ok(Some(stored)) => return Ok((SessionLock::held(Box::new(held)), stored)),
                Ok(None) => {}
                Err(error) => {
                    drop(SessionLock::held(Box::new(held)));
                    return Err(error);
                }
            }
            let waited = started.elapsed();
            if waited >= settings.wait {
                return Err(SessionError::LockTimeout {
                    id_tag: id.log_tag(),
                    waited,
                });
            }
            let jittered = rand::rng().random_range(pause / 2..=pause);
            tokio::time::sleep(jittered.min(settings.wait - waited)).await;
            pause = (pause * 2).min(LOCK_RETRY_MAX);
        }
    }
}

/// The reply of [`LOCK_AND_READ_SCRIPT`]: `None` while another request
/// holds the lock, else what is stored. The error names a reply the script
/// cannot give.
fn parse_lock_and_read(reply: Value, max_size: u64) -> Result<Option<Stored>, String> {
    let unexpected =
        |reply: &dyn std::fmt::Debug| format!("unexpected reply to the lock script: {reply:?}");
    let Value::Array(mut items) = reply else {
        return Err(unexpected(&reply));
    };
    // The data itself is moved out, not copied: it can be megabytes.
    if let [
        Value::Int(1),
        Value::BulkString(what),
        Value::BulkString(bytes),
    ] = items.as_mut_slice()
        && what.as_slice() == b"data"
    {
        return Ok(Some(Stored::Data(Bytes::from(std::mem::take(bytes)))));
    }
    match items.as_slice() {
        [Value::Int(0)] => Ok(None),
        [Value::Int(1)] => Ok(Some(Stored::Missing)),
        [
            Value::Int(1),
            Value::BulkString(what),
            Value::BulkString(kind),
        ] if what == b"type" => Ok(Some(Stored::Unreadable(Unreadable::WrongType(
            String::from_utf8_lossy(kind).into_owned(),
        )))),
        [Value::Int(1), Value::BulkString(what), Value::Int(size)] if what == b"size" => {
            Ok(Some(Stored::Unreadable(Unreadable::TooLarge {
                size: u64::try_from(*size).unwrap_or(0),
                max: max_size,
            })))
        }
        _ => Err(unexpected(&items)),
    }
}

impl RedisSessionHandler {
    /// The retry of [`SessionHandler::save_and_unlock`] after a dropped
    /// connection: [`CHECKED_SAVE_SCRIPT`], sent once.
    async fn checked_save(
        &self,
        id: &SessionId,
        data: Option<&Bytes>,
        held: &RedisLock,
    ) -> Result<(), SessionError> {
        let mut invocation = CHECKED_SAVE.prepare_invoke();
        invocation
            .key(self.key(id))
            .key(&held.key)
            .arg(&held.token)
            .arg(self.ttl_secs);
        if let Some(data) = data {
            invocation.arg(data.as_ref());
        }
        let stored = self
            .redis
            .attempt::<i64>("write", &Request::Script(&invocation))
            .await
            .map_err(|failure| failure.error)?;
        if stored == 1 {
            return Ok(());
        }
        Err(self.redis.failed(
            "write",
            &format!(
                "the connection dropped during the write of session #{} and its lock had passed to another request by the retry; this change was not stored",
                id.log_tag()
            ),
        ))
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

    async fn lock(&self, id: &SessionId) -> Result<SessionLock, SessionError> {
        Ok(self.acquire(id, false).await?.0)
    }

    /// One round trip: [`LOCK_AND_READ_SCRIPT`] takes the lock and reads.
    /// While another request holds the lock, it is retried as in `lock`.
    /// With `lock=off` this is a plain read.
    async fn lock_and_read(&self, id: &SessionId) -> Result<(SessionLock, Stored), SessionError> {
        self.acquire(id, true).await
    }

    /// [`LOCK_AND_READ_SCRIPT`] without the lock: only a string within
    /// `session.max_size` comes back.
    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        let mut invocation = LOCK_AND_READ.prepare_invoke();
        invocation
            .key(self.key(id))
            .key(self.lock_key(id))
            .arg("")
            .arg(0)
            .arg(self.max_size)
            .arg("1");
        let reply = self
            .redis
            .run::<Value>("read", Request::Script(&invocation))
            .await?;
        match parse_lock_and_read(reply, self.max_size) {
            Ok(Some(stored)) => Ok(stored),
            Ok(None) => Err(self.redis.failed("read", "the lock script refused a read")),
            Err(message) => Err(self.redis.failed("read", &message)),
        }
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        let mut set = redis::cmd("SET");
        set.arg(self.key(id))
            .arg(data.as_ref())
            .arg("EX")
            .arg(self.ttl_secs);
        self.redis.run::<()>("write", Request::Command(&set)).await
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

    /// One round trip: the `SET … EX` (or `EXPIRE`) and the lock's
    /// compare-and-delete go out as one pipeline. If the connection drops
    /// under it, [`CHECKED_SAVE_SCRIPT`] is the retry.
    async fn save_and_unlock(
        &self,
        id: &SessionId,
        data: Option<Bytes>,
        mut lock: SessionLock,
    ) -> Result<(), SessionError> {
        let Some(held) = lock.take_as::<RedisLock>() else {
            // No Redis lock (locking off): nothing to fold into the write.
            return save_then_release(self, id, data, lock).await;
        };
        let mut pipeline = redis::pipe();
        match &data {
            Some(data) => pipeline
                .cmd("SET")
                .arg(self.key(id))
                .arg(data.as_ref())
                .arg("EX")
                .arg(self.ttl_secs)
                .ignore(),
            None => pipeline
                .cmd("EXPIRE")
                .arg(self.key(id))
                .arg(self.ttl_secs)
                .ignore(),
        };
        pipeline
            .cmd("EVAL")
            .arg(RELEASE_SCRIPT)
            .arg(1)
            .arg(&held.key)
            .arg(&held.token)
            .ignore();
        let saved = match self
            .redis
            .attempt::<()>("write", &Request::Pipeline(&pipeline))
            .await
        {
            Ok(()) => Ok(()),
            Err(failure) if failure.dropped => self.checked_save(id, data.as_ref(), &held).await,
            Err(failure) => Err(failure.error),
        };
        if saved.is_err() {
            // The pipeline may not have reached Redis: release on its own,
            // in the background (best effort; the lock TTL is the backstop).
            let held: Box<dyn HeldLock> = held;
            drop(SessionLock::held(held));
        }
        saved
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        let mut del = redis::cmd("DEL");
        del.arg(self.key(id));
        self.redis
            .run::<i64>("destroy", Request::Command(&del))
            .await
            .map(drop)
    }

    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError> {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.key(id));
        let count: i64 = self.redis.run("exists", Request::Command(&exists)).await?;
        Ok(count > 0)
    }

    /// Redis expires sessions itself.
    async fn gc(&self) -> Result<u64, SessionError> {
        Ok(0)
    }

    fn uses_locking(&self) -> bool {
        self.lock.is_some()
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

/// A held session lock: the key and the token only its holder knows.
struct RedisLock {
    /// The connection, kept so the lock can be released from a background
    /// task after its request was cancelled.
    redis: Arc<SharedConnection>,
    /// `{prefix}{id}.lock`.
    key: String,
    /// Random, so that releasing can tell this holder's lock from a later one's.
    token: String,
    /// When Redis expires the lock at the latest (counted from before it
    /// was taken, so never later than Redis' own clock).
    expires_at: Instant,
}

/// Pauses between attempts at releasing a lock whose release failed.
const RELEASE_RETRY_FIRST: Duration = Duration::from_millis(100);
const RELEASE_RETRY_MAX: Duration = Duration::from_secs(2);

impl RedisLock {
    async fn release_once(&self) -> Result<(), SessionError> {
        let mut release = redis::cmd("EVAL");
        release
            .arg(RELEASE_SCRIPT)
            .arg(1)
            .arg(&self.key)
            .arg(&self.token);
        self.redis
            .run::<i64>("unlock", Request::Command(&release))
            .await
            .map(drop)
    }

    /// Keeps trying until the release gets through or the lock has expired
    /// by itself. A Redis that restarts with persistence brings the lock
    /// back, and without this the session would stay locked for the rest of
    /// `lock_ttl` after Redis is up again.
    async fn retry_release(self: Box<Self>) {
        let mut pause = RELEASE_RETRY_FIRST;
        loop {
            tokio::time::sleep(pause).await;
            if Instant::now() >= self.expires_at || self.release_once().await.is_ok() {
                return;
            }
            pause = (pause * 2).min(RELEASE_RETRY_MAX);
        }
    }
}

#[async_trait]
impl HeldLock for RedisLock {
    async fn release(self: Box<Self>) -> Result<(), SessionError> {
        let released = self.release_once().await;
        if released.is_err() {
            tokio::spawn(self.retry_release());
        }
        released
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// 128 bits from the thread's CSPRNG, as hex.
fn new_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The Redis connection of one handler and the bounds on using it.
struct SharedConnection {
    /// Address, credentials, DB and TLS settings; opening connections is its job.
    client: Client,
    /// The shared connection, which reconnects by itself after errors.
    /// `None` until first use (so building a handler never touches the
    /// network), and again after it stopped answering or Redis refused
    /// its set-up.
    manager: Mutex<Option<ConnectionManager>>,
    /// Commands in a row that timed out; see [`TIMEOUTS_BEFORE_RECONNECT`].
    timeouts_in_a_row: AtomicU32,
    /// Bound on one command (the DSN's `timeout`).
    timeout: Duration,
    /// Bound on opening a connection (the DSN's `connect_timeout`).
    connect_timeout: Duration,
    /// Where Redis is, for error messages.
    target: String,
    /// Masked out of any error text, in case a client message ever quotes it.
    password: Option<String>,
}

/// What [`SharedConnection::run`] sends: one command, several in one round
/// trip, or a script (by its SHA, loaded on first use).
enum Request<'a> {
    Command(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
    Script(&'a ScriptInvocation<'a>),
}

impl Request<'_> {
    async fn send(&self, connection: &mut ConnectionManager) -> Result<Value, RedisError> {
        match self {
            Request::Command(command) => command.query_async(connection).await,
            Request::Pipeline(pipeline) => pipeline.query_async(connection).await,
            Request::Script(script) => script.invoke_async(connection).await,
        }
    }
}

/// A command that failed, with what the caller needs to recover.
struct Failure {
    /// The error for the request.
    error: SessionError,
    /// Redis closed the connection under the command (reset, broken pipe,
    /// end of stream): the command may or may not have run, and a fresh
    /// connection is worth one more try.
    dropped: bool,
    /// The command may have reached Redis and run (false only when no
    /// connection could be opened).
    may_have_applied: bool,
}

impl SharedConnection {
    /// Sends `request` and converts the reply, within `connect_timeout +
    /// timeout` (twice that when the connection dropped under the first
    /// try). Only for requests that are safe to repeat.
    async fn run<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
    ) -> Result<T, SessionError> {
        self.run_reporting(operation, request)
            .await
            .map_err(|failure| failure.error)
    }

    /// [`Self::run`], saying whether a failed request may have run.
    async fn run_reporting<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
    ) -> Result<T, Failure> {
        match self.attempt(operation, &request).await {
            Err(failure) if failure.dropped => {
                tracing::debug!(
                    "Redis at {} closed the connection during {operation}; retrying once on a new one",
                    self.target
                );
                self.attempt(operation, &request).await
            }
            other => other,
        }
    }

    /// Sends `request` once and converts the reply, within `connect_timeout
    /// + timeout` whatever happens.
    async fn attempt<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: &Request<'_>,
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let mut connection = self.connection();
        let attempt = async {
            match request.send(&mut connection).await {
                // No connection could be opened; the manager has just started
                // a new attempt, which this request may as well wait for
                // (a restarted Redis then serves the first request after it).
                Err(error) if error.is_connection_refusal() => request.send(&mut connection).await,
                other => other,
            }
        };
        let result = tokio::time::timeout(self.connect_timeout + self.timeout, attempt).await;
        let timed_out = |started| Failure {
            error: self.timed_out(operation, started),
            dropped: false,
            may_have_applied: true,
        };
        let reply = match result {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) if error.is_timeout() => return Err(timed_out(started)),
            Ok(Err(error)) => {
                // The connection manager reopens the connection after I/O
                // errors, but keeps a connection whose set-up Redis refused
                // (wrong password, `LOADING`, `READONLY` after a failover)
                // for ever: start afresh on the next request.
                if !error.is_io_error() {
                    self.forget_connection();
                }
                let refused = error.is_connection_refusal();
                return Err(Failure {
                    error: self.failed(operation, &error.to_string()),
                    dropped: error.is_connection_dropped() && !refused,
                    may_have_applied: !refused,
                });
            }
            Err(_elapsed) => return Err(timed_out(started)),
        };
        self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        T::from_redis_value(reply).map_err(|error| Failure {
            error: self.failed(operation, &format!("unexpected reply: {error}")),
            dropped: false,
            may_have_applied: true,
        })
    }

    /// The shared connection, created (without connecting) on first use.
    fn connection(&self) -> ConnectionManager {
        let mut manager = self
            .manager
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        manager
            .get_or_insert_with(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.timeout))
                    // One attempt per request: a request must not sit out a
                    // backoff schedule, and the next request tries again.
                    .set_number_of_retries(0);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                    .expect("a connection manager without push subscriptions always builds")
            })
            .clone()
    }

    /// Drops the shared connection; the next request opens a new one.
    fn forget_connection(&self) {
        self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        *self
            .manager
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = None;
    }

    fn timed_out(&self, operation: &'static str, started: Instant) -> SessionError {
        if self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_BEFORE_RECONNECT {
            tracing::warn!(
                "Redis at {} did not answer {TIMEOUTS_BEFORE_RECONNECT} commands in a row; reconnecting",
                self.target
            );
            self.forget_connection();
        }
        SessionError::Timeout {
            backend: BACKEND,
            operation,
            after: started.elapsed(),
        }
    }

    fn failed(&self, operation: &'static str, message: &str) -> SessionError {
        let mut message = format!("{}: {message}", self.target);
        if let Some(password) = &self.password {
            message = message.replace(password.as_str(), "***");
        }
        SessionError::Backend {
            backend: BACKEND,
            operation,
            message,
        }
    }
}

/// A client for `dsn` (no I/O but reading `tls_ca_file`).
fn client_for(dsn: &RedisDsn, whole: &SessionDsn) -> Result<Client, RedisSetupError> {
    let refused = |error: RedisError| RedisSetupError::Client {
        dsn: whole.redacted(),
        message: error.to_string(),
    };
    let (address, tls) = match &dsn.address {
        RedisAddress::Tcp {
            host,
            port,
            tls: false,
        } => (ConnectionAddr::Tcp(host.clone(), *port), false),
        RedisAddress::Tcp {
            host,
            port,
            tls: true,
        } => (
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            },
            true,
        ),
        RedisAddress::Unix { path } => (ConnectionAddr::Unix(path.clone()), false),
    };
    let mut settings = RedisConnectionInfo::default().set_db(i64::from(dsn.db));
    if let Some(username) = &dsn.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = dsn.password() {
        settings = settings.set_password(password);
    }
    let info = address
        .into_connection_info()
        .map_err(refused)?
        .set_redis_settings(settings);
    if tls {
        // The redis crate leaves the choice of rustls' crypto to the
        // application; an error means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    match &dsn.options.tls_ca_file {
        Some(path) => {
            let ca = std::fs::read(path).map_err(|source| RedisSetupError::CaFile {
                dsn: whole.redacted(),
                path: path.clone(),
                source,
            })?;
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca),
            };
            Client::build_with_tls(info, certificates).map_err(refused)
        }
        None => Client::open(info).map_err(refused),
    }
}
