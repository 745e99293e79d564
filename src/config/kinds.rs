//! What a setting can accept, one type per kind of value: each turns the
//! text from an ini file, the environment or the command line into the
//! typed value the settings are built from, or says what it accepts.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use crate::choice::BadChoice;
use crate::ops::LogDestination;
use crate::server::ListenAddr;

use super::setting::Accepts;

/// `on/off`, `true/false`, `yes/no`, `1/0` (PHP ini booleans); empty is off.
#[derive(Clone, Copy, Debug)]
pub struct Flag;

impl Accepts for Flag {
    type Value = bool;
    fn parse(&self, text: &str) -> Result<bool, String> {
        match text.to_ascii_lowercase().as_str() {
            "1" | "on" | "true" | "yes" => Ok(true),
            "0" | "off" | "false" | "no" | "" => Ok(false),
            _ => Err("on or off (also true/false, yes/no, 1/0)".into()),
        }
    }
}

/// A whole number within bounds.
#[derive(Clone, Copy, Debug)]
pub struct Number {
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
}

impl Accepts for Number {
    type Value = u64;
    fn parse(&self, text: &str) -> Result<u64, String> {
        text.parse::<u64>()
            .ok()
            .filter(|n| (self.min..=self.max).contains(n))
            .ok_or_else(|| format!("a whole number from {} to {}", self.min, self.max))
    }
}

/// A byte size: a number, optionally with PHP's `K`, `M` or `G` suffix.
#[derive(Clone, Copy, Debug)]
pub struct Bytes {
    /// The fewest bytes accepted.
    pub min: u64,
    /// The most bytes accepted.
    pub max: u64,
}

impl Accepts for Bytes {
    type Value = u64;
    fn parse(&self, text: &str) -> Result<u64, String> {
        parse_bytes(text)
            .filter(|n| (self.min..=self.max).contains(n))
            .ok_or_else(|| {
                format!(
                    "a size from {} to {} bytes (a number, or with K, M or G)",
                    self.min, self.max
                )
            })
    }
}

/// `8M`, `64K`, `1G` or a plain number of bytes (PHP's shorthand).
fn parse_bytes(text: &str) -> Option<u64> {
    let (digits, factor) = match text.chars().last()?.to_ascii_uppercase() {
        'K' => (&text[..text.len() - 1], 1024),
        'M' => (&text[..text.len() - 1], 1024 * 1024),
        'G' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(factor)
}

/// A duration above zero such as `30s`, `500ms`, `2m`.
#[derive(Clone, Copy, Debug)]
pub struct Timeout;

impl Accepts for Timeout {
    type Value = Duration;
    fn parse(&self, text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "a duration above zero such as 500ms, 30s or 2m".into())
    }
}

/// A duration, or `0` / `off` / empty for none.
#[derive(Clone, Copy, Debug)]
pub struct OptionalTimeout;

impl Accepts for OptionalTimeout {
    type Value = Option<Duration>;
    fn parse(&self, text: &str) -> Result<Option<Duration>, String> {
        if matches!(text.to_ascii_lowercase().as_str(), "" | "0" | "off") {
            return Ok(None);
        }
        humantime::parse_duration(text)
            .map(Some)
            .map_err(|_| "a duration such as 500ms, 30s or 2m, or 0 for none".into())
    }
}

/// A fraction from 0 to 1 (a sampler's ratio, as `OTEL_TRACES_SAMPLER_ARG`
/// writes it: `0.01`).
#[derive(Clone, Copy, Debug)]
pub struct Ratio;

impl Accepts for Ratio {
    type Value = f64;
    fn parse(&self, text: &str) -> Result<f64, String> {
        text.parse::<f64>()
            .ok()
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .ok_or_else(|| "a number from 0 to 1, such as 0.01".into())
    }
}

/// Free text, surrounding whitespace removed.
#[derive(Clone, Copy, Debug)]
pub struct Text;

impl Accepts for Text {
    type Value = String;
    fn parse(&self, text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
}

/// Free text kept exactly as written (a log line format, where a trailing
/// space is part of the line).
#[derive(Clone, Copy, Debug)]
pub struct Verbatim;

impl Accepts for Verbatim {
    type Value = String;
    const TRIMMED: bool = false;
    fn parse(&self, text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
}

/// A filesystem path; empty means the current directory.
#[derive(Clone, Copy, Debug)]
pub struct FilePath;

impl Accepts for FilePath {
    type Value = PathBuf;
    fn parse(&self, text: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(text))
    }
}

/// A directory, or empty for the system's temporary directory (PHP's
/// `upload_tmp_dir`).
#[derive(Clone, Copy, Debug)]
pub struct DirOrSystemTemp;

impl Accepts for DirOrSystemTemp {
    type Value = PathBuf;
    fn parse(&self, text: &str) -> Result<PathBuf, String> {
        Ok(match text {
            "" => std::env::temp_dir(),
            dir => PathBuf::from(dir),
        })
    }
}

/// One word of a fixed list, given by the type's `FromStr` (see
/// [`crate::choice`]), which also says what is accepted.
#[derive(Debug)]
pub struct Choice<T>(PhantomData<fn() -> T>);

impl<T> Choice<T> {
    /// The kind for `T`'s words.
    pub const fn of() -> Self {
        Self(PhantomData)
    }
}

impl<T> Clone for Choice<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Choice<T> {}

impl<T: FromStr<Err = BadChoice> + 'static> Accepts for Choice<T> {
    type Value = T;
    fn parse(&self, text: &str) -> Result<T, String> {
        text.parse()
            .map_err(|bad: BadChoice| format!("one of {}", bad.accepted))
    }
}

/// `IP:PORT` or `unix:/path`.
#[derive(Clone, Copy, Debug)]
pub struct ListenAddress;

impl Accepts for ListenAddress {
    type Value = ListenAddr;
    fn parse(&self, text: &str) -> Result<ListenAddr, String> {
        ListenAddr::from_str(text)
            .map_err(|_| "IP:PORT (e.g. 127.0.0.1:9000) or unix:/path/to.sock".into())
    }
}

/// An octal file mode such as `0660`.
#[derive(Clone, Copy, Debug)]
pub struct FileMode;

impl Accepts for FileMode {
    type Value = u32;
    fn parse(&self, text: &str) -> Result<u32, String> {
        u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| "an octal file mode such as 0660".into())
    }
}

/// Comma-separated IP addresses or CIDR ranges.
#[derive(Clone, Copy, Debug)]
pub struct AddressList {
    /// An empty list is refused (a gate nobody could pass).
    pub at_least_one: bool,
}

impl Accepts for AddressList {
    type Value = Vec<IpNet>;
    fn parse(&self, text: &str) -> Result<Vec<IpNet>, String> {
        let list = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                "comma-separated IP addresses or CIDR ranges (e.g. 127.0.0.1, 10.0.0.0/8)"
                    .to_string()
            })?;
        if self.at_least_one && list.is_empty() {
            return Err(
                "at least one IP address or CIDR range (0.0.0.0/0, ::/0 for anyone)".into(),
            );
        }
        Ok(list)
    }
}

/// A log filter such as `info` or `nene=debug,warn`.
#[derive(Clone, Copy, Debug)]
pub struct LogFilter;

impl Accepts for LogFilter {
    type Value = String;
    fn parse(&self, text: &str) -> Result<String, String> {
        text.parse::<tracing_subscriber::filter::Targets>()
            .map(|_| text.to_string())
            .map_err(|_| {
                "a level (error, warn, info, debug, trace) or a filter such as nene=debug,warn"
                    .into()
            })
    }
}

/// A URL path such as `/status`, or empty for none.
#[derive(Clone, Copy, Debug)]
pub struct UrlPath;

impl Accepts for UrlPath {
    type Value = Option<String>;
    fn parse(&self, text: &str) -> Result<Option<String>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        if !text.starts_with('/') || text.contains(['?', '#', ' ']) {
            return Err("a path starting with / (no query), or empty for none".into());
        }
        Ok(Some(text.to_string()))
    }
}

/// Where a log goes: `stderr`, `off` (or empty), or a file path.
#[derive(Clone, Copy, Debug)]
pub struct Destination;

impl Accepts for Destination {
    type Value = LogDestination;
    fn parse(&self, text: &str) -> Result<LogDestination, String> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "stderr" => LogDestination::Stderr,
            "" | "off" => LogDestination::Off,
            _ => LogDestination::File(PathBuf::from(text)),
        })
    }
}

/// PHP's `session.save_path` forms: `/path`, `N;/path` and `N;MODE;/path`
/// (N levels of one-character subdirectories; MODE is PHP's file mode,
/// accepted and ignored: nene's session files are always 0600). The value
/// is (depth, directory).
#[derive(Clone, Copy, Debug)]
pub struct SavePath;

impl Accepts for SavePath {
    type Value = (usize, PathBuf);
    fn parse(&self, text: &str) -> Result<(usize, PathBuf), String> {
        let mut parts = text.splitn(3, ';');
        let first = parts.next().unwrap_or_default();
        let (depth, dir) = match (first.parse::<usize>(), parts.next(), parts.next()) {
            (Ok(depth), Some(path), None) => (depth, path),
            (Ok(depth), Some(_mode), Some(path)) => (depth, path),
            _ => (0, text),
        };
        Ok((depth, PathBuf::from(dir)))
    }
}

/// A cookie name as PHP accepts it for `session.name`: not all digits, no
/// cookie separators.
#[derive(Clone, Copy, Debug)]
pub struct CookieName;

impl Accepts for CookieName {
    type Value = String;
    fn parse(&self, text: &str) -> Result<String, String> {
        let fits = !text.is_empty()
            && !text.bytes().all(|b| b.is_ascii_digit())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        text_if(fits, text, "letters, digits, '_' and '-', not only digits")
    }
}

/// A cookie's `Path`. It goes into every Set-Cookie header as it is: a `;`
/// would add attributes of its own, a control byte would make the header
/// impossible to send.
#[derive(Clone, Copy, Debug)]
pub struct CookiePath;

impl Accepts for CookiePath {
    type Value = String;
    fn parse(&self, text: &str) -> Result<String, String> {
        let fits = text.starts_with('/')
            && text
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
        let expected = "a URL path starting with /, without spaces, ';', ',' or control characters";
        text_if(fits, text, expected)
    }
}

/// A cookie's `Domain`: empty, or a DNS host name with an optional leading
/// dot as PHP users write it (`example.com; SameSite=None` would add an
/// attribute of its own).
#[derive(Clone, Copy, Debug)]
pub struct CookieDomain;

impl Accepts for CookieDomain {
    type Value = String;
    fn parse(&self, text: &str) -> Result<String, String> {
        let fits = text.is_empty() || is_host_name(text);
        let expected = "empty (this host only) or a host name such as example.com or .example.com";
        text_if(fits, text, expected)
    }
}

/// `text` when it `fits`, else what was `expected` of it.
fn text_if(fits: bool, text: &str, expected: &str) -> Result<String, String> {
    if fits {
        Ok(text.to_string())
    } else {
        Err(expected.to_string())
    }
}

/// Labels of letters, digits and inner hyphens, at most 253 bytes.
fn is_host_name(text: &str) -> bool {
    let name = text.strip_prefix('.').unwrap_or(text);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
