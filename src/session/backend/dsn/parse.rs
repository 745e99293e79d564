//! The DSN parser, written by hand rather than on the `url` crate: the
//! host lists of Sentinel and Cluster DSNs (`h1:26379,h2:26379`) are not a
//! valid URL authority, and each error here names the exact part of the DSN
//! that is wrong and what is accepted instead.

use std::path::PathBuf;
use std::time::Duration;

use super::redact::is_secret_name;
use super::*;

/// ` (did you mean x?)` for the candidate closest to `unknown`, if close enough to be a typo.
pub(super) fn did_you_mean(unknown: &str, candidates: &[&str]) -> String {
    crate::config::closest(unknown, candidates.iter().copied())
        .map(|candidate| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default()
}

/// Decodes `%XX` escapes; `None` when an escape is broken or the result is not UTF-8.
pub(super) fn percent_decode(text: &str) -> Option<String> {
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

/// The part of a URL-form DSN before its path: credentials and hosts.
pub(super) struct Authority<'t> {
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    /// `host[:port]`, or a comma-separated list of them.
    pub(super) hosts: &'t str,
    /// The path, query and fragment after it.
    pub(super) rest: &'t str,
}

/// One parse, carrying the redacted DSN every error names.
pub(super) struct Parser<'a> {
    pub(super) dsn: &'a str,
}

impl Parser<'_> {
    pub(super) fn malformed(&self, problem: impl Into<String>) -> DsnError {
        DsnError::Malformed {
            dsn: self.dsn.to_string(),
            problem: problem.into(),
        }
    }

    pub(super) fn parse(&self, text: &str) -> Result<SessionBackend, DsnError> {
        if text.is_empty() || text.eq_ignore_ascii_case("files") {
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
            "memory" if rest.is_empty() => Ok(SessionBackend::Memory),
            "memory" => Err(self.malformed(
                "`memory://` takes nothing after it: the sessions live in this process",
            )),
            "redis" => self.tcp(rest, false),
            "rediss" => self.tcp(rest, true),
            "redis+unix" | "unix" => self.unix(rest),
            "redis+sentinel" => self.sentinel(rest, false),
            "rediss+sentinel" => self.sentinel(rest, true),
            "redis+cluster" => self.cluster(rest, false),
            "rediss+cluster" => self.cluster(rest, true),
            "memcached" => self.memcached(rest),
            "sqlite" => sql::parse_sql(self.dsn, SqlDriver::Sqlite, rest),
            "mysql" | "mariadb" => sql::parse_sql(self.dsn, SqlDriver::MySql, rest),
            "postgres" | "postgresql" => sql::parse_sql(self.dsn, SqlDriver::Postgres, rest),
            _ => Err(DsnError::UnknownScheme {
                dsn: self.dsn.to_string(),
                scheme: scheme.to_string(),
                hint: did_you_mean(&scheme.to_ascii_lowercase(), SCHEMES),
            }),
        }
    }

    /// `redis://[[user]:password@]host[:port][/db][?options]`
    fn tcp(&self, rest: &str, tls: bool) -> Result<SessionBackend, DsnError> {
        let Authority {
            username,
            password,
            hosts: hostport,
            rest,
        } = self.authority(rest, "host")?;
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
            sentinel_password: None,
            options: RedisOptions::default(),
        };
        self.options(query, &mut dsn, false)?;
        Ok(SessionBackend::Redis(Box::new(dsn)))
    }

    /// `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/SERVICE[/db][?options]`:
    /// the sentinels to ask for the primary of SERVICE (port 26379 when not
    /// given); the credentials and db are the data nodes'. With `tls`
    /// (`rediss+sentinel://`) the sentinels and the primary are spoken to
    /// over TLS.
    fn sentinel(&self, rest: &str, tls: bool) -> Result<SessionBackend, DsnError> {
        let Authority {
            username,
            password,
            hosts,
            rest,
        } = self.authority(rest, "hosts")?;
        let sentinels = self.host_list(hosts, DEFAULT_SENTINEL_PORT)?;
        let (path, query) = self.split_query(rest)?;
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
        let mut dsn = RedisDsn {
            address: RedisAddress::Sentinel {
                sentinels,
                service,
                tls,
            },
            db,
            username,
            password,
            sentinel_password: None,
            options: RedisOptions::default(),
        };
        self.options(query, &mut dsn, false)?;
        Ok(SessionBackend::Redis(Box::new(dsn)))
    }

    /// `redis+cluster://[[user]:password@]host[:port][,host[:port]…][?options]`:
    /// seed nodes of a Redis Cluster, which has only db 0. With `tls`
    /// (`rediss+cluster://`) every node is spoken to over TLS.
    fn cluster(&self, rest: &str, tls: bool) -> Result<SessionBackend, DsnError> {
        let Authority {
            username,
            password,
            hosts,
            rest,
        } = self.authority(rest, "hosts")?;
        let nodes = self.host_list(hosts, DEFAULT_PORT)?;
        let (path, query) = self.split_query(rest)?;
        if !matches!(path, "" | "/" | "/0") {
            return Err(self.malformed("a Redis Cluster has only db 0: leave the path out"));
        }
        let mut dsn = RedisDsn {
            address: RedisAddress::Cluster { nodes, tls },
            db: 0,
            username,
            password,
            sentinel_password: None,
            options: RedisOptions::default(),
        };
        self.options(query, &mut dsn, false)?;
        Ok(SessionBackend::Redis(Box::new(dsn)))
    }

    /// `host[:port][,host[:port]…]`, each with `default_port` when it names none.
    pub(super) fn host_list(
        &self,
        text: &str,
        default_port: u16,
    ) -> Result<Vec<(String, u16)>, DsnError> {
        text.split(',')
            .map(|hostport| {
                let (host, port) = self.host_port(hostport)?;
                // host_port fills in Redis' port; a listed host without one
                // gets this list's default.
                let named_port = hostport
                    .rsplit_once(']')
                    .map_or(hostport, |(_, after)| after);
                Ok((
                    host,
                    if named_port.contains(':') {
                        port
                    } else {
                        default_port
                    },
                ))
            })
            .collect()
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
            sentinel_password: None,
            options: RedisOptions::default(),
        };
        self.options(query, &mut dsn, true)?;
        if dsn.username.is_some() && dsn.password.is_none() {
            return Err(self.malformed("`username` without `password`"));
        }
        Ok(SessionBackend::Redis(Box::new(dsn)))
    }

    /// `[[user]:password@]hosts` up to the path or query, and what follows;
    /// `noun` names the hosts part in the message for a stray `@`.
    pub(super) fn authority<'t>(
        &self,
        rest: &'t str,
        noun: &str,
    ) -> Result<Authority<'t>, DsnError> {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        if rest.contains('@') {
            return Err(self.malformed(format!(
                "an `@` after the {noun}: percent-encode reserved characters in the password \
                 (`/` → %2F, `?` → %3F, `#` → %23, `@` → %40)"
            )));
        }
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(userinfo) => self.credentials(userinfo)?,
            None => (None, None),
        };
        Ok(Authority {
            username,
            password,
            hosts,
            rest,
        })
    }

    /// Splits `path?query`, refusing `#fragments`.
    pub(super) fn split_query<'t>(&self, rest: &'t str) -> Result<(&'t str, &'t str), DsnError> {
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
                "lock_suffix" => {
                    if value.chars().any(char::is_control) {
                        return Err(self.bad_value(
                            "lock_suffix",
                            &value,
                            "free of control characters",
                        ));
                    }
                    options.lock_suffix = value;
                }
                "timeout" => options.timeout = self.duration("timeout", &value, false)?,
                "connect_timeout" => {
                    options.connect_timeout = self.duration("connect_timeout", &value, false)?;
                }
                "lock" => options.lock = self.on_off(&value)?,
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

    /// The `lock` option's value.
    pub(super) fn on_off(&self, value: &str) -> Result<bool, DsnError> {
        match value.to_ascii_lowercase().as_str() {
            "on" | "1" | "true" | "yes" => Ok(true),
            "off" | "0" | "false" | "no" => Ok(false),
            _ => Err(self.bad_value("lock", value, "`on` or `off`")),
        }
    }

    /// `key=value&…`, percent-decoded (a key without `=` has an empty value).
    pub(super) fn query_pairs(&self, query: &str) -> Result<Vec<(String, String)>, DsnError> {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
                let key = percent_decode(raw_key)
                    .ok_or_else(|| self.malformed("broken percent-encoding in an option name"))?;
                let value = percent_decode(raw_value).ok_or_else(|| {
                    self.malformed(format!("broken percent-encoding in the value of `{key}`"))
                })?;
                Ok((key, value))
            })
            .collect()
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

    pub(super) fn bad_value(
        &self,
        option: &'static str,
        value: &str,
        expected: &'static str,
    ) -> DsnError {
        DsnError::BadOptionValue {
            dsn: self.dsn.to_string(),
            option,
            value: value.to_string(),
            expected,
        }
    }

    /// A humantime duration within bounds; zero only where `zero_ok`.
    pub(super) fn duration(
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
