//! `SESSION_DSN` (env `NENE_SESSION_DSN`): which session backend to use and
//! how to reach it. Parsed once at start-up; a DSN nene does not understand
//! stops the process with a message that says what is accepted, and no
//! message or debug print ever shows the password.
//!
//! This module is what every DSN shares: [`SessionDsn`], the errors, the
//! parser's common parts (`parse.rs`: credentials, hosts, query options,
//! durations) and the masking of passwords (`redact.rs`). Which schemes
//! exist, and what each backend's DSN holds, is the backends' own: the
//! factory's table (`factory.rs`) names each backend's schemes and parser,
//! and the parser lives in the backend's folder (`redis/dsn.rs`,
//! `memcached/dsn.rs`, `sql/dsn.rs`), compiled in every build so that a DSN
//! for a backend this build left out is recognised and the missing feature
//! named.
//!
//! # Forms
//!
//! | DSN | backend |
//! | --- | --- |
//! | `` (empty or blanks), or `files` | files in `session.save_path`; no connection attempt |
//! | `memory://` | this process's memory (tests, trying nene out) |
//! | `redis://…`, `rediss://…`, `redis+unix://…`, `redis+sentinel://…`, `redis+cluster://…` | Redis; forms and options in `redis/dsn.rs` |
//! | `memcached://host[:port][,host[:port]…]` | memcached; options in `memcached/dsn.rs` |
//! | `sqlite://…`, `mysql://…` (`mariadb://…`), `postgres://…` (`postgresql://…`) | a SQL table; forms and options in `sql/dsn.rs` |
//!
//! IPv6 hosts go in brackets (`redis://[::1]:6379`). A password with
//! reserved characters is percent-encoded (`@` → `%40`, `/` → `%2F`,
//! `:` → `%3A`, `?` → `%3F`, `#` → `%23`, `%` → `%25`). Durations use
//! humantime syntax: `250ms`, `2s`, `1m 30s`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::session::backend::factory::{BACKENDS, BackendKind};
use crate::session::backend::memcached::MemcachedDsn;
use crate::session::backend::redis::RedisDsn;
use crate::session::backend::sql::SqlDsn;

mod parse;
mod redact;

pub(crate) use parse::{Credentials, Parser, did_you_mean, percent_decode, port_number};
pub(crate) use redact::is_secret_name;
pub use redact::redact_dsn;

/// The longest duration an option accepts; more is surely a typo.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A parsed `SESSION_DSN`.
#[derive(Clone)]
pub struct SessionDsn {
    /// Which backend, and how to reach it.
    backend: SessionBackend,
    /// The factory's row for it.
    kind: &'static BackendKind,
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
    /// SQLite, MySQL/MariaDB or PostgreSQL; boxed likewise.
    Sql(Box<SqlDsn>),
}

/// What the messages list as accepted: every backend's forms.
fn accepted_forms() -> String {
    let forms: Vec<&str> = BACKENDS
        .iter()
        .flat_map(|kind| kind.forms.iter().copied())
        .collect();
    format!("accepted: {}", forms.join(", "))
}

/// A DSN nene cannot use. Every variant names the DSN with its password
/// replaced by `***`, and says what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum DsnError {
    /// The DSN has a `scheme://` no backend takes.
    #[error(
        "SESSION_DSN `{dsn}`: unknown scheme `{scheme}`{hint}; {}",
        accepted_forms()
    )]
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
    #[error("SESSION_DSN `{dsn}`: {problem}; {}", accepted_forms())]
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
        let (kind, backend) = Parser { dsn: &redacted }.parse(text.trim())?;
        Ok(Self {
            backend,
            kind,
            redacted,
        })
    }

    /// The backend the DSN selects, with its connection details.
    pub fn backend(&self) -> &SessionBackend {
        &self.backend
    }

    /// The factory's row for the backend.
    pub(crate) fn kind(&self) -> &'static BackendKind {
        self.kind
    }

    /// The Redis settings, when the DSN names Redis.
    pub fn redis(&self) -> Option<&RedisDsn> {
        let SessionBackend::Redis(redis) = &self.backend else {
            return None;
        };
        Some(redis)
    }

    /// The memcached settings, when the DSN names memcached.
    pub fn memcached(&self) -> Option<&MemcachedDsn> {
        let SessionBackend::Memcached(memcached) = &self.backend else {
            return None;
        };
        Some(memcached)
    }

    /// The SQL settings, for `sqlite://`, `mysql://` and `postgres://` DSNs.
    pub fn sql(&self) -> Option<&SqlDsn> {
        let SessionBackend::Sql(sql) = &self.backend else {
            return None;
        };
        Some(sql)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What `text` parses to; a panic naming it when it does not.
    pub(crate) fn parsed(text: &str) -> SessionDsn {
        SessionDsn::parse(text).unwrap_or_else(|error| panic!("{text:?} did not parse: {error}"))
    }

    /// Why `text` is refused; a panic naming what it was taken for when
    /// it is not.
    pub(crate) fn refused(text: &str) -> DsnError {
        match SessionDsn::parse(text) {
            Ok(dsn) => panic!("{text:?} was accepted as {dsn:?}"),
            Err(error) => error,
        }
    }

    /// [`refused`]'s message.
    pub(crate) fn refusal(text: &str) -> String {
        refused(text).to_string()
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
    fn memory_takes_nothing_after_the_scheme() {
        for text in ["memory://", "MEMORY://", " memory:// "] {
            let dsn = SessionDsn::parse(text).unwrap();
            assert_eq!(dsn.backend(), &SessionBackend::Memory, "{text}");
        }
        for text in ["memory://host", "memory://?lock_wait=1s", "memory:/x"] {
            let error = refused(text);
            assert!(
                matches!(error, DsnError::Malformed { .. }),
                "{text}: {error:?}"
            );
        }
        let message = refused("memory://host").to_string();
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
            let error = refused(text);
            assert!(
                matches!(error, DsnError::UnknownScheme { .. }),
                "{text}: {error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(text), "{message}");
            assert!(message.contains("redis://"), "{message}");
            assert!(message.contains("redis+unix://"), "{message}");
        }
        let typo = refused("reddis://cache").to_string();
        assert!(typo.contains("did you mean `redis`?"), "{typo}");
        for text in ["redis:/x", "foo", "redis:cache:6379", "127.0.0.1:6379"] {
            let error = refused(text);
            assert!(
                matches!(error, DsnError::Malformed { .. }),
                "{text}: {error:?}"
            );
            assert!(error.to_string().contains("accepted:"), "{error}");
        }
        assert!(refused("redis:/x").to_string().contains("`//`"));
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
            let error = refused(text);
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
        for (dsn, shown) in [
            (
                "redis://app:hunter2@cache:6379/1?prefix=x_",
                "redis://app:***@cache:6379/1?prefix=x_",
            ),
            ("redis://:hunter2@cache", "redis://:***@cache"),
            ("redis://cache:6379/2", "redis://cache:6379/2"),
            (
                "unix:///r.sock?db=1&password=hunter2&lock=off",
                "unix:///r.sock?db=1&password=***",
            ),
            (
                "redis+unix:///tmp/x.sock?password=abc&def&db=2",
                "redis+unix:///tmp/x.sock?password=***",
            ),
            ("", ""),
            ("foo", "foo"),
        ] {
            assert_eq!(redact_dsn(dsn), shown, "{dsn}");
        }
        assert_eq!(
            SessionDsn::parse(" redis://:pw@h ").unwrap().redacted(),
            " redis://:***@h "
        );
    }
}
