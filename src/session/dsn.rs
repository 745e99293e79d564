//! `SESSION_DSN` (env `NENE_SESSION_DSN`): which session backend to use and
//! how to reach it. Parsed once at start-up; a DSN nene does not understand
//! stops the process with a message that says what is accepted, and no
//! message or debug print ever shows the password.
//!
//! # Forms
//!
//! | DSN | backend |
//! | --- | --- |
//! | `` (empty or blanks) | files in `session.save_path`; no connection attempt |
//! | `redis://host[:port]` | Redis DB 0; the port defaults to 6379 |
//! | `redis://host[:port]/db` | Redis DB `db` (0-65535; a stock server has 16) |
//! | `redis://[user]:password@host[:port][/db]` | with `AUTH` (`user` is a Redis 6 ACL user; leave it out for `requirepass`) |
//! | `rediss://…` | any of the above over TLS |
//! | `redis+unix:///path/to/redis.sock` (or `unix:///…`) | a Unix socket; `db`, `password` and `username` go in the query: `?db=2&password=…` |
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
//! | `prefix` | `sess_` | key prefix: a session is stored under `{prefix}{id}`, its lock under `{prefix}{id}.lock` |
//! | `timeout` | `500ms` | longest wait for any one Redis command; past it the request fails with a 503 instead of hanging |
//! | `connect_timeout` | `1s` | longest wait for (re)connecting, on top of `timeout` |
//! | `lock` | `on` | `on`: one request at a time per session, like PHP's file handler; `off`: no locking (last write wins) |
//! | `lock_ttl` | `30s` | how long a lock outlives a holder that died without releasing it |
//! | `lock_wait` | `10s` | longest wait for a lock another request holds; then the request fails with a 503 |
//! | `tls_ca_file` | Mozilla's public roots | `rediss://` only: PEM file of the CA that signed the server's certificate (private CAs, self-signed test servers) |
//! | `db`, `password`, `username` | `0`, none, none | Unix socket form only (the TCP forms carry them in the URL) |

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// What the messages list as accepted DSNs.
const ACCEPTED: &str = "accepted: '' (file sessions), \
     redis://[[user]:password@]host[:port][/db][?options], \
     rediss://… (the same over TLS), \
     redis+unix:///path/to/redis.sock[?db=N&password=…&options]";

/// Options every Redis DSN takes.
const OPTIONS: &[&str] = &[
    "prefix",
    "timeout",
    "connect_timeout",
    "lock",
    "lock_ttl",
    "lock_wait",
    "tls_ca_file",
];

/// Options only the Unix socket form takes (the URL forms have a place for them).
const SOCKET_OPTIONS: &[&str] = &["db", "password", "username"];

const SCHEMES: &[&str] = &["redis", "rediss", "redis+unix", "unix"];

const DEFAULT_PORT: u16 = 6379;

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
    /// Boxed: it is much larger than `Files`.
    Redis(Box<RedisDsn>),
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
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "sess_".to_string(),
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            lock: true,
            lock_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(10),
            tls_ca_file: None,
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
            SessionBackend::Files => None,
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
        }
    }
}

/// `text` with anything that may be a password replaced by `***`: the
/// password of `scheme://user:password@…` (everything before the last `@`
/// when there is no `user:`), and the value of query parameters named like
/// a password. Works on text that does not parse, so start-up errors never
/// print a password; it masks too much rather than too little.
pub fn redact_dsn(text: &str) -> String {
    let split = match text.find("://") {
        Some(at) => at + 3,
        None => text.find(':').map_or(0, |at| at + 1),
    };
    let (head, rest) = text.split_at(split);
    let rest = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let masked = match userinfo.find(':') {
                Some(colon) => format!("{}:***", &userinfo[..colon]),
                None => "***".to_string(),
            };
            format!("{masked}{}", &rest[at..])
        }
        None => rest.to_string(),
    };
    let text = format!("{head}{rest}");
    match text.split_once('?') {
        Some((before, query)) => {
            // Once a secret key is seen, the rest of the query is masked
            // too: a password with an unencoded `&` (`password=abc&def`)
            // would otherwise show its tail as the next "option".
            let mut shown = Vec::new();
            for pair in query.split('&') {
                match pair.split_once('=') {
                    Some((key, _)) if is_secret_name(key) => {
                        shown.push(format!("{key}=***"));
                        break;
                    }
                    _ => shown.push(pair.to_string()),
                }
            }
            format!("{before}?{}", shown.join("&"))
        }
        None => text,
    }
}

/// Whether a query parameter is (or is a misspelling of) one whose value is secret.
fn is_secret_name(key: &str) -> bool {
    let key = percent_decode(key)
        .unwrap_or_else(|| key.to_string())
        .to_ascii_lowercase();
    ["pass", "pwd", "secret", "auth", "token"]
        .iter()
        .any(|word| key.contains(word))
        || strsim::jaro_winkler(&key, "password") > 0.8
}

/// ` (did you mean x?)` for the candidate closest to `unknown`, if close enough to be a typo.
fn did_you_mean(unknown: &str, candidates: &[&str]) -> String {
    crate::config::closest(unknown, candidates.iter().copied())
        .map(|candidate| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default()
}

/// Decodes `%XX` escapes; `None` when an escape is broken or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One parse, carrying the redacted DSN every error names.
struct Parser<'a> {
    dsn: &'a str,
}

impl Parser<'_> {
    fn malformed(&self, problem: impl Into<String>) -> DsnError {
        DsnError::Malformed {
            dsn: self.dsn.to_string(),
            problem: problem.into(),
        }
    }

    fn parse(&self, text: &str) -> Result<SessionBackend, DsnError> {
        if text.is_empty() {
            return Ok(SessionBackend::Files);
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            let scheme = text.split(':').next().unwrap_or_default();
            if text.contains(':') && SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
                return Err(self.malformed(format!(
                    "`{scheme}:` must be followed by `//` (e.g. {scheme}://host:port)"
                )));
            }
            return Err(self.malformed("no scheme"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" => self.tcp(rest, false),
            "rediss" => self.tcp(rest, true),
            "redis+unix" | "unix" => self.unix(rest),
            _ => Err(DsnError::UnknownScheme {
                dsn: self.dsn.to_string(),
                scheme: scheme.to_string(),
                hint: did_you_mean(&scheme.to_ascii_lowercase(), SCHEMES),
            }),
        }
    }

    /// `redis://[[user]:password@]host[:port][/db][?options]`
    fn tcp(&self, rest: &str, tls: bool) -> Result<SessionBackend, DsnError> {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        if rest.contains('@') {
            return Err(self.malformed(
                "an `@` after the host: percent-encode reserved characters in the password \
                 (`/` → %2F, `?` → %3F, `#` → %23, `@` → %40)",
            ));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(userinfo) => self.credentials(userinfo)?,
            None => (None, None),
        };
        let (host, port) = self.host_port(hostport)?;
        let (path, query) = self.split_query(rest)?;
        let db = match path {
            "" | "/" => 0,
            path => self.db(&path[1..])?,
        };
        let mut dsn = RedisDsn {
            address: RedisAddress::Tcp { host, port, tls },
            db,
            username,
            password,
            options: RedisOptions::default(),
        };
        self.options(query, &mut dsn, false)?;
        Ok(SessionBackend::Redis(Box::new(dsn)))
    }

    /// `redis+unix:///path/to/redis.sock[?db=N&password=…&options]`
    fn unix(&self, rest: &str) -> Result<SessionBackend, DsnError> {
        let (path, query) = self.split_query(rest)?;
        if !path.starts_with('/') {
            return Err(self.malformed(
                "a Unix socket needs an absolute path, e.g. redis+unix:///run/redis/redis.sock",
            ));
        }
        let path = percent_decode(path)
            .ok_or_else(|| self.malformed("broken percent-encoding in the socket path"))?;
        let mut dsn = RedisDsn {
            address: RedisAddress::Unix {
                path: PathBuf::from(path),
            },
            db: 0,
            username: None,
            password: None,
            options: RedisOptions::default(),
        };
        self.options(query, &mut dsn, true)?;
        if dsn.username.is_some() && dsn.password.is_none() {
            return Err(self.malformed("`username` without `password`"));
        }
        Ok(SessionBackend::Redis(Box::new(dsn)))
    }

    /// Splits `path?query`, refusing `#fragments`.
    fn split_query<'t>(&self, rest: &'t str) -> Result<(&'t str, &'t str), DsnError> {
        if rest.contains('#') {
            return Err(
                self.malformed("a `#…` fragment; options go in the query (?option=value&…)")
            );
        }
        Ok(rest.split_once('?').unwrap_or((rest, "")))
    }

    /// `user:password` or `:password` (percent-encoded).
    fn credentials(&self, userinfo: &str) -> Result<(Option<String>, Option<String>), DsnError> {
        let Some((user, password)) = userinfo.split_once(':') else {
            return Err(self.malformed(
                "a user without a password: write redis://user:password@host, \
                 or redis://:password@host for requirepass",
            ));
        };
        let user = percent_decode(user)
            .ok_or_else(|| self.malformed("broken percent-encoding in the user name"))?;
        let password = percent_decode(password)
            .ok_or_else(|| self.malformed("broken percent-encoding in the password"))?;
        if password.is_empty() {
            return Err(self.malformed("an empty password"));
        }
        Ok(((!user.is_empty()).then_some(user), Some(password)))
    }

    /// `host`, `host:port`, `[v6]`, `[v6]:port`.
    fn host_port(&self, text: &str) -> Result<(String, u16), DsnError> {
        let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| self.malformed("an IPv6 host without its closing `]`"))?;
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return Err(self.malformed(format!("`[{host}]` is not an IPv6 address")));
            }
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or_else(|| {
                    self.malformed(format!("`{after}` after the IPv6 host; expected `:port`"))
                })?),
            };
            (host, port)
        } else if text.matches(':').count() > 1 {
            return Err(self.malformed(format!(
                "`{text}` has several `:`; IPv6 addresses go in brackets: redis://[::1]:6379"
            )));
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return Err(self.malformed("no host"));
        }
        if !text.starts_with('[')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(self.malformed(format!(
                "`{host}` is not a host name or address (IPv6 addresses go in brackets)"
            )));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| {
                    self.malformed(format!("port `{port}` is not a number from 1 to 65535"))
                })?,
        };
        Ok((host.to_string(), port))
    }

    fn db(&self, text: &str) -> Result<u16, DsnError> {
        text.parse::<u16>().map_err(|_| {
            self.malformed(format!(
                "db `{text}` is not a number from 0 to 65535 (a stock Redis has 0 to 15)"
            ))
        })
    }

    /// Applies `key=value&…` to `dsn`.
    fn options(&self, query: &str, dsn: &mut RedisDsn, socket: bool) -> Result<(), DsnError> {
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(raw_key)
                .ok_or_else(|| self.malformed("broken percent-encoding in an option name"))?;
            let secret = is_secret_name(&key);
            let value = percent_decode(raw_value).ok_or_else(|| {
                self.malformed(format!("broken percent-encoding in the value of `{key}`"))
            })?;
            if seen.contains(&key) {
                return Err(self.malformed(format!("option `{key}` is given twice")));
            }
            // Only the prefix may be empty (keys are then the bare ids).
            if value.is_empty() && key != "prefix" {
                let known = OPTIONS.contains(&key.as_str())
                    || socket && SOCKET_OPTIONS.contains(&key.as_str());
                return Err(if known {
                    self.malformed(format!("option `{key}` has no value"))
                } else {
                    self.unknown_option(&key, socket)
                });
            }
            let options = &mut dsn.options;
            match key.as_str() {
                "prefix" => {
                    if value.chars().any(char::is_control) {
                        return Err(self.bad_value("prefix", &value, "free of control characters"));
                    }
                    options.prefix = value;
                }
                "timeout" => options.timeout = self.duration("timeout", &value, false)?,
                "connect_timeout" => {
                    options.connect_timeout = self.duration("connect_timeout", &value, false)?;
                }
                "lock" => {
                    options.lock = match value.to_ascii_lowercase().as_str() {
                        "on" | "1" | "true" | "yes" => true,
                        "off" | "0" | "false" | "no" => false,
                        _ => return Err(self.bad_value("lock", &value, "`on` or `off`")),
                    };
                }
                "lock_ttl" => options.lock_ttl = self.duration("lock_ttl", &value, false)?,
                "lock_wait" => options.lock_wait = self.duration("lock_wait", &value, true)?,
                "tls_ca_file" => {
                    if !matches!(dsn.address, RedisAddress::Tcp { tls: true, .. }) {
                        return Err(self.malformed("`tls_ca_file` only applies to rediss://"));
                    }
                    options.tls_ca_file = Some(PathBuf::from(value));
                }
                "db" if socket => dsn.db = self.db(&value)?,
                "password" if socket => dsn.password = Some(value),
                "username" if socket => dsn.username = Some(value),
                _ if secret && !socket => {
                    return Err(self.malformed(format!(
                        "option `{key}`: for redis:// the password goes before the host \
                         (redis://:password@host:port)"
                    )));
                }
                _ => return Err(self.unknown_option(&key, socket)),
            }
            seen.push(key);
        }
        Ok(())
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

    fn bad_value(&self, option: &'static str, value: &str, expected: &'static str) -> DsnError {
        DsnError::BadOptionValue {
            dsn: self.dsn.to_string(),
            option,
            value: value.to_string(),
            expected,
        }
    }

    /// A humantime duration within bounds; zero only where `zero_ok`.
    fn duration(
        &self,
        option: &'static str,
        value: &str,
        zero_ok: bool,
    ) -> Result<Duration, DsnError> {
        let expected = if zero_ok {
            "a duration from 0ms to 24h, such as 500ms or 2s"
        } else {
            "a duration from 1ms to 24h, such as 500ms or 2s"
        };
        let duration = humantime::parse_duration(value)
            .map_err(|_| self.bad_value(option, value, expected))?;
        let least = if zero_ok {
            Duration::ZERO
        } else {
            Duration::from_millis(1)
        };
        if duration < least || duration > MAX_DURATION {
            return Err(self.bad_value(option, value, expected));
        }
        Ok(duration)
    }
}

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
        for text in ["", "   ", "\t\n"] {
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
             &lock=off&lock_ttl=1m&lock_wait=1s%20500ms&tls_ca_file=/etc/ssl/redis-ca.pem",
        );
        assert_eq!(
            dsn.options,
            RedisOptions {
                prefix: "shop_".to_string(),
                timeout: Duration::from_millis(250),
                connect_timeout: Duration::from_secs(2),
                lock: false,
                lock_ttl: Duration::from_secs(60),
                lock_wait: Duration::from_millis(1500),
                tls_ca_file: Some(PathBuf::from("/etc/ssl/redis-ca.pem")),
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
    fn unknown_schemes_are_refused_with_what_is_accepted() {
        for text in [
            "memcached://cache:11211",
            "mysql://db/sessions",
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
            "mysql://root:hunter2@db/sessions",
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
