//! `SESSION_DSN` (env `NENE_SESSION_DSN`): which session backend to use and
//! how to reach it. Parsed once at start-up; a DSN nene does not understand
//! stops the process with a message that says what is accepted, and no
//! message or debug print ever shows the password.
//!
//! # Forms
//!
//! | DSN | backend |
//! | --- | --- |
//! | `` (empty or blanks), or `files` | files in `session.save_path`; no connection attempt |
//! | `redis://host[:port]` | Redis DB 0; the port defaults to 6379 |
//! | `redis://host[:port]/db` | Redis DB `db` (0-65535; a stock server has 16) |
//! | `redis://[user]:password@host[:port][/db]` | with `AUTH` (`user` is a Redis 6 ACL user; leave it out for `requirepass`) |
//! | `rediss://…` | any of the above over TLS |
//! | `redis+unix:///path/to/redis.sock` (or `unix:///…`) | a Unix socket; `db`, `password` and `username` go in the query: `?db=2&password=…` |
//! | `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/SERVICE[/db]` | the primary of SERVICE, asked of these sentinels (port 26379 by default); user, password and db are the data nodes' |
//! | `redis+cluster://[[user]:password@]host[:port][,host[:port]…]` | a Redis Cluster, found from these seed nodes; keys carry the id as a hash tag (`sess_{id}`) so a session and its lock share a slot |
//! | `memcached://host[:port][,host[:port]…]` | memcached (port 11211 by default); with several servers a session lives on the one libmemcached's weighted ketama picks for its id; no user or password (no SASL) |
//! | `sqlite://…`, `mysql://…` (`mariadb://…`), `postgres://…` (`postgresql://…`) | a SQL table; forms and options in `sql.rs` |
//!
//! IPv6 hosts go in brackets (`redis://[::1]:6379`). A password with
//! reserved characters is percent-encoded (`@` → `%40`, `/` → `%2F`,
//! `:` → `%3A`, `?` → `%3F`, `#` → `%23`, `%` → `%25`).
//!
//! # Options
//!
//! Query parameters of any Redis DSN, e.g.
//! `redis://redis:6379/0?prefix=shop_&timeout=250ms&lock_wait=5s`.
//! Durations use humantime syntax: `250ms`, `2s`, `1m 30s`.
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `prefix` | `sess_` | key prefix: a session is stored under `{prefix}{id}`, its lock under `{prefix}{id}{lock_suffix}` |
//! | `lock_suffix` | `.lock` | appended to the session key to name its lock; `_LOCK` shares locks with phpredis (`redis.session.locking_enabled`) |
//! | `timeout` | `500ms` | longest wait for any one Redis command; past it the request fails with a 503 instead of hanging |
//! | `connect_timeout` | `1s` | longest wait for (re)connecting, on top of `timeout` |
//! | `lock` | `on` | `on`: one request at a time per session, like PHP's file handler; `off`: no locking (last write wins) |
//! | `lock_ttl` | `30s` | how long a lock outlives a holder that died without releasing it |
//! | `lock_wait` | `10s` | longest wait for a lock another request holds; then the request fails with a 503 |
//! | `tls_ca_file` | Mozilla's public roots | `rediss://` only: PEM file of the CA that signed the server's certificate (private CAs, self-signed test servers) |
//! | `wait` | `0` (off) | replicas that must acknowledge a session write or destroy (`WAIT n`) before the request is answered; fewer by `wait_timeout` → 503 |
//! | `wait_timeout` | `500ms` | bound on that wait |
//! | `sentinel_username`, `sentinel_password` | none | `redis+sentinel://` only: the sentinels' own credentials |
//! | `db`, `password`, `username` | `0`, none, none | Unix socket form only (the TCP forms carry them in the URL) |
//!
//! A memcached DSN takes `prefix`, `timeout`, `connect_timeout`, `lock`,
//! `lock_ttl` and `lock_wait` as above, and `lock_prefix` (default `lock.`)
//! instead of `lock_suffix`: a session's lock is `{prefix}{lock_prefix}{id}`,
//! as PHP's memcached extension names its locks (`memc.sess.key.lock.{id}`
//! with `prefix=memc.sess.key.`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// What the messages list as accepted DSNs.
const ACCEPTED: &str = "accepted: '' or files (file sessions), \
     memory:// (this process's memory, for tests), \
     redis://[[user]:password@]host[:port][/db][?options], \
     rediss://… (the same over TLS), \
     redis+unix:///path/to/redis.sock[?db=N&password=…&options], \
     redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/SERVICE[/db][?options], \
     redis+cluster://[[user]:password@]host[:port][,host[:port]…][?options], \
     memcached://host[:port][,host[:port]…][?options], \
     sqlite://relative/path.db or sqlite:///absolute/path.db[?options], \
     mysql://user:password@host[:port]/database[?options] (or mariadb://), \
     postgres://user:password@host[:port]/database[?options] (or postgresql://)";

/// Options every Redis DSN takes.
const OPTIONS: &[&str] = &[
    "prefix",
    "wait",
    "wait_timeout",
    "sentinel_username",
    "sentinel_password",
    "lock_suffix",
    "timeout",
    "connect_timeout",
    "lock",
    "lock_ttl",
    "lock_wait",
    "tls_ca_file",
];

/// Options only the Unix socket form takes (the URL forms have a place for them).
const SOCKET_OPTIONS: &[&str] = &["db", "password", "username"];

const SCHEMES: &[&str] = &[
    "memory",
    "redis",
    "rediss",
    "redis+unix",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
    "memcached",
    "sqlite",
    "mysql",
    "mariadb",
    "postgres",
    "postgresql",
];

const DEFAULT_PORT: u16 = 6379;

/// Redis Sentinel's own port.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// The longest duration an option accepts; more is surely a typo.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A parsed `SESSION_DSN`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionDsn {
    /// Which backend, and for Redis how to reach it.
    backend: SessionBackend,
    /// The DSN as given with its password masked: what logs and errors show.
    redacted: String,
}

/// The backend a DSN selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionBackend {
    /// PHP's default: one file per session under `session.save_path`.
    Files,
    /// `memory://`: this process's memory (tests, trying nene out).
    Memory,
    /// Boxed: it is much larger than `Files`.
    Redis(Box<RedisDsn>),
    /// One or more memcached servers; boxed like Redis.
    Memcached(Box<MemcachedDsn>),
    /// SQLite, MySQL/MariaDB or PostgreSQL (`sql.rs`); boxed likewise.
    Sql(Box<SqlDsn>),
}

/// Where a Redis server is and how to talk to it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisDsn {
    /// Host and port, or socket path.
    pub address: RedisAddress,
    /// The logical database (`SELECT db`), so several applications can share one server.
    pub db: u16,
    /// The ACL user of `AUTH user password` (Redis 6+); `None` authenticates
    /// as the default user (`requirepass`).
    pub username: Option<String>,
    /// The `AUTH` password. Private so that it cannot leak through a field
    /// access in a log line; [`RedisDsn::password`] hands it to the client.
    password: Option<String>,
    /// The sentinels' own `AUTH` password (`sentinel_password`), private
    /// for the same reason.
    sentinel_password: Option<String>,
    /// The query options (key prefix, timeouts, locking, TLS CA).
    pub options: RedisOptions,
}

/// Where Redis listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisAddress {
    /// TCP; `tls` for `rediss://`.
    Tcp {
        /// A host name, or an IP address (IPv6 without its brackets).
        host: String,
        /// The port; 6379 when the DSN names none.
        port: u16,
        /// Whether the connection is TLS (`rediss://`).
        tls: bool,
    },
    /// A Unix domain socket (`redis+unix://`, `unix://`).
    Unix {
        /// The absolute path of the socket file, percent-decoded.
        path: PathBuf,
    },
    /// The primary of a Sentinel-monitored service (`redis+sentinel://`),
    /// asked of the sentinels on first use and again after a connection
    /// error or a `READONLY` reply.
    Sentinel {
        /// Host and port of each sentinel, asked in this order.
        sentinels: Vec<(String, u16)>,
        /// The service name (`sentinel monitor SERVICE …`).
        service: String,
        /// Whether the sentinels and the primary are spoken to over TLS
        /// (`rediss+sentinel://`).
        tls: bool,
    },
    /// A Redis Cluster (`redis+cluster://`), its slots learned from these
    /// seed nodes and followed through MOVED/ASK redirections.
    Cluster {
        /// Host and port of each seed node.
        nodes: Vec<(String, u16)>,
        /// Whether every node is spoken to over TLS (`rediss+cluster://`).
        tls: bool,
    },
}

impl RedisAddress {
    /// Whether connections go over TLS (`rediss://`, `rediss+sentinel://`,
    /// `rediss+cluster://`).
    pub fn tls(&self) -> bool {
        match self {
            RedisAddress::Tcp { tls, .. }
            | RedisAddress::Sentinel { tls, .. }
            | RedisAddress::Cluster { tls, .. } => *tls,
            RedisAddress::Unix { .. } => false,
        }
    }
}

/// The options of the table in this module's documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prepended to the session id to make the key, so that sessions can share
    /// a server (or a DB) with other data and other applications.
    pub prefix: String,
    /// Bound on every command: a stalled Redis becomes an error, not a hang.
    pub timeout: Duration,
    /// Bound on opening a connection, on top of `timeout`.
    pub connect_timeout: Duration,
    /// Appended to the session key to name its lock key: `.lock`, or
    /// phpredis' `_LOCK` to share locks with a PHP application.
    pub lock_suffix: String,
    /// Whether requests of one session take turns (PHP's files handler
    /// locks; without it, parallel requests overwrite each other's changes).
    pub lock: bool,
    /// Expiry of a lock, so that a crashed holder does not lock the session forever.
    pub lock_ttl: Duration,
    /// How long a request waits for a lock before it gives up.
    pub lock_wait: Duration,
    /// A CA certificate (PEM) for `rediss://` servers whose certificate is
    /// not signed by a public CA.
    pub tls_ca_file: Option<PathBuf>,
    /// Replicas that must acknowledge a session write (or destroy) before
    /// the request is answered (`WAIT n`); 0 = do not wait.
    pub wait_replicas: u32,
    /// Bound on that wait; fewer acknowledgements by then fail the request.
    pub wait_timeout: Duration,
    /// The sentinels' own ACL user (`sentinel_username`).
    pub sentinel_username: Option<String>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "sess_".to_string(),
            lock_suffix: ".lock".to_string(),
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            lock: true,
            lock_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(10),
            tls_ca_file: None,
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(500),
            sentinel_username: None,
        }
    }
}

/// A DSN nene cannot use. Every variant names the DSN with its password
/// replaced by `***`, and says what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum DsnError {
    /// The DSN has a `scheme://` that is none of `redis`, `rediss`,
    /// `redis+unix` and `unix`.
    #[error("SESSION_DSN `{dsn}`: unknown scheme `{scheme}`{hint}; {ACCEPTED}")]
    UnknownScheme {
        /// The DSN, password masked.
        dsn: String,
        /// The scheme as written.
        scheme: String,
        /// ` (did you mean …?)` or empty.
        hint: String,
    },
    /// The DSN does not fit its form: no scheme, a bad host, port or db,
    /// broken percent-encoding, a user without a password, an option given
    /// twice or without a value, and the like.
    #[error("SESSION_DSN `{dsn}`: {problem}; {ACCEPTED}")]
    Malformed {
        /// The DSN, password masked.
        dsn: String,
        /// What is wrong, and where it helps, how to write it instead.
        problem: String,
    },
    /// The query has an option this form does not take (the db, password and
    /// username options are for the Unix socket form only).
    #[error("SESSION_DSN `{dsn}`: unknown option `{option}`{hint}; options: {accepted}")]
    UnknownOption {
        /// The DSN, password masked.
        dsn: String,
        /// The option name as written, percent-decoded.
        option: String,
        /// ` (did you mean …?)` or empty.
        hint: String,
        /// The options this form takes, comma-separated.
        accepted: String,
    },
    /// A known option has a value it cannot take: a duration that does not
    /// parse or is out of bounds, `lock` other than on/off, a prefix with
    /// control characters.
    #[error("SESSION_DSN `{dsn}`: option `{option}` must be {expected}, not `{value}`")]
    BadOptionValue {
        /// The DSN, password masked.
        dsn: String,
        /// The option the value was given for.
        option: &'static str,
        /// The value as given; never a password's, which are not checked here.
        value: String,
        /// What the option takes, in words.
        expected: &'static str,
    },
}

impl SessionDsn {
    /// Parses a DSN of one of the forms in this module's documentation.
    pub fn parse(text: &str) -> Result<Self, DsnError> {
        let redacted = redact_dsn(text);
        let backend = Parser { dsn: &redacted }.parse(text.trim())?;
        Ok(Self { backend, redacted })
    }

    /// The backend the DSN selects, with its connection details.
    pub fn backend(&self) -> &SessionBackend {
        &self.backend
    }

    /// The Redis settings, unless this is the files backend.
    pub fn redis(&self) -> Option<&RedisDsn> {
        match &self.backend {
            SessionBackend::Redis(redis) => Some(redis.as_ref()),
            SessionBackend::Files
            | SessionBackend::Memory
            | SessionBackend::Memcached(_)
            | SessionBackend::Sql(_) => None,
        }
    }

    /// The memcached settings, when the DSN names memcached.
    pub fn memcached(&self) -> Option<&MemcachedDsn> {
        match &self.backend {
            SessionBackend::Memcached(memcached) => Some(memcached.as_ref()),
            SessionBackend::Files
            | SessionBackend::Memory
            | SessionBackend::Redis(_)
            | SessionBackend::Sql(_) => None,
        }
    }

    /// The SQL settings, for `sqlite://`, `mysql://` and `postgres://` DSNs.
    pub fn sql(&self) -> Option<&SqlDsn> {
        match &self.backend {
            SessionBackend::Sql(sql) => Some(sql.as_ref()),
            SessionBackend::Files
            | SessionBackend::Memory
            | SessionBackend::Redis(_)
            | SessionBackend::Memcached(_) => None,
        }
    }

    /// Whether the DSN is empty (or blank), selecting file sessions.
    pub fn is_files(&self) -> bool {
        self.backend == SessionBackend::Files
    }

    /// The DSN as given, with the password replaced by `***`: safe for logs.
    pub fn redacted(&self) -> String {
        self.redacted.clone()
    }
}

impl FromStr for SessionDsn {
    type Err = DsnError;

    fn from_str(text: &str) -> Result<Self, DsnError> {
        Self::parse(text)
    }
}

impl fmt::Display for SessionDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for SessionDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionDsn")
            .field("backend", &self.backend)
            .field("redacted", &self.redacted)
            .finish()
    }
}

impl RedisDsn {
    /// The `AUTH` password, for the client only: never log it.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The sentinels' `AUTH` password, for the client only: never log it.
    pub(crate) fn sentinel_password(&self) -> Option<&str> {
        self.sentinel_password.as_deref()
    }

    /// Whether the DSN carries an `AUTH` password; lets logs and `nene config`
    /// say so without showing it.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
}

impl fmt::Debug for RedisDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDsn")
            .field("address", &self.address)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "***"),
            )
            .field("options", &self.options)
            .finish()
    }
}

impl fmt::Display for RedisAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisAddress::Tcp { host, port, tls } => {
                if host.contains(':') {
                    write!(f, "[{host}]:{port}")?;
                } else {
                    write!(f, "{host}:{port}")?;
                }
                if *tls {
                    f.write_str(" (TLS)")?;
                }
                Ok(())
            }
            RedisAddress::Unix { path } => write!(f, "{}", path.display()),
            RedisAddress::Sentinel {
                sentinels, service, ..
            } => {
                write!(f, "the primary of `{service}` (sentinels ")?;
                write_hosts(f, sentinels)?;
                f.write_str(")")?;
                if self.tls() {
                    f.write_str(" (TLS)")?;
                }
                Ok(())
            }
            RedisAddress::Cluster { nodes, .. } => {
                f.write_str("the cluster of ")?;
                write_hosts(f, nodes)?;
                if self.tls() {
                    f.write_str(" (TLS)")?;
                }
                Ok(())
            }
        }
    }
}

/// `h1:p1,[::1]:p2`: hosts as a DSN lists them (IPv6 in brackets).
fn write_hosts(f: &mut fmt::Formatter<'_>, hosts: &[(String, u16)]) -> fmt::Result {
    for (at, (host, port)) in hosts.iter().enumerate() {
        let separator = if at == 0 { "" } else { "," };
        if host.contains(':') {
            write!(f, "{separator}[{host}]:{port}")?;
        } else {
            write!(f, "{separator}{host}:{port}")?;
        }
    }
    Ok(())
}

mod memcached;
mod parse;
mod redact;
mod sql;
mod sql_tls;

pub use memcached::{MemcachedDsn, MemcachedOptions};
use parse::Parser;
pub use redact::redact_dsn;
pub use sql::{SqlAddress, SqlDriver, SqlDsn, SqlOptions};
#[cfg_attr(
    not(any(feature = "mysql", feature = "postgres")),
    allow(unused_imports)
)]
pub(crate) use sql_tls::SqlTlsMode;

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(text: &str) -> RedisDsn {
        match SessionDsn::parse(text) {
            Ok(dsn) => dsn.redis().cloned().expect("a Redis DSN"),
            Err(error) => panic!("{text:?} did not parse: {error}"),
        }
    }

    fn tcp(host: &str, port: u16, tls: bool) -> RedisAddress {
        RedisAddress::Tcp {
            host: host.to_string(),
            port,
            tls,
        }
    }

    fn error(text: &str) -> DsnError {
        match SessionDsn::parse(text) {
            Ok(dsn) => panic!("{text:?} was accepted as {dsn:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn an_empty_dsn_means_file_sessions() {
        for text in ["", "   ", "\t\n", "files", "FILES"] {
            let dsn = SessionDsn::parse(text).unwrap();
            assert!(dsn.is_files(), "{text:?}");
            assert!(dsn.redis().is_none());
        }
    }

    #[test]
    fn the_compose_default_is_db_0_on_port_6379_with_default_options() {
        let dsn = redis("redis://redis:6379");
        assert_eq!(dsn.address, tcp("redis", 6379, false));
        assert_eq!(dsn.db, 0);
        assert_eq!(dsn.username, None);
        assert!(!dsn.has_password());
        assert_eq!(dsn.options, RedisOptions::default());
        assert_eq!(dsn.options.prefix, "sess_");
        assert_eq!(dsn.options.timeout, Duration::from_millis(500));
        assert_eq!(dsn.options.connect_timeout, Duration::from_secs(1));
        assert!(dsn.options.lock);
        assert_eq!(dsn.options.lock_ttl, Duration::from_secs(30));
        assert_eq!(dsn.options.lock_wait, Duration::from_secs(10));
        assert_eq!(dsn.options.tls_ca_file, None);
    }

    #[test]
    fn every_form_parses_to_its_address_db_and_credentials() {
        assert_eq!(
            redis("redis://localhost").address,
            tcp("localhost", 6379, false)
        );
        assert_eq!(redis("redis://localhost/").db, 0);
        assert_eq!(redis("redis://10.0.0.5:6380/3").db, 3);
        assert_eq!(
            redis("redis://10.0.0.5:6380/3").address,
            tcp("10.0.0.5", 6380, false)
        );
        assert_eq!(
            redis("REDIS://Cache.Example:7000").address,
            tcp("Cache.Example", 7000, false)
        );
        assert_eq!(redis("redis://h/65535").db, 65535);
        assert_eq!(
            redis("redis://[::1]:6390/2").address,
            tcp("::1", 6390, false)
        );
        assert_eq!(redis("redis://[::1]").address, tcp("::1", 6379, false));

        let with_user = redis("redis://app:s3cret@cache:6379/4");
        assert_eq!(with_user.username.as_deref(), Some("app"));
        assert_eq!(with_user.password(), Some("s3cret"));
        assert_eq!(with_user.db, 4);

        let password_only = redis("redis://:s3cret@cache:6379");
        assert_eq!(password_only.username, None);
        assert_eq!(password_only.password(), Some("s3cret"));
        assert_eq!(password_only.address, tcp("cache", 6379, false));

        let encoded = redis("redis://:p%40ss%2Fw%3Ard%25@cache");
        assert_eq!(encoded.password(), Some("p@ss/w:rd%"));
        let unencoded_at_and_colon = redis("redis://:p@ss:word@cache");
        assert_eq!(unencoded_at_and_colon.password(), Some("p@ss:word"));

        let tls = redis("rediss://:s3cret@cache.example:6380/1");
        assert_eq!(tls.address, tcp("cache.example", 6380, true));
        assert_eq!(tls.db, 1);
        assert_eq!(redis("rediss://cache").address, tcp("cache", 6379, true));

        for scheme in ["redis+unix", "unix"] {
            let socket = redis(&format!(
                "{scheme}:///run/redis/redis.sock?db=2&password=s%26cret&prefix=app_"
            ));
            assert_eq!(
                socket.address,
                RedisAddress::Unix {
                    path: PathBuf::from("/run/redis/redis.sock")
                }
            );
            assert_eq!(socket.db, 2);
            assert_eq!(socket.password(), Some("s&cret"));
            assert_eq!(socket.options.prefix, "app_");
        }
        let bare_socket = redis("redis+unix:///tmp/redis.sock");
        assert_eq!(bare_socket.db, 0);
        assert!(!bare_socket.has_password());
        let acl_socket = redis("unix:///tmp/redis.sock?username=app&password=x");
        assert_eq!(acl_socket.username.as_deref(), Some("app"));
    }

    #[test]
    fn options_override_the_defaults() {
        let dsn = redis(
            "rediss://cache:6380/1?prefix=shop_&timeout=250ms&connect_timeout=2s\
             &lock_suffix=_LOCK&lock=off&lock_ttl=1m&lock_wait=1s%20500ms&tls_ca_file=/etc/ssl/redis-ca.pem",
        );
        assert_eq!(
            dsn.options,
            RedisOptions {
                prefix: "shop_".to_string(),
                lock_suffix: "_LOCK".to_string(),
                timeout: Duration::from_millis(250),
                connect_timeout: Duration::from_secs(2),
                lock: false,
                lock_ttl: Duration::from_secs(60),
                lock_wait: Duration::from_millis(1500),
                tls_ca_file: Some(PathBuf::from("/etc/ssl/redis-ca.pem")),
                ..RedisOptions::default()
            }
        );
        assert_eq!(redis("redis://h?prefix=").options.prefix, "");
        assert_eq!(
            redis("redis://h?lock_wait=0s").options.lock_wait,
            Duration::ZERO
        );
        for on in ["on", "ON", "true", "1", "yes"] {
            assert!(redis(&format!("redis://h?lock={on}")).options.lock, "{on}");
        }
        for off in ["off", "Off", "false", "0", "no"] {
            assert!(
                !redis(&format!("redis://h?lock={off}")).options.lock,
                "{off}"
            );
        }
    }

    #[test]
    fn sentinel_dsns_list_their_sentinels_service_and_db() {
        let dsn = redis(
            "redis+sentinel://:s3cret@10.0.0.1:26380,[::1],sentinel-c/mymaster/2?sentinel_password=sp&sentinel_username=watch&wait=1&wait_timeout=2s",
        );
        assert_eq!(
            dsn.address,
            RedisAddress::Sentinel {
                sentinels: vec![
                    ("10.0.0.1".to_string(), 26380),
                    ("::1".to_string(), 26379),
                    ("sentinel-c".to_string(), 26379),
                ],
                service: "mymaster".to_string(),
                tls: false,
            }
        );
        assert_eq!(dsn.db, 2);
        assert_eq!(dsn.password(), Some("s3cret"));
        assert_eq!(dsn.sentinel_password(), Some("sp"));
        assert_eq!(dsn.options.sentinel_username.as_deref(), Some("watch"));
        assert_eq!(dsn.options.wait_replicas, 1);
        assert_eq!(dsn.options.wait_timeout, Duration::from_secs(2));
        assert_eq!(
            dsn.address.to_string(),
            "the primary of `mymaster` (sentinels 10.0.0.1:26380,[::1]:26379,sentinel-c:26379)"
        );
        let debug = format!("{dsn:?}");
        assert!(!debug.contains("sp\""), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let redacted =
            SessionDsn::parse("redis+sentinel://127.0.0.1/m?sentinel_password=topsecret")
                .unwrap()
                .redacted();
        assert!(!redacted.contains("topsecret"), "{redacted}");
    }

    #[test]
    fn cluster_dsns_list_their_seed_nodes() {
        let dsn =
            redis("redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2,[::1]:7002?prefix=s_&wait=1");
        assert_eq!(
            dsn.address,
            RedisAddress::Cluster {
                nodes: vec![
                    ("10.0.0.1".to_string(), 7000),
                    ("10.0.0.2".to_string(), 6379),
                    ("::1".to_string(), 7002),
                ],
                tls: false,
            }
        );
        assert_eq!(dsn.username.as_deref(), Some("app"));
        assert_eq!(dsn.password(), Some("pw"));
        assert_eq!(dsn.options.prefix, "s_");
        assert_eq!(
            dsn.address.to_string(),
            "the cluster of 10.0.0.1:7000,10.0.0.2:6379,[::1]:7002"
        );
        let message = error("redis+cluster://a:7000/3").to_string();
        assert!(message.contains("only db 0"), "{message}");
        let message = error("redis+cluster://a:7000?sentinel_password=x").to_string();
        assert!(
            message.contains("only applies to redis+sentinel://"),
            "{message}"
        );
        assert!(!message.contains("=x"), "{message}");
    }

    #[test]
    fn sentinel_and_cluster_speak_tls_with_rediss_and_take_a_ca_file() {
        let sentinel = redis("rediss+sentinel://10.0.0.1/mymaster?tls_ca_file=/etc/ca.pem");
        assert!(sentinel.address.tls());
        assert_eq!(
            sentinel.options.tls_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(
            sentinel.address.to_string(),
            "the primary of `mymaster` (sentinels 10.0.0.1:26379) (TLS)"
        );
        let cluster = redis("REDISS+CLUSTER://10.0.0.1:7000");
        assert!(cluster.address.tls());
        assert_eq!(
            cluster.address.to_string(),
            "the cluster of 10.0.0.1:7000 (TLS)"
        );
        for plain in ["redis+sentinel://h/m", "redis+cluster://h", "redis://h"] {
            assert!(!redis(plain).address.tls(), "{plain}");
            let message = SessionDsn::parse(&format!("{plain}?tls_ca_file=/ca.pem"))
                .unwrap_err()
                .to_string();
            assert!(message.contains("only applies to rediss://"), "{message}");
        }
    }

    #[test]
    fn sentinel_and_wait_mistakes_say_what_is_wrong() {
        for (text, expected) in [
            ("redis+sentinel://127.0.0.1:26379", "no service name"),
            ("redis+sentinel://127.0.0.1:26379/", "no service name"),
            ("redis+sentinel://127.0.0.1:0/m", "port `0`"),
            ("redis+sentinel://a,,b/m", "no host"),
            ("redis+sentinel://a/m/99999", "db `99999`"),
            (
                "redis://h?sentinel_username=x",
                "only applies to redis+sentinel://",
            ),
            ("redis://h?wait=-1", "a number of replicas"),
            ("redis://h?wait=65", "a number of replicas"),
            ("redis://h?wait=1&wait_timeout=0s", "a duration from 1ms"),
        ] {
            let message = error(text).to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
        assert_eq!(redis("redis://h?wait=0").options.wait_replicas, 0);
    }

    #[test]
    fn memory_takes_nothing_after_the_scheme() {
        for text in ["memory://", "MEMORY://", " memory:// "] {
            let dsn = SessionDsn::parse(text).unwrap();
            assert_eq!(dsn.backend(), &SessionBackend::Memory, "{text}");
        }
        for text in ["memory://host", "memory://?lock_wait=1s", "memory:/x"] {
            let error = error(text);
            assert!(
                matches!(error, DsnError::Malformed { .. }),
                "{text}: {error:?}"
            );
        }
        let message = error("memory://host").to_string();
        assert!(
            message.contains("sessions live in this process"),
            "{message}"
        );
    }

    #[test]
    fn unknown_schemes_are_refused_with_what_is_accepted() {
        for text in [
            "memcache://cache:11211",
            "mongodb://db/sessions",
            "http://redis:6379",
            "files://",
        ] {
            let error = error(text);
            assert!(
                matches!(error, DsnError::UnknownScheme { .. }),
                "{text}: {error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(text), "{message}");
            assert!(message.contains("redis://"), "{message}");
            assert!(message.contains("redis+unix://"), "{message}");
        }
        let typo = error("reddis://cache").to_string();
        assert!(typo.contains("did you mean `redis`?"), "{typo}");
        for text in ["redis:/x", "foo", "redis:cache:6379", "127.0.0.1:6379"] {
            let error = error(text);
            assert!(
                matches!(error, DsnError::Malformed { .. }),
                "{text}: {error:?}"
            );
            assert!(error.to_string().contains("accepted:"), "{error}");
        }
        assert!(error("redis:/x").to_string().contains("`//`"));
    }

    #[test]
    fn malformed_dsns_say_what_is_wrong() {
        for (text, says) in [
            ("redis://cache:notaport", "port `notaport`"),
            ("redis://cache:0", "port `0`"),
            ("redis://cache:65536", "port `65536`"),
            ("redis://cache:", "port ``"),
            ("redis://:6379", "no host"),
            ("redis://", "no host"),
            ("redis://ca che:6379", "not a host name"),
            ("redis://::1:6379", "IPv6 addresses go in brackets"),
            ("redis://[::1:6379", "closing `]`"),
            ("redis://cache/abc", "db `abc`"),
            ("redis://cache/-1", "db `-1`"),
            ("redis://cache/65536", "db `65536`"),
            ("redis://cache/1/2", "db `1/2`"),
            ("redis://cache/#insecure", "fragment"),
            ("redis://app@cache", "a user without a password"),
            ("redis://:@cache", "an empty password"),
            ("redis://cache?prefix=a&prefix=b", "given twice"),
            ("redis://cache?timeout", "has no value"),
            (
                "redis://cache?tls_ca_file=/ca.pem",
                "only applies to rediss://",
            ),
            ("redis+unix://run/redis.sock", "absolute path"),
            ("unix:///s.sock?db=x", "db `x`"),
            (
                "unix:///s.sock?username=app",
                "`username` without `password`",
            ),
        ] {
            let message = error(text).to_string();
            assert!(message.contains(says), "{text}: {message}");
        }
        for (text, says) in [
            ("redis://cache?timeout=fast", "`timeout` must be a duration"),
            ("redis://cache?timeout=500", "not `500`"),
            ("redis://cache?connect_timeout=0s", "from 1ms"),
            ("redis://cache?lock_ttl=0ms", "`lock_ttl`"),
            ("redis://cache?lock_wait=2d", "to 24h"),
            ("redis://cache?lock=maybe", "`on` or `off`"),
        ] {
            let error = error(text);
            assert!(
                matches!(error, DsnError::BadOptionValue { .. }),
                "{text}: {error:?}"
            );
            assert!(error.to_string().contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn unknown_options_suggest_the_closest_one() {
        let message = error("redis://cache?timout=1s").to_string();
        assert!(message.contains("unknown option `timout`"), "{message}");
        assert!(message.contains("did you mean `timeout`?"), "{message}");
        assert!(message.contains("lock_wait"), "{message}");
        let message = error("redis://cache?lockwait=1s").to_string();
        assert!(message.contains("did you mean `lock_wait`?"), "{message}");
        let message = error("redis://cache?db=3").to_string();
        assert!(message.contains("redis://host:port/db"), "{message}");
        let message = error("redis://cache?colour=blue").to_string();
        assert!(!message.contains("did you mean"), "{message}");
    }

    #[test]
    fn the_password_never_appears_in_errors_or_debug_output() {
        let dsns = [
            "redis://:hunter2@cache:notaport",
            "redis://app:hunter2@cache/abc",
            "redis://app:hunter2@cache?timeout=fast",
            "redis://app:hunter2@cache?timout=1s",
            "redis://:hunter2@cache?password=hunter2",
            "rediss://:hunter2@cache/1#insecure",
            "redis://:hun/ter2@cache",
            "redis://:hun?ter2@cache",
            "redis://:hunter2%@cache",
            "memcached://admin:hunter2@cache:11211",
            "mysql://root:hunter2@db/sessions?tabel=x",
            "postgres://root:hunter2@db/sessions?timeout=never",
            "mariadb://root:hunter2@db",
            "redis:/:hunter2@cache",
            "hunter2@cache",
            "unix:///run/redis.sock?password=hunter2&db=x",
            "unix:///run/redis.sock?password=hunter2&lock=maybe",
            "unix:///run/redis.sock?passwd=hunter2",
            "unix:///run/redis.sock?pasword=hunter2",
            "unix:///run/redis.sock?auth=hunter2",
            "redis://cache?password=hunter2",
        ];
        for text in dsns {
            let error = error(text);
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(!shown.contains("hunter2"), "{text} leaked: {shown}");
                assert!(!shown.contains("ter2"), "{text} leaked: {shown}");
                assert!(shown.contains("***"), "{text} was not masked: {shown}");
            }
            assert!(!redact_dsn(text).contains("ter2"), "{text}");
        }
        for text in [
            "redis://app:hunter2@cache:6379/1",
            "rediss://:hunter2@cache",
            "redis+unix:///run/redis.sock?password=hunter2",
            "redis://:hunter%32@cache",
        ] {
            let dsn = SessionDsn::parse(text).unwrap();
            for shown in [
                dsn.to_string(),
                dsn.redacted(),
                format!("{dsn:?}"),
                format!("{:?}", dsn.redis().unwrap()),
            ] {
                assert!(!shown.contains("hunter"), "{text} leaked: {shown}");
                assert!(shown.contains("***"), "{text} was not masked: {shown}");
            }
        }
    }

    #[test]
    fn redaction_keeps_everything_but_the_password() {
        assert_eq!(
            redact_dsn("redis://app:hunter2@cache:6379/1?prefix=x_"),
            "redis://app:***@cache:6379/1?prefix=x_"
        );
        assert_eq!(redact_dsn("redis://:hunter2@cache"), "redis://:***@cache");
        assert_eq!(redact_dsn("redis://cache:6379/2"), "redis://cache:6379/2");
        assert_eq!(
            redact_dsn("unix:///r.sock?db=1&password=hunter2&lock=off"),
            "unix:///r.sock?db=1&password=***"
        );
        assert_eq!(
            redact_dsn("redis+unix:///tmp/x.sock?password=abc&def&db=2"),
            "redis+unix:///tmp/x.sock?password=***"
        );
        assert_eq!(redact_dsn(""), "");
        assert_eq!(redact_dsn("foo"), "foo");
        assert_eq!(
            SessionDsn::parse(" redis://:pw@h ").unwrap().redacted(),
            " redis://:***@h "
        );
    }
}
