//! `memcached://host[:port][,host[:port]…][?options]`: the memcached servers
//! sessions are spread over (ketama, as libmemcached places keys) and the
//! options of the table in the parent module's documentation. memcached has
//! no passwords here: nene does not speak SASL, so a DSN with `user:pass@`
//! is refused rather than silently connecting without them.

use std::time::Duration;

use crate::session::backend::dsn::{DsnError, Parser, SessionBackend, did_you_mean};

/// The scheme of memcached DSNs, for the factory's table.
pub(crate) const SCHEMES: &[&str] = &["memcached"];

/// The form the start-up error lists as accepted.
pub(crate) const FORMS: &[&str] = &["memcached://host[:port][,host[:port]…][?options]"];

/// memcached's own port.
const DEFAULT_MEMCACHED_PORT: u16 = 11211;

/// Options every memcached DSN takes.
const MEMCACHED_OPTIONS: &[&str] = &[
    "prefix",
    "lock_prefix",
    "timeout",
    "connect_timeout",
    "lock",
    "lock_ttl",
    "lock_wait",
];

/// memcached's longest key is 250 bytes; a lock key is the prefix, the lock
/// prefix and an id of up to 128 characters (`SessionId::from_store`'s
/// bound), so each prefix gets 60 (128 + 2 × 60 = 248).
const MAX_PREFIX_BYTES: usize = 60;

/// Where the memcached servers are and how to use them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemcachedDsn {
    /// Host (IPv6 without brackets) and port of each server, in DSN order; a
    /// session lives on the one ketama picks for its id.
    pub servers: Vec<(String, u16)>,
    /// The query options.
    pub options: MemcachedOptions,
}

/// The options of a memcached DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemcachedOptions {
    /// Prepended to the session id to make the key (`sess_`; PHP's
    /// memcached extension uses `memc.sess.key.`). Like libmemcached's
    /// namespace, it is not part of what picks the server.
    pub prefix: String,
    /// Put between the prefix and the id to name a session's lock key:
    /// `lock.`, as PHP's memcached extension names its locks, so that the
    /// two share them when they share the prefix.
    pub lock_prefix: String,
    /// Bound on every command: a stalled memcached becomes an error, not a hang.
    pub timeout: Duration,
    /// Bound on opening a connection, on top of `timeout`.
    pub connect_timeout: Duration,
    /// Whether requests of one session take turns.
    pub lock: bool,
    /// Expiry of a lock, so that a crashed holder does not lock the session forever.
    pub lock_ttl: Duration,
    /// How long a request waits for a lock before it gives up.
    pub lock_wait: Duration,
}

impl Default for MemcachedOptions {
    fn default() -> Self {
        Self {
            prefix: "sess_".to_string(),
            lock_prefix: "lock.".to_string(),
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            lock: true,
            lock_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(10),
        }
    }
}

/// Parses what follows `memcached://`: the factory's parser for memcached.
pub(crate) fn parse(
    parser: &Parser<'_>,
    _scheme: &str,
    rest: &str,
) -> Result<SessionBackend, DsnError> {
    parser.memcached(rest)
}

impl Parser<'_> {
    /// `memcached://host[:port][,host[:port]…][?options]`
    fn memcached(&self, rest: &str) -> Result<SessionBackend, DsnError> {
        let authority = self.authority(rest, "hosts")?;
        if authority.credentials.username.is_some() || authority.credentials.password.is_some() {
            return Err(self.malformed(
                "memcached:// takes no user or password (nene does not speak SASL); \
                 keep memcached on a private network instead",
            ));
        }
        let servers = self.host_list(authority.hosts, DEFAULT_MEMCACHED_PORT)?;
        let (path, query) = self.split_query(authority.rest)?;
        if !matches!(path, "" | "/") {
            return Err(self.malformed(format!(
                "`{path}` after the hosts: memcached has no databases; leave the path out"
            )));
        }
        let mut options = MemcachedOptions::default();
        self.memcached_options(query, &mut options)?;
        Ok(SessionBackend::Memcached(Box::new(MemcachedDsn {
            servers,
            options,
        })))
    }

    /// Applies `key=value&…` to `options`.
    fn memcached_options(
        &self,
        query: &str,
        options: &mut MemcachedOptions,
    ) -> Result<(), DsnError> {
        let known = |key: &str| MEMCACHED_OPTIONS.contains(&key);
        let unknown = |key: &str| self.unknown_memcached_option(key);
        for (key, value) in self.option_pairs(query, known, unknown)? {
            match key.as_str() {
                "prefix" => options.prefix = self.key_part("prefix", value)?,
                "lock_prefix" => options.lock_prefix = self.key_part("lock_prefix", value)?,
                "timeout" => options.timeout = self.duration("timeout", &value, false)?,
                "connect_timeout" => {
                    options.connect_timeout = self.duration("connect_timeout", &value, false)?;
                }
                "lock" => options.lock = self.on_off("lock", &value)?,
                "lock_ttl" => options.lock_ttl = self.duration("lock_ttl", &value, false)?,
                "lock_wait" => options.lock_wait = self.duration("lock_wait", &value, true)?,
                _ => return Err(self.unknown_memcached_option(&key)),
            }
        }
        Ok(())
    }

    /// A prefix that can go into a memcached key: no blanks or control
    /// characters (the text protocol separates by them) and not too long.
    fn key_part(&self, option: &'static str, value: String) -> Result<String, DsnError> {
        if value.len() > MAX_PREFIX_BYTES
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(self.bad_value(
                option,
                &value,
                "at most 60 bytes without blanks or control characters",
            ));
        }
        Ok(value)
    }

    fn unknown_memcached_option(&self, key: &str) -> DsnError {
        DsnError::UnknownOption {
            dsn: self.dsn.to_string(),
            option: key.to_string(),
            hint: did_you_mean(key, MEMCACHED_OPTIONS),
            accepted: MEMCACHED_OPTIONS.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::backend::dsn::SessionDsn;
    use crate::session::backend::dsn::tests::{parsed, refusal};

    fn memcached(text: &str) -> MemcachedDsn {
        parsed(text).memcached().cloned().expect("a memcached DSN")
    }

    fn server(host: &str, port: u16) -> (String, u16) {
        (host.to_string(), port)
    }

    #[test]
    fn one_server_with_the_defaults() {
        let dsn = memcached("memcached://cache");
        assert_eq!(dsn.servers, vec![server("cache", 11211)]);
        assert_eq!(dsn.options, MemcachedOptions::default());
        assert_eq!(dsn.options.prefix, "sess_");
        assert_eq!(dsn.options.lock_prefix, "lock.");
        assert!(dsn.options.lock);
        assert_eq!(dsn.options.timeout, Duration::from_millis(500));
        assert_eq!(memcached("MEMCACHED://cache:11212/").servers[0].1, 11212);
        assert!(
            SessionDsn::parse("memcached://cache")
                .unwrap()
                .redis()
                .is_none()
        );
    }

    #[test]
    fn several_servers_ipv6_in_brackets_and_options() {
        let dsn = memcached(
            "memcached://10.0.0.1:11211,[::1]:11300,cache-b?prefix=memc.sess.key.&lock_prefix=lk_\
             &timeout=250ms&connect_timeout=2s&lock=off&lock_ttl=1m&lock_wait=0s",
        );
        assert_eq!(
            dsn.servers,
            vec![
                server("10.0.0.1", 11211),
                server("::1", 11300),
                server("cache-b", 11211)
            ]
        );
        assert_eq!(
            dsn.options,
            MemcachedOptions {
                prefix: "memc.sess.key.".to_string(),
                lock_prefix: "lk_".to_string(),
                timeout: Duration::from_millis(250),
                connect_timeout: Duration::from_secs(2),
                lock: false,
                lock_ttl: Duration::from_secs(60),
                lock_wait: Duration::ZERO,
            }
        );
        assert_eq!(
            memcached("memcached://[::1]").servers,
            vec![server("::1", 11211)]
        );
        assert_eq!(memcached("memcached://h?prefix=").options.prefix, "");
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        for (text, says) in [
            ("memcached://", "no host"),
            ("memcached://:11211", "no host"),
            ("memcached://a,,b", "no host"),
            ("memcached://cache:0", "port `0`"),
            ("memcached://cache:65536", "port `65536`"),
            ("memcached://cache:port", "port `port`"),
            ("memcached://::1:11211", "IPv6 addresses go in brackets"),
            ("memcached://[::1:11211", "closing `]`"),
            ("memcached://cache/1", "no databases"),
            ("memcached://cache?prefix=a&prefix=b", "given twice"),
            ("memcached://cache?timeout", "has no value"),
            (
                "memcached://cache?timeout=fast",
                "`timeout` must be a duration",
            ),
            ("memcached://cache?lock_ttl=0s", "`lock_ttl`"),
            ("memcached://cache?lock_wait=2d", "to 24h"),
            ("memcached://cache?lock=maybe", "`on` or `off`"),
            ("memcached://cache?prefix=a%20b", "without blanks"),
            ("memcached://cache?lock_prefix=%0A", "without blanks"),
            ("memcached://app:hunter2@cache", "no user or password"),
        ] {
            let message = refusal(text);
            assert!(message.contains(says), "{text}: {message}");
            assert!(!message.contains("hunter2"), "{text}: {message}");
        }
        let message = refusal(&format!("memcached://h?prefix={}", "p".repeat(61)));
        assert!(message.contains("at most 60 bytes"), "{message}");
    }

    #[test]
    fn unknown_options_suggest_the_closest_one() {
        let message = refusal("memcached://cache?lockwait=1s");
        assert!(message.contains("unknown option `lockwait`"), "{message}");
        assert!(message.contains("did you mean `lock_wait`?"), "{message}");
        assert!(message.contains("lock_prefix"), "{message}");
        let message = refusal("memcached://cache?lock_suffix=_LOCK");
        assert!(message.contains("did you mean `lock_prefix`?"), "{message}");
        let message = refusal("memcached://cache?colour=blue");
        assert!(!message.contains("did you mean"), "{message}");
        let message = refusal("memcahced://cache");
        assert!(message.contains("did you mean `memcached`?"), "{message}");
    }
}
