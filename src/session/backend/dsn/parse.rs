//! The DSN parser, written by hand rather than on the `url` crate: the
//! host lists of Sentinel and Cluster DSNs (`h1:26379,h2:26379`) are not a
//! valid URL authority, and each error here names the exact part of the DSN
//! that is wrong and what is accepted instead.

use std::time::Duration;

use super::{DsnError, MAX_DURATION, SessionBackend};
use crate::session::backend::factory::{BACKENDS, BackendKind};
use crate::session::backend::files;

/// ` (did you mean x?)` for the candidate closest to `unknown`, if close enough to be a typo.
pub(crate) fn did_you_mean(unknown: &str, candidates: &[&str]) -> String {
    crate::config::closest(unknown, candidates.iter().copied())
        .map(|candidate| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default()
}

/// Decodes `%XX` escapes; `None` when an escape is broken or the result is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
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

/// A TCP port, 1 to 65535.
pub(crate) fn port_number(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| format!("port `{text}` is not a number from 1 to 65535"))
}

/// The part of a URL-form DSN before its path: credentials and hosts.
pub(crate) struct Authority<'t> {
    pub(crate) credentials: Credentials,
    /// `host[:port]`, or a comma-separated list of them.
    pub(crate) hosts: &'t str,
    /// The path, query and fragment after it.
    pub(crate) rest: &'t str,
}

/// `user:password@` of a DSN, percent-decoded.
#[derive(Default)]
pub(crate) struct Credentials {
    /// The user; `None` for `:password@` (the default user).
    pub(crate) username: Option<String>,
    /// The password; for the client only, never shown.
    pub(crate) password: Option<String>,
}

/// One parse, carrying the redacted DSN every error names.
pub(crate) struct Parser<'a> {
    pub(crate) dsn: &'a str,
}

impl Parser<'_> {
    pub(crate) fn malformed(&self, problem: impl Into<String>) -> DsnError {
        DsnError::Malformed {
            dsn: self.dsn.to_string(),
            problem: problem.into(),
        }
    }

    /// The backend `text` names (trimmed) and its DSN: the scheme picks the
    /// factory's row, whose parser reads the rest.
    pub(super) fn parse(
        &self,
        text: &str,
    ) -> Result<(&'static BackendKind, SessionBackend), DsnError> {
        if text.is_empty() || text.eq_ignore_ascii_case("files") {
            return Ok((&files::KIND, SessionBackend::Files));
        }
        let schemes: Vec<&str> = BACKENDS
            .iter()
            .flat_map(|kind| kind.schemes.iter().copied())
            .collect();
        let Some((scheme, rest)) = text.split_once("://") else {
            let scheme = text.split(':').next().unwrap_or_default();
            if text.contains(':') && schemes.contains(&scheme.to_ascii_lowercase().as_str()) {
                return Err(self.malformed(format!(
                    "`{scheme}:` must be followed by `//` (e.g. {scheme}://host:port)"
                )));
            }
            return Err(self.malformed("no scheme"));
        };
        let lowercase = scheme.to_ascii_lowercase();
        let Some(kind) = BACKENDS
            .iter()
            .find(|kind| kind.schemes.contains(&lowercase.as_str()))
        else {
            return Err(DsnError::UnknownScheme {
                dsn: self.dsn.to_string(),
                scheme: scheme.to_string(),
                hint: did_you_mean(&lowercase, &schemes),
            });
        };
        Ok((kind, (kind.parse)(self, &lowercase, rest)?))
    }

    /// `host[:port][,host[:port]…]`, each with `default_port` when it names none.
    pub(crate) fn host_list(
        &self,
        text: &str,
        default_port: u16,
    ) -> Result<Vec<(String, u16)>, DsnError> {
        text.split(',')
            .map(|hostport| self.host_port(hostport, default_port))
            .collect()
    }

    /// `[[user]:password@]hosts` up to the path or query, and what follows;
    /// `noun` names the hosts part in the message for a stray `@`.
    pub(crate) fn authority<'t>(
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
        let credentials = match userinfo {
            Some(userinfo) => self.credentials(userinfo)?,
            None => Credentials::default(),
        };
        Ok(Authority {
            credentials,
            hosts,
            rest,
        })
    }

    /// Splits `path?query`, refusing `#fragments`.
    pub(crate) fn split_query<'t>(&self, rest: &'t str) -> Result<(&'t str, &'t str), DsnError> {
        if rest.contains('#') {
            return Err(
                self.malformed("a `#…` fragment; options go in the query (?option=value&…)")
            );
        }
        Ok(rest.split_once('?').unwrap_or((rest, "")))
    }

    /// `user:password` or `:password` (percent-encoded).
    fn credentials(&self, userinfo: &str) -> Result<Credentials, DsnError> {
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
        Ok(Credentials {
            username: (!user.is_empty()).then_some(user),
            password: Some(password),
        })
    }

    /// `host`, `host:port`, `[v6]`, `[v6]:port`; `default_port` when it names none.
    pub(crate) fn host_port(
        &self,
        text: &str,
        default_port: u16,
    ) -> Result<(String, u16), DsnError> {
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
            None => default_port,
            Some(port) => port_number(port).map_err(|problem| self.malformed(problem))?,
        };
        Ok((host.to_string(), port))
    }

    /// An on/off option's value (`lock`, `create_table`).
    pub(crate) fn on_off(&self, option: &'static str, value: &str) -> Result<bool, DsnError> {
        match value.to_ascii_lowercase().as_str() {
            "on" | "1" | "true" | "yes" => Ok(true),
            "off" | "0" | "false" | "no" => Ok(false),
            _ => Err(self.bad_value(option, value, "`on` or `off`")),
        }
    }

    /// The query's options as `(key, value)` pairs, each key at most once
    /// and each with a value, but `prefix` (an empty prefix stores sessions
    /// under their bare ids). A key without a value is "has no value" when
    /// `known` takes it and `unknown`'s error otherwise.
    pub(crate) fn option_pairs(
        &self,
        query: &str,
        known: impl Fn(&str) -> bool,
        unknown: impl Fn(&str) -> DsnError,
    ) -> Result<Vec<(String, String)>, DsnError> {
        let pairs = self.query_pairs(query)?;
        for (at, (key, value)) in pairs.iter().enumerate() {
            if pairs[..at].iter().any(|(earlier, _)| earlier == key) {
                return Err(self.malformed(format!("option `{key}` is given twice")));
            }
            if value.is_empty() && key != "prefix" {
                return Err(if known(key) {
                    self.malformed(format!("option `{key}` has no value"))
                } else {
                    unknown(key)
                });
            }
        }
        Ok(pairs)
    }

    /// `key=value&…`, percent-decoded (a key without `=` has an empty value).
    fn query_pairs(&self, query: &str) -> Result<Vec<(String, String)>, DsnError> {
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

    pub(crate) fn bad_value(
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
    pub(crate) fn duration(
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
