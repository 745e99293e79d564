//! Redis DSNs (`redis://`, `rediss://`, `redis+unix://`, `redis+sentinel://`,
//! `redis+cluster://` and their TLS forms): where the server, sentinels or
//! cluster are, and the options below. Parsed in every build, so that a DSN
//! for a form this build left out (Cluster, TLS) names the feature.
//!
//! # Forms
//!
//! | DSN | backend |
//! | --- | --- |
//! | `redis://host[:port]` | Redis DB 0; the port defaults to 6379 |
//! | `redis://host[:port]/db` | Redis DB `db` (0-65535; a stock server has 16) |
//! | `redis://[user]:password@host[:port][/db]` | with `AUTH` (`user` is a Redis 6 ACL user; leave it out for `requirepass`) |
//! | `rediss://…` | any of the above over TLS |
//! | `redis+unix:///path/to/redis.sock` (or `unix:///…`) | a Unix socket; `db`, `password` and `username` go in the query: `?db=2&password=…` |
//! | `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/SERVICE[/db]` | the primary of SERVICE, asked of these sentinels (port 26379 by default); user, password and db are the data nodes' |
//! | `redis+cluster://[[user]:password@]host[:port][,host[:port]…]` | a Redis Cluster, found from these seed nodes; keys carry the id as a hash tag (`sess_{id}`) so a session and its lock share a slot |
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

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::session::backend::dsn::{
    Credentials, DsnError, Parser, SessionBackend, did_you_mean, is_secret_name, percent_decode,
};

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

/// The schemes of Redis DSNs, for the factory's table.
pub(crate) const SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis+unix",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
];

/// The forms the start-up error lists as accepted.
pub(crate) const FORMS: &[&str] = &[
    "redis://[[user]:password@]host[:port][/db][?options]",
    "rediss://… (the same over TLS)",
    "redis+unix:///path/to/redis.sock[?db=N&password=…&options]",
    "redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/SERVICE[/db][?options]",
    "redis+cluster://[[user]:password@]host[:port][,host[:port]…][?options]",
];

/// Redis' own port.
const DEFAULT_PORT: u16 = 6379;

/// Redis Sentinel's own port.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

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

/// Parses what follows the scheme of a Redis DSN (`scheme` lowercased):
/// the factory's parser for Redis.
pub(crate) fn parse(
    parser: &Parser<'_>,
    scheme: &str,
    rest: &str,
) -> Result<SessionBackend, DsnError> {
    let tls = scheme.starts_with("rediss");
    let dsn = match scheme {
        "redis+unix" | "unix" => parser.unix(rest)?,
        "redis+sentinel" | "rediss+sentinel" => parser.sentinel(rest, tls)?,
        "redis+cluster" | "rediss+cluster" => parser.cluster(rest, tls)?,
        _ => parser.tcp(rest, tls)?,
    };
    Ok(SessionBackend::Redis(Box::new(dsn)))
}

impl Parser<'_> {
    /// `redis://[[user]:password@]host[:port][/db][?options]`
    fn tcp(&self, rest: &str, tls: bool) -> Result<RedisDsn, DsnError> {
        let authority = self.authority(rest, "host")?;
        let (host, port) = self.host_port(authority.hosts, DEFAULT_PORT)?;
        let (path, query) = self.split_query(authority.rest)?;
        let db = match path {
            "" | "/" => 0,
            path => self.db(&path[1..])?,
        };
        let address = RedisAddress::Tcp { host, port, tls };
        self.redis_dsn(address, db, authority.credentials, query)
    }

    /// `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/SERVICE[/db][?options]`:
    /// the sentinels to ask for the primary of SERVICE (port 26379 when not
    /// given); the credentials and db are the data nodes'. With `tls`
    /// (`rediss+sentinel://`) the sentinels and the primary are spoken to
    /// over TLS.
    fn sentinel(&self, rest: &str, tls: bool) -> Result<RedisDsn, DsnError> {
        let authority = self.authority(rest, "hosts")?;
        let sentinels = self.host_list(authority.hosts, DEFAULT_SENTINEL_PORT)?;
        let (path, query) = self.split_query(authority.rest)?;
        let mut segments = path.trim_start_matches('/').splitn(2, '/');
        let service = segments.next().unwrap_or_default();
        if service.is_empty() {
            return Err(self.malformed(
                "no service name: redis+sentinel://host:26379/SERVICE (the name in `sentinel monitor SERVICE …`)",
            ));
        }
        let service = percent_decode(service)
            .ok_or_else(|| self.malformed("broken percent-encoding in the service name"))?;
        let db = match segments.next() {
            None | Some("") => 0,
            Some(db) => self.db(db)?,
        };
        let address = RedisAddress::Sentinel {
            sentinels,
            service,
            tls,
        };
        self.redis_dsn(address, db, authority.credentials, query)
    }

    /// `redis+cluster://[[user]:password@]host[:port][,host[:port]…][?options]`:
    /// seed nodes of a Redis Cluster, which has only db 0. With `tls`
    /// (`rediss+cluster://`) every node is spoken to over TLS.
    fn cluster(&self, rest: &str, tls: bool) -> Result<RedisDsn, DsnError> {
        let authority = self.authority(rest, "hosts")?;
        let nodes = self.host_list(authority.hosts, DEFAULT_PORT)?;
        let (path, query) = self.split_query(authority.rest)?;
        if !matches!(path, "" | "/" | "/0") {
            return Err(self.malformed("a Redis Cluster has only db 0: leave the path out"));
        }
        let address = RedisAddress::Cluster { nodes, tls };
        self.redis_dsn(address, 0, authority.credentials, query)
    }

    /// `redis+unix:///path/to/redis.sock[?db=N&password=…&options]`
    fn unix(&self, rest: &str) -> Result<RedisDsn, DsnError> {
        let (path, query) = self.split_query(rest)?;
        if !path.starts_with('/') {
            return Err(self.malformed(
                "a Unix socket needs an absolute path, e.g. redis+unix:///run/redis/redis.sock",
            ));
        }
        let path = percent_decode(path)
            .ok_or_else(|| self.malformed("broken percent-encoding in the socket path"))?;
        let address = RedisAddress::Unix {
            path: PathBuf::from(path),
        };
        let dsn = self.redis_dsn(address, 0, Credentials::default(), query)?;
        if dsn.username.is_some() && dsn.password.is_none() {
            return Err(self.malformed("`username` without `password`"));
        }
        Ok(dsn)
    }

    /// The DSN of a Redis at `address`, with the options of `query` on top
    /// of the defaults.
    fn redis_dsn(
        &self,
        address: RedisAddress,
        db: u16,
        credentials: Credentials,
        query: &str,
    ) -> Result<RedisDsn, DsnError> {
        let mut dsn = RedisDsn {
            address,
            db,
            username: credentials.username,
            password: credentials.password,
            sentinel_password: None,
            options: RedisOptions::default(),
        };
        self.options(query, &mut dsn)?;
        Ok(dsn)
    }

    fn db(&self, text: &str) -> Result<u16, DsnError> {
        text.parse::<u16>().map_err(|_| {
            self.malformed(format!(
                "db `{text}` is not a number from 0 to 65535 (a stock Redis has 0 to 15)"
            ))
        })
    }

    /// Applies `key=value&…` to `dsn`; the Unix socket form also takes the
    /// db and credentials there.
    fn options(&self, query: &str, dsn: &mut RedisDsn) -> Result<(), DsnError> {
        let socket = matches!(dsn.address, RedisAddress::Unix { .. });
        let known = |key: &str| OPTIONS.contains(&key) || socket && SOCKET_OPTIONS.contains(&key);
        let unknown = |key: &str| self.unknown_option(key, socket);
        for (key, value) in self.option_pairs(query, known, unknown)? {
            let options = &mut dsn.options;
            match key.as_str() {
                "prefix" => options.prefix = self.free_of_control("prefix", value)?,
                "lock_suffix" => {
                    options.lock_suffix = self.free_of_control("lock_suffix", value)?
                }
                "timeout" => options.timeout = self.duration("timeout", &value, false)?,
                "connect_timeout" => {
                    options.connect_timeout = self.duration("connect_timeout", &value, false)?;
                }
                "lock" => options.lock = self.on_off("lock", &value)?,
                "lock_ttl" => options.lock_ttl = self.duration("lock_ttl", &value, false)?,
                "lock_wait" => options.lock_wait = self.duration("lock_wait", &value, true)?,
                "tls_ca_file" => {
                    if !dsn.address.tls() {
                        return Err(self.malformed(
                            "`tls_ca_file` only applies to rediss://, rediss+sentinel:// and rediss+cluster://",
                        ));
                    }
                    options.tls_ca_file = Some(PathBuf::from(value));
                }
                "wait" => {
                    options.wait_replicas = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n <= 64)
                        .ok_or_else(|| {
                            self.bad_value(
                                "wait",
                                &value,
                                "a number of replicas from 0 (off) to 64",
                            )
                        })?;
                }
                "wait_timeout" => {
                    options.wait_timeout = self.duration("wait_timeout", &value, false)?;
                }
                "sentinel_username" | "sentinel_password"
                    if !matches!(dsn.address, RedisAddress::Sentinel { .. }) =>
                {
                    return Err(
                        self.malformed(format!("`{key}` only applies to redis+sentinel://"))
                    );
                }
                "sentinel_username" => options.sentinel_username = Some(value),
                "sentinel_password" => dsn.sentinel_password = Some(value),
                "db" if socket => dsn.db = self.db(&value)?,
                "password" if socket => dsn.password = Some(value),
                "username" if socket => dsn.username = Some(value),
                _ if is_secret_name(&key) && !socket => {
                    return Err(self.malformed(format!(
                        "option `{key}`: for redis:// the password goes before the host \
                         (redis://:password@host:port)"
                    )));
                }
                _ => return Err(self.unknown_option(&key, socket)),
            }
        }
        Ok(())
    }

    /// A key part (prefix, lock suffix): any text but control characters.
    fn free_of_control(&self, option: &'static str, value: String) -> Result<String, DsnError> {
        if value.chars().any(char::is_control) {
            return Err(self.bad_value(option, &value, "free of control characters"));
        }
        Ok(value)
    }

    fn unknown_option(&self, key: &str, socket: bool) -> DsnError {
        let mut accepted: Vec<&str> = OPTIONS.to_vec();
        if socket {
            accepted.extend_from_slice(SOCKET_OPTIONS);
        }
        let hint = match did_you_mean(key, &accepted) {
            hint if !hint.is_empty() => hint,
            _ if !socket && SOCKET_OPTIONS.contains(&key) => {
                " (for redis:// the db goes in the path: redis://host:port/db)".to_string()
            }
            _ => String::new(),
        };
        DsnError::UnknownOption {
            dsn: self.dsn.to_string(),
            option: key.to_string(),
            hint,
            accepted: accepted.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::backend::dsn::SessionDsn;
    use crate::session::backend::dsn::tests::{parsed, refused as error};

    fn redis(text: &str) -> RedisDsn {
        parsed(text).redis().cloned().expect("a Redis DSN")
    }

    fn tcp(host: &str, port: u16, tls: bool) -> RedisAddress {
        RedisAddress::Tcp {
            host: host.to_string(),
            port,
            tls,
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
}
