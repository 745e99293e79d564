//! The one shared Redis connection of a handler: opened on first use (over
//! a stream whose replies are bounded, endpoint.rs), reopened after
//! failures, every command bounded in time, a command the server closed
//! the connection under (or refused as a replica, `READONLY`) retried once
//! on a new one. With Sentinel, a new connection starts with asking the
//! sentinels where the primary is.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
#[cfg(feature = "redis-cluster")]
use redis::cluster::ClusterClient;
use redis::{Cmd, FromRedisValue, Pipeline, RedisConnectionInfo, RedisError, RedisFuture, Value};
use tokio::time::Instant;

use super::dsn::{RedisAddress, RedisDsn};
use crate::log_limit::{LogLimit, and_more};
use crate::session::backend::dsn::SessionDsn;
use crate::session::error::SessionError;

#[cfg(feature = "redis-cluster")]
use super::cluster_route::ClusterRoute;
use super::endpoint::{Address, Endpoint, REPLY_MARGIN};
use super::sentinel::SentinelLookup;
use super::tls::{TlsConfig, tls_config};
use super::{BACKEND, RedisSetupError};

/// Where connections go.
pub(super) enum Node {
    /// One server, as the DSN names it.
    Fixed(Endpoint),
    /// Whichever server the sentinels name as the primary, asked again for
    /// every new connection.
    Sentinel(SentinelLookup),
    /// A Redis Cluster: commands go to the node owning their keys' slot
    /// (cluster_route.rs); the client follows MOVED/ASK redirections and
    /// carries what has no key. Boxed: it is much larger than the others.
    /// With the login for the nodes and, for `rediss+cluster://`, TLS.
    /// Only with nene's `redis-cluster` feature.
    #[cfg(feature = "redis-cluster")]
    Cluster(Box<ClusterClient>, RedisConnectionInfo, Option<TlsConfig>),
}

impl Node {
    /// Whether this is a Redis Cluster.
    pub(super) fn is_cluster(&self) -> bool {
        #[cfg(feature = "redis-cluster")]
        if let Node::Cluster(..) = self {
            return true;
        }
        false
    }
}

/// One connection of either kind; both multiplex requests and are cheap to
/// clone.
#[derive(Clone)]
pub(super) enum Connection {
    /// To one server (fixed, or the primary the sentinels named).
    Single(MultiplexedConnection),
    /// To a cluster.
    #[cfg(feature = "redis-cluster")]
    Cluster(ClusterRoute),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// After this many timeouts in a row the connection is presumed dead (a
/// peer that vanished without a reset looks exactly like a slow one) and is
/// replaced by a fresh one.
pub(super) const TIMEOUTS_BEFORE_RECONNECT: u32 = 2;

/// The Redis connection of one handler and the bounds on using it.
pub(super) struct SharedConnection {
    /// Where connections go: address, credentials, DB and TLS settings.
    pub(super) node: Node,
    /// Held while a connection is opened (and with Sentinel, the primary
    /// looked up), so that requests arriving together open one; it keeps
    /// the last failure to open, which the requests that waited behind it
    /// take as their answer rather than each trying again in turn.
    pub(super) opening: tokio::sync::Mutex<Option<(Instant, String)>>,
    /// The shared connection. `None` until first use (so building a
    /// handler never touches the network), and again after it failed or
    /// stopped answering.
    pub(super) shared: Mutex<Option<Connection>>,
    /// Commands in a row that timed out; see [`TIMEOUTS_BEFORE_RECONNECT`].
    pub(super) timeouts_in_a_row: AtomicU32,
    /// Bound on one command (the DSN's `timeout`).
    pub(super) timeout: Duration,
    /// Bound on opening a connection (the DSN's `connect_timeout`).
    pub(super) connect_timeout: Duration,
    /// The largest reply read from a connection (endpoint.rs): set with
    /// `session.max_size` once the handler is built, before any connection
    /// opens.
    pub(super) max_reply: AtomicU64,
    /// Where Redis is, for error messages.
    pub(super) target: String,
    /// Masked out of any error text, in case a client message ever quotes it.
    pub(super) password: Option<String>,
}

/// What [`SharedConnection::run`] sends: one command, several in one round
/// trip, or a script (by its SHA, loaded on first use).
pub(super) enum Request<'a> {
    Command(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
    /// A command or pipeline that runs `script` by its SHA (`EVALSHA`):
    /// when Redis does not know the script (a restart, `SCRIPT FLUSH`), it
    /// refuses that command without running it, and the whole request is
    /// sent again once the script is loaded. Only for requests whose other
    /// commands are safe to repeat.
    WithScript(&'a redis::Pipeline, &'a redis::Script),
    /// One `EVALSHA` of `script` ([`evalsha`]), sent again once the script
    /// is loaded when Redis does not know it, as the redis crate's own
    /// script invocation does.
    Script(&'a Cmd, &'a redis::Script),
}

/// `EVALSHA` of `script` with `keys`; the caller adds the arguments. One
/// buffer for the whole command: the redis crate's `ScriptInvocation` copies
/// each key and argument into a buffer of its own first, then all of them
/// into the command (nine allocations more per lock try).
pub(super) fn evalsha(script: &redis::Script, keys: &[&str]) -> Cmd {
    // Room for the name, hash, key count, keys and up to 8 arguments, and
    // for the bytes of a session's keys and small arguments; a large value
    // grows it once.
    let mut command = Cmd::with_capacity(3 + keys.len() + 8, 256);
    command
        .arg("EVALSHA")
        .arg(script.get_hash())
        .arg(keys.len());
    for key in keys {
        command.arg(*key);
    }
    command
}

impl Request<'_> {
    /// Sends the request; one that runs a script Redis does not know
    /// (`NOSCRIPT`: a restart, `SCRIPT FLUSH`) is refused without running,
    /// and is sent again once the script is loaded.
    pub(super) async fn send(&self, connection: &mut Connection) -> Result<Value, RedisError> {
        let sent = self.send_once(connection).await;
        match (self.script(), sent) {
            (Some(script), Err(error))
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                script.prepare_invoke().load_async(connection).await?;
                self.send_once(connection).await
            }
            (_, sent) => sent,
        }
    }

    async fn send_once(&self, connection: &mut Connection) -> Result<Value, RedisError> {
        match self {
            Request::Command(command) | Request::Script(command, _) => {
                command.query_async(connection).await
            }
            Request::Pipeline(pipeline) | Request::WithScript(pipeline, _) => {
                pipeline.query_async(connection).await
            }
        }
    }

    /// The script the request runs by its SHA, if any.
    fn script(&self) -> Option<&redis::Script> {
        match self {
            Request::WithScript(_, script) | Request::Script(_, script) => Some(script),
            Request::Command(_) | Request::Pipeline(_) => None,
        }
    }
}

/// A command that failed, with what the caller needs to recover.
pub(super) struct Failure {
    /// The error for the request.
    pub(super) error: SessionError,
    /// Redis closed the connection under the command (reset, broken pipe,
    /// end of stream): the command may or may not have run, and a fresh
    /// connection is worth one more try.
    pub(super) dropped: bool,
    /// The command may have reached Redis and run (false only when no
    /// connection could be opened).
    pub(super) may_have_applied: bool,
}

impl SharedConnection {
    /// Sends `request` and converts the reply, within `connect_timeout +
    /// timeout` (twice that when the connection dropped under the first
    /// try). Only for requests that are safe to repeat.
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
    ) -> Result<T, SessionError> {
        self.run_reporting(operation, request)
            .await
            .map_err(|failure| failure.error)
    }

    /// [`Self::run`], saying whether a failed request may have run.
    pub(super) async fn run_reporting<T: FromRedisValue>(
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
    pub(super) async fn attempt<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: &Request<'_>,
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let attempt = async {
            let mut connection = self.connection().await.map_err(Err)?;
            request.send(&mut connection).await.map_err(Ok)
        };
        let result = tokio::time::timeout(self.connect_timeout + self.timeout, attempt).await;
        let timed_out = |started| Failure {
            error: self.timed_out(operation, started),
            dropped: false,
            may_have_applied: true,
        };
        let reply = match result {
            Ok(Ok(reply)) => reply,
            // No connection could be opened (or no sentinel named a
            // primary): nothing was sent.
            Ok(Err(Err(not_open))) => {
                return Err(Failure {
                    error: self.failed(operation, &not_open),
                    dropped: false,
                    may_have_applied: false,
                });
            }
            Ok(Err(Ok(error))) if error.is_timeout() => return Err(timed_out(started)),
            Ok(Err(Ok(error))) => {
                // Start afresh after a failure of the connection (I/O, a
                // reply over the bound, `READONLY` after a failover,
                // `LOADING`, a password changed). With Sentinel, a fresh
                // connection also means asking the sentinels again where
                // the primary is. An error reply about this
                // command's keys is an answer, not a broken connection: the
                // connection is shared by every session, so replacing it
                // for one session's bad key would cost all of them a
                // reconnect (a storm of them while that key stays).
                if !is_answer(&error) {
                    self.forget_connection();
                }
                // A replica refused the write: it did not run, and the
                // primary is elsewhere now (a failover, or a stale answer).
                let replica = error.code() == Some("READONLY");
                let refused = error.is_connection_refusal() || replica;
                return Err(Failure {
                    error: self.failed(operation, &error.to_string()),
                    dropped: (error.is_connection_dropped() && !refused) || replica,
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

    /// The shared connection, opened on first use (with Sentinel, after
    /// asking where the primary is). The error says why none could be
    /// opened; nothing was sent then.
    pub(super) async fn connection(&self) -> Result<Connection, String> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let queued_at = Instant::now();
        let mut last_failure = self.opening.lock().await;
        // Another request may have opened it, or failed to, while this one
        // waited.
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        if let Some((failed_at, why)) = &*last_failure
            && *failed_at >= queued_at
        {
            return Err(why.clone());
        }
        let opened = match &self.node {
            Node::Fixed(endpoint) => self.open_single(endpoint).await,
            Node::Sentinel(lookup) => self.open_primary(lookup).await,
            // The cluster connection learns the slots as it opens.
            #[cfg(feature = "redis-cluster")]
            Node::Cluster(client, login, tls) => match client.get_async_connection().await {
                Ok(fallback) => Ok(Connection::Cluster(
                    ClusterRoute::new(
                        fallback,
                        login.clone(),
                        tls.clone(),
                        self.connect_timeout,
                        self.timeout,
                        self.max_reply.load(Ordering::Relaxed),
                    )
                    .await,
                )),
                Err(error) => Err(error.to_string()),
            },
        };
        match opened {
            Ok(connection) => {
                *last_failure = None;
                let mut slot = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                Ok(slot.get_or_insert(connection).clone())
            }
            Err(why) => {
                *last_failure = Some((Instant::now(), why.clone()));
                Err(why)
            }
        }
    }

    async fn open_single(&self, endpoint: &Endpoint) -> Result<Connection, String> {
        endpoint
            .multiplexed(self.timeout, self.max_reply.load(Ordering::Relaxed))
            .await
            .map(Connection::Single)
            .map_err(|error| format!("cannot connect: {error}"))
    }

    /// A connection to the primary the sentinels name, once it says it is
    /// one (sentinel.rs).
    async fn open_primary(&self, lookup: &SentinelLookup) -> Result<Connection, String> {
        let primary = lookup.primary().await?;
        let mut connection = primary
            .multiplexed(self.timeout, self.max_reply.load(Ordering::Relaxed))
            .await
            .map_err(|error| format!("cannot connect: {error}"))?;
        lookup.check_role(&primary, &mut connection).await?;
        Ok(Connection::Single(connection))
    }

    fn current(&self) -> Option<Connection> {
        self.shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Drops the shared connection; the next request opens a new one.
    pub(super) fn forget_connection(&self) {
        self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        *self
            .shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = None;
    }

    pub(super) fn timed_out(&self, operation: &'static str, started: Instant) -> SessionError {
        if self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_BEFORE_RECONNECT {
            static LINES: LogLimit = LogLimit::new();
            if let Some(left_out) = LINES.admit() {
                tracing::warn!(
                    "Redis at {} did not answer {TIMEOUTS_BEFORE_RECONNECT} commands in a row; reconnecting{}",
                    self.target,
                    and_more(left_out)
                );
            }
            self.forget_connection();
        }
        SessionError::Timeout {
            backend: BACKEND,
            operation,
            after: started.elapsed(),
        }
    }

    pub(super) fn failed(&self, operation: &'static str, message: &str) -> SessionError {
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

/// Whether `error` is an error reply about the command itself (a key of
/// the wrong type, a script error, out of memory, an ACL denial), after
/// which the connection is as good as before; not one that says the
/// connection is on the wrong server or no longer logged in (`READONLY`
/// after a failover, `LOADING`, `MASTERDOWN`, `NOAUTH`, `WRONGPASS`), nor a
/// cluster redirection, nor any I/O or protocol failure.
fn is_answer(error: &RedisError) -> bool {
    use redis::ErrorKind;
    let reply = matches!(error.kind(), ErrorKind::Server(_) | ErrorKind::Extension);
    let about_the_connection = matches!(
        error.code(),
        Some("READONLY" | "LOADING" | "MASTERDOWN" | "NOAUTH" | "WRONGPASS")
    );
    reply && !about_the_connection && !error.is_cluster_error()
}

/// Where the connections for `dsn` go (no I/O but reading `tls_ca_file`).
pub(super) fn node_for(
    dsn: &RedisDsn,
    whole: &SessionDsn,
    connect_timeout: Duration,
) -> Result<Node, RedisSetupError> {
    let refused = |message: String| RedisSetupError::Client {
        dsn: whole.redacted(),
        message,
    };
    let mut settings = RedisConnectionInfo::default().set_db(i64::from(dsn.db));
    if let Some(username) = &dsn.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = dsn.password() {
        settings = settings.set_password(password);
    }
    let tls = if dsn.address.tls() {
        let ca = match &dsn.options.tls_ca_file {
            Some(path) => Some(
                std::fs::read(path).map_err(|source| RedisSetupError::CaFile {
                    dsn: whole.redacted(),
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        Some((tls_config(ca.as_deref()).map_err(refused)?, ca))
    } else {
        None
    };
    let address = match &dsn.address {
        #[cfg(feature = "redis-cluster")]
        RedisAddress::Cluster { nodes, .. } => {
            return cluster_node(nodes, settings, tls, connect_timeout).map_err(refused);
        }
        // Never reached: the factory refuses `redis+cluster://` first.
        #[cfg(not(feature = "redis-cluster"))]
        RedisAddress::Cluster { .. } => {
            return Err(refused(
                "this build has no Redis Cluster (nene's `redis-cluster` feature)".to_string(),
            ));
        }
        RedisAddress::Sentinel {
            sentinels, service, ..
        } => {
            let mut sentinel_login = RedisConnectionInfo::default();
            if let Some(username) = &dsn.options.sentinel_username {
                sentinel_login = sentinel_login.set_username(username);
            }
            if let Some(password) = dsn.sentinel_password() {
                sentinel_login = sentinel_login.set_password(password);
            }
            return Ok(Node::Sentinel(SentinelLookup {
                sentinels: sentinels.clone(),
                service: service.clone(),
                sentinel_login,
                node_login: settings,
                timeout: connect_timeout,
                tls: tls.map(|(config, _)| config),
            }));
        }
        RedisAddress::Tcp { host, port, .. } => Address::Tcp {
            host: host.clone(),
            port: *port,
        },
        RedisAddress::Unix { path } => Address::Unix(path.clone()),
    };
    let tls = tls.map(|(config, _)| config);
    Ok(Node::Fixed(Endpoint {
        address,
        tls,
        login: settings,
        connect_timeout,
    }))
}

/// A Redis Cluster reached through `seeds`, its nodes logged in to with
/// `login`, over TLS when `tls` is set (with the CA's PEM, if the DSN names
/// one).
#[cfg(feature = "redis-cluster")]
fn cluster_node(
    seeds: &[(String, u16)],
    login: RedisConnectionInfo,
    tls: Option<(TlsConfig, Option<Vec<u8>>)>,
    connect_timeout: Duration,
) -> Result<Node, String> {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    let seeds = seeds
        .iter()
        .map(|(host, port)| {
            let address = match tls {
                Some(_) => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                },
                None => ConnectionAddr::Tcp(host.clone(), *port),
            };
            address
                .into_connection_info()
                .map(|info| info.set_redis_settings(login.clone()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| error.to_string())?;
    #[cfg_attr(not(feature = "redis-tls"), allow(unused_mut))]
    let mut builder = ClusterClient::builder(seeds)
        .connection_timeout(connect_timeout)
        // Redirections (MOVED, ASK) are retries to the cluster client; a
        // few cover a slot migration, and nene's own bound on every command
        // still applies.
        .retries(3)
        .min_retry_wait(10)
        .max_retry_wait(100);
    #[cfg(feature = "redis-tls")]
    if let Some((_, Some(ca))) = &tls {
        // The CA alone, as for `rediss://` (tls.rs).
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.clone()),
        });
    }
    let client = builder.build().map_err(|error| error.to_string())?;
    Ok(Node::Cluster(
        Box::new(client),
        login,
        tls.map(|(config, _)| config),
    ))
}

/// The largest reply read from Redis when sessions may be `max_size`
/// bytes (endpoint.rs).
pub(super) fn max_reply_for(max_size: u64) -> u64 {
    max_size.saturating_add(REPLY_MARGIN)
}
