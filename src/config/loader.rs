//! Loading: built-in defaults < `system.ini` < `site.ini` < environment <
//! command line, validated against the settings table into [`Constants`].
//! Any value that does not fit stops start-up with a message naming where
//! it came from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use crate::fastcgi::ConnectionLimits;
use crate::server::{ListenAddr, ServerSettings};

use super::constants::{Constant, Constants};
use super::error::{ConfigError, closest};
use super::ini_file::{IniEntry, read_ini_file};
use super::session_settings::SessionSettings;
use super::settings::{LogDestination, LogFormat, OpsSettings, Settings};
use super::source::Source;
use super::spec::{self, Kind, NENE_SECTIONS, SETTINGS, SettingSpec};

/// The ini files read from the ini directory, in order (later wins).
pub const INI_FILES: &[&str] = &["system.ini", "site.ini"];

/// Environment variables that are not settings but are nene's.
const OTHER_ENV: &[&str] = &["NENE_INI_DIR"];

/// What to load from.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The directory holding `system.ini` and `site.ini`.
    pub ini_dir: PathBuf,
    /// The environment (passed in, so tests need not touch the process's).
    pub env: Vec<(String, String)>,
    /// Command-line overrides: (`section.key`, value, flag).
    pub command_line: Vec<(&'static str, String, &'static str)>,
}

impl LoadOptions {
    /// The process environment's `NENE_*` variables.
    pub fn process_env() -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| name.starts_with("NENE_"))
            .collect()
    }
}

/// The result of loading: the constants, and the ini files that were read.
pub struct Loaded {
    /// Every setting and site constant, validated.
    pub constants: Constants,
    /// The ini files found and read, in the order read (for the start-up log).
    pub files_read: Vec<PathBuf>,
}

/// PHP's `session.save_path` forms: `/path`, `N;/path` and `N;MODE;/path`
/// (N levels of one-character subdirectories; MODE is PHP's file mode,
/// accepted and ignored: nene's session files are always 0600).
fn save_path_parts(text: &str) -> (usize, &str) {
    let mut parts = text.splitn(3, ';');
    let first = parts.next().unwrap_or_default();
    match (first.parse::<usize>(), parts.next(), parts.next()) {
        (Ok(depth), Some(path), None) => (depth, path),
        (Ok(depth), Some(_mode), Some(path)) => (depth, path),
        _ => (0, text),
    }
}

fn save_path_dir(text: &str) -> String {
    save_path_parts(text).1.to_string()
}

fn save_path_depth(text: &str) -> usize {
    save_path_parts(text).0
}

/// A DNS host name (an optional leading dot, as PHP users write a cookie
/// domain): labels of letters, digits and inner hyphens, at most 253 bytes.
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

/// Whether a site constant may hold a password, so `nene config` redacts it:
/// a DSN (`TODO_DATABASE_DSN`, `[db] dsn`) or anything named like a password
/// or secret. Names are the convention an application keeps to.
fn site_constant_is_secret(name: &str) -> bool {
    name.ends_with("_DSN")
        || ["PASSWORD", "SECRET", "TOKEN"]
            .iter()
            .any(|word| name.contains(word))
}

/// A value before validation, and where it came from.
struct RawValue {
    text: String,
    source: Source,
}

/// Loads defaults < system.ini < site.ini < environment < command line and
/// validates every value; the first problem is the error.
pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
    let mut settings: BTreeMap<String, (&'static SettingSpec, RawValue)> = BTreeMap::new();
    let mut app_constants: BTreeMap<String, RawValue> = BTreeMap::new();
    for spec in SETTINGS {
        let raw = RawValue {
            text: spec.default.to_string(),
            source: Source::Default,
        };
        settings.insert(spec.dotted(), (spec, raw));
    }

    let mut files_read = Vec::new();
    for file_name in INI_FILES {
        let path = options.ini_dir.join(file_name);
        let Some(entries) = read_ini_file(&path)? else {
            continue;
        };
        files_read.push(path);
        for entry in entries {
            apply_ini_entry(entry, file_name, &mut settings, &mut app_constants)?;
        }
    }

    for (name, value) in &options.env {
        apply_env(name, value, &mut settings, &mut app_constants)?;
    }
    for (dotted, value, flag) in &options.command_line {
        let spec = SETTINGS
            .iter()
            .find(|s| s.dotted() == *dotted)
            .expect("command-line flags name known settings");
        let raw = RawValue {
            text: value.clone(),
            source: Source::CommandLine(flag),
        };
        settings.insert(spec.dotted(), (spec, raw));
    }

    let values = Values(settings);
    let typed = values.build_settings()?;
    let mut by_name = BTreeMap::new();
    for (spec, raw) in values.0.values() {
        by_name.insert(
            spec.constant_name(),
            Constant {
                value: raw.text.clone(),
                source: raw.source.clone(),
                secret: matches!(spec.kind, Kind::Dsn),
            },
        );
    }
    for (name, raw) in app_constants {
        let secret = site_constant_is_secret(&name);
        by_name.insert(
            name,
            Constant {
                value: raw.text,
                source: raw.source,
                secret,
            },
        );
    }
    Ok(Loaded {
        constants: Constants::new(typed, by_name),
        files_read,
    })
}

fn apply_ini_entry(
    entry: IniEntry,
    file_name: &str,
    settings: &mut BTreeMap<String, (&'static SettingSpec, RawValue)>,
    app_constants: &mut BTreeMap<String, RawValue>,
) -> Result<(), ConfigError> {
    // PHP's php.ini style, `session.gc_maxlifetime = 600` outside any
    // section, means the same as the key under `[session]`.
    let (section, key) = match entry.raw_key.split_once('.') {
        Some((section, key)) if entry.section.is_empty() => {
            (section.to_ascii_lowercase(), key.to_string())
        }
        _ => (entry.section.clone(), entry.raw_key.clone()),
    };
    if NENE_SECTIONS.contains(&section.as_str()) {
        if file_name != "system.ini" {
            return Err(ConfigError::MisplacedSection {
                origin: entry.source,
                section,
            });
        }
        let key = key.to_ascii_lowercase();
        let Some(spec) = spec::find(&section, &key) else {
            let suggestion = closest(
                &key,
                SETTINGS
                    .iter()
                    .filter(|s| s.section == section)
                    .map(|s| s.key),
            )
            .map(|k| format!("{section}.{k}"));
            return Err(ConfigError::UnknownKey {
                origin: entry.source,
                name: format!("{section}.{key}"),
                suggestion,
            });
        };
        let raw = RawValue {
            text: entry.value,
            source: entry.source,
        };
        settings.insert(spec.dotted(), (spec, raw));
        return Ok(());
    }
    if let Some(near) = closest(&section, NENE_SECTIONS.iter().copied()) {
        return Err(ConfigError::UnknownKey {
            origin: entry.source,
            name: format!("[{section}]"),
            suggestion: Some(format!("[{near}]")),
        });
    }
    let name = if section.is_empty() {
        key.to_ascii_uppercase()
    } else {
        format!(
            "{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    };
    app_constants.insert(
        name,
        RawValue {
            text: entry.value,
            source: entry.source,
        },
    );
    Ok(())
}

fn apply_env(
    name: &str,
    value: &str,
    settings: &mut BTreeMap<String, (&'static SettingSpec, RawValue)>,
    app_constants: &mut BTreeMap<String, RawValue>,
) -> Result<(), ConfigError> {
    let Some(rest) = name.strip_prefix("NENE_") else {
        return Ok(());
    };
    if OTHER_ENV.contains(&name) {
        return Ok(());
    }
    let raw = RawValue {
        text: value.to_string(),
        source: Source::Env(name.to_string()),
    };
    if let Some(spec) = SETTINGS.iter().find(|s| s.env_alias == Some(name)) {
        settings.insert(spec.dotted(), (spec, raw));
        return Ok(());
    }
    let all_env_names = || {
        SETTINGS
            .iter()
            .flat_map(|s| [Some(s.env_var()), s.env_alias.map(str::to_string)])
            .flatten()
            .chain(OTHER_ENV.iter().map(|s| s.to_string()))
            .collect::<Vec<_>>()
    };
    let Some((section, key)) = rest.split_once("__") else {
        let names = all_env_names();
        return Err(ConfigError::UnknownKey {
            origin: Source::Env(name.to_string()),
            name: name.to_string(),
            suggestion: closest(name, names.iter().map(String::as_str)),
        });
    };
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    if NENE_SECTIONS.contains(&section.as_str()) {
        let Some(spec) = spec::find(&section, &key) else {
            let names = all_env_names();
            return Err(ConfigError::UnknownKey {
                origin: Source::Env(name.to_string()),
                name: name.to_string(),
                suggestion: closest(name, names.iter().map(String::as_str)),
            });
        };
        settings.insert(spec.dotted(), (spec, raw));
        return Ok(());
    }
    // A section one typo away from nene's own is a mistake, not an
    // application constant.
    if let Some(near) = closest(&section, NENE_SECTIONS.iter().copied()) {
        return Err(ConfigError::UnknownKey {
            origin: Source::Env(name.to_string()),
            name: name.to_string(),
            suggestion: Some(format!(
                "NENE_{}__{}",
                near.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            )),
        });
    }
    app_constants.insert(
        format!(
            "{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        ),
        raw,
    );
    Ok(())
}

/// The final raw value of every setting, with typed accessors that validate.
struct Values(BTreeMap<String, (&'static SettingSpec, RawValue)>);

impl Values {
    fn raw(&self, dotted: &str) -> (&'static SettingSpec, &RawValue) {
        let (spec, raw) = self
            .0
            .get(dotted)
            .unwrap_or_else(|| panic!("{dotted} is in the settings table"));
        (spec, raw)
    }

    fn invalid(&self, dotted: &str, accepted: impl Into<String>) -> ConfigError {
        let (spec, raw) = self.raw(dotted);
        let value = if matches!(spec.kind, Kind::Dsn) {
            "(redacted)".to_string()
        } else {
            raw.text.clone()
        };
        ConfigError::Invalid {
            origin: raw.source.clone(),
            name: dotted.to_string(),
            value,
            accepted: accepted.into(),
        }
    }

    fn text(&self, dotted: &str) -> String {
        self.raw(dotted).1.text.trim().to_string()
    }

    fn bool(&self, dotted: &str) -> Result<bool, ConfigError> {
        match self.text(dotted).to_ascii_lowercase().as_str() {
            "1" | "on" | "true" | "yes" => Ok(true),
            "0" | "off" | "false" | "no" | "" => Ok(false),
            _ => Err(self.invalid(dotted, "on or off (also true/false, yes/no, 1/0)")),
        }
    }

    fn number(&self, dotted: &str) -> Result<u64, ConfigError> {
        let (spec, _) = self.raw(dotted);
        let (min, max, bytes) = match spec.kind {
            Kind::Number { min, max } => (min, max, false),
            Kind::Bytes { min, max } => (min, max, true),
            _ => unreachable!("{dotted} is not a number"),
        };
        let text = self.text(dotted);
        let parsed = if bytes {
            parse_bytes(&text)
        } else {
            text.parse::<u64>().ok()
        };
        let accepted = if bytes {
            format!("a size from {min} to {max} bytes (a number, or with K, M or G)")
        } else {
            format!("a whole number from {min} to {max}")
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(dotted, accepted)),
        }
    }

    fn usize(&self, dotted: &str) -> Result<usize, ConfigError> {
        self.number(dotted)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn duration(&self, dotted: &str) -> Result<Duration, ConfigError> {
        humantime::parse_duration(&self.text(dotted))
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.invalid(dotted, "a duration above zero such as 500ms, 30s or 2m"))
    }

    fn optional_duration(&self, dotted: &str) -> Result<Option<Duration>, ConfigError> {
        let text = self.text(dotted);
        if matches!(text.to_ascii_lowercase().as_str(), "" | "0" | "off") {
            return Ok(None);
        }
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(|_| self.invalid(dotted, "a duration such as 500ms, 30s or 2m, or 0 for none"))
    }

    fn destination(&self, dotted: &str) -> LogDestination {
        let text = self.text(dotted);
        match text.to_ascii_lowercase().as_str() {
            "stderr" => LogDestination::Stderr,
            "" | "off" => LogDestination::Off,
            _ => LogDestination::File(PathBuf::from(text)),
        }
    }

    /// A URL path such as `/status`, or empty for none.
    fn url_path(&self, dotted: &str) -> Result<Option<String>, ConfigError> {
        let text = self.text(dotted);
        if text.is_empty() {
            return Ok(None);
        }
        if !text.starts_with('/') || text.contains(['?', '#', ' ']) {
            return Err(self.invalid(
                dotted,
                "a path starting with / (no query), or empty for none",
            ));
        }
        Ok(Some(text))
    }

    fn addresses(&self, dotted: &str) -> Result<Vec<IpNet>, ConfigError> {
        self.text(dotted)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                self.invalid(
                    dotted,
                    "comma-separated IP addresses or CIDR ranges (e.g. 127.0.0.1, 10.0.0.0/8)",
                )
            })
    }

    fn build_ops(&self) -> Result<OpsSettings, ConfigError> {
        Ok(OpsSettings {
            request_terminate_timeout: self
                .optional_duration("server.request_terminate_timeout")?,
            request_slowlog_timeout: self.optional_duration("server.request_slowlog_timeout")?,
            slowlog: self.destination("server.slowlog"),
            status_path: self.url_path("pm.status_path")?,
            status_allow: self.addresses("pm.status_allow")?,
            ping_path: self.url_path("ping.path")?,
            ping_response: self.text("ping.response"),
            access_log: self.destination("access.log"),
            access_format: self.raw("access.format").1.text.clone(),
            log_format: match self.text("log.format").to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => return Err(self.invalid("log.format", "text or json")),
            },
        })
    }

    fn choice<T: FromStr>(&self, dotted: &str) -> Result<T, ConfigError> {
        let (spec, _) = self.raw(dotted);
        let Kind::Choice(choices) = spec.kind else {
            unreachable!("{dotted} is not a choice")
        };
        self.text(dotted).parse().map_err(|_| {
            let list: Vec<String> = choices
                .iter()
                .map(|c| {
                    if c.is_empty() {
                        "(empty)".to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            self.invalid(dotted, format!("one of {}", list.join(", ")))
        })
    }

    fn build_settings(&self) -> Result<Settings, ConfigError> {
        let listen = ListenAddr::from_str(&self.text("server.listen")).map_err(|_| {
            self.invalid(
                "server.listen",
                "IP:PORT (e.g. 127.0.0.1:9000) or unix:/path/to.sock",
            )
        })?;
        let socket_mode =
            u32::from_str_radix(self.text("server.socket_mode").trim_start_matches("0o"), 8)
                .ok()
                .filter(|mode| *mode <= 0o777)
                .ok_or_else(|| {
                    self.invalid("server.socket_mode", "an octal file mode such as 0660")
                })?;
        let trusted_proxies = self.addresses("server.trusted_proxies")?;
        let log_level = self.text("log.level");
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(self.invalid(
                "log.level",
                "a level (error, warn, info, debug, trace) or a filter such as nene=debug,warn",
            ));
        }
        let server = ServerSettings {
            listen,
            socket_mode,
            listen_backlog: self.usize("server.listen_backlog")? as u32,
            limits: ConnectionLimits {
                max_params_bytes: self.usize("server.max_params_bytes")?,
                max_params: self.usize("server.max_params")?,
                max_body_bytes: self.usize("server.max_body_bytes")?,
                client_body_buffer_size: self.usize("server.client_body_buffer_size")?,
                upload_tmp_dir: match self.text("server.upload_tmp_dir") {
                    dir if dir.is_empty() => std::env::temp_dir(),
                    dir => PathBuf::from(dir),
                },
                max_buffered_bytes: self.usize("server.max_buffered_bytes")?,
                receive_timeout: self.duration("server.receive_timeout")?,
                idle_timeout: self.duration("server.idle_timeout")?,
                max_requests_per_connection: self.usize("server.max_requests_per_connection")?,
                max_connections: self.usize("server.max_connections")?,
            },
            drain_timeout: self.duration("server.drain_timeout")?,
            allowed_clients: self.addresses("server.allowed_clients")?,
        };
        if server.allowed_clients.is_empty() {
            return Err(self.invalid(
                "server.allowed_clients",
                "at least one IP address or CIDR range (0.0.0.0/0, ::/0 for anyone)",
            ));
        }
        let limits = &server.limits;
        // One request must always fit: full params and a body at the
        // in-memory threshold, or every such request would be refused.
        if limits.max_params_bytes + limits.client_body_buffer_size > limits.max_buffered_bytes {
            let (_, budget) = self.raw("server.max_buffered_bytes");
            return Err(ConfigError::Conflict(format!(
                "server.max_buffered_bytes = {} ({}) is less than one request may hold: max_params_bytes ({}) + client_body_buffer_size ({})",
                budget.text, budget.source, limits.max_params_bytes, limits.client_body_buffer_size
            )));
        }
        let uploads = crate::upload::UploadSettings {
            tmp_dir: limits.upload_tmp_dir.clone(),
            upload_max_filesize: self.number("server.upload_max_filesize")?,
            max_file_uploads: self.usize("server.max_file_uploads")?,
            max_input_vars: self.usize("server.max_input_vars")?,
        };
        let session = self.build_session()?;
        Ok(Settings {
            uploads,
            server,
            htdocs: PathBuf::from(self.text("server.htdocs")),
            trusted_proxies,
            layers_num: self.usize("server.layers_num")?,
            session,
            log_level,
            ops: self.build_ops()?,
        })
    }

    fn build_session(&self) -> Result<SessionSettings, ConfigError> {
        let name = self.text("session.name");
        // PHP refuses names that are all digits or hold cookie separators.
        if name.is_empty()
            || name.bytes().all(|b| b.is_ascii_digit())
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            return Err(self.invalid(
                "session.name",
                "letters, digits, '_' and '-', not only digits",
            ));
        }
        let cookie_path = self.text("session.cookie_path");
        // Both go into every Set-Cookie header as they are: a `;` would add
        // attributes of its own (`example.com; SameSite=None`), a control
        // byte would make the header impossible to send.
        if !cookie_path.starts_with('/')
            || !cookie_path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        {
            return Err(self.invalid(
                "session.cookie_path",
                "a URL path starting with /, without spaces, ';', ',' or control characters",
            ));
        }
        let cookie_domain = self.text("session.cookie_domain");
        if !cookie_domain.is_empty() && !is_host_name(&cookie_domain) {
            return Err(self.invalid(
                "session.cookie_domain",
                "empty (this host only) or a host name such as example.com or .example.com",
            ));
        }
        let settings = SessionSettings {
            dsn: self.text("session.dsn"),
            name,
            save_path: PathBuf::from(save_path_dir(&self.text("session.save_path"))),
            save_path_depth: save_path_depth(&self.text("session.save_path")),
            gc_maxlifetime: self.number("session.gc_maxlifetime")?,
            gc_probability: self.number("session.gc_probability")? as u32,
            gc_divisor: self.number("session.gc_divisor")? as u32,
            cookie_lifetime: self.number("session.cookie_lifetime")?,
            cookie_path,
            cookie_domain,
            cookie_secure: self.choice("session.cookie_secure")?,
            cookie_httponly: self.bool("session.cookie_httponly")?,
            cookie_samesite: self.choice("session.cookie_samesite")?,
            use_strict_mode: self.bool("session.use_strict_mode")?,
            lazy_write: self.bool("session.lazy_write")?,
            sid_length: self.usize("session.sid_length")?,
            sid_bits_per_character: self.choice::<u8>("session.sid_bits_per_character")?,
            save_path_fsync: self.bool("session.save_path_fsync")?,
            absolute_lifetime: self.number("session.absolute_lifetime")?,
            max_size: self.number("session.max_size")?,
            serialize_handler: self.choice("session.serialize_handler")?,
            save_path_lock: self.choice("session.save_path_lock")?,
            cache_limiter: self.choice("session.cache_limiter")?,
            cache_expire: self.number("session.cache_expire")?,
        };
        if settings.cookie_samesite == super::CookieSameSite::None
            && settings.cookie_secure != super::CookieSecure::On
        {
            let (_, samesite) = self.raw("session.cookie_samesite");
            let (_, secure) = self.raw("session.cookie_secure");
            return Err(ConfigError::Conflict(format!(
                "session.cookie_samesite = None ({}) needs session.cookie_secure = on, but it is {:?} ({}): browsers drop SameSite=None cookies without Secure",
                samesite.source, secure.text, secure.source
            )));
        }
        let entropy = settings.sid_length * usize::from(settings.sid_bits_per_character);
        if entropy < 128 {
            let (_, length) = self.raw("session.sid_length");
            return Err(ConfigError::Conflict(format!(
                "session.sid_length = {} ({}) with sid_bits_per_character = {} gives {entropy} bits of entropy; at least 128 are needed",
                settings.sid_length, length.source, settings.sid_bits_per_character
            )));
        }
        Ok(settings)
    }
}

/// `8M`, `64K`, `1G` or a plain number of bytes (PHP's shorthand).
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, factor) = match text.chars().last()?.to_ascii_uppercase() {
        'K' => (&text[..text.len() - 1], 1024),
        'M' => (&text[..text.len() - 1], 1024 * 1024),
        'G' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(files: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        load(&LoadOptions {
            ini_dir: dir.path().to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            command_line: Vec::new(),
        })
    }

    fn error_of(files: &[(&str, &str)], env: &[(&str, &str)]) -> String {
        match load_with(files, env) {
            Ok(_) => panic!("expected a configuration error"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn phps_nested_save_path_forms_give_a_depth_and_a_directory() {
        for (text, depth, dir) in [
            ("/var/lib/php/sessions", 0, "/var/lib/php/sessions"),
            ("2;/var/lib/php/sessions", 2, "/var/lib/php/sessions"),
            ("1;0600;/srv/sessions", 1, "/srv/sessions"),
            ("x;/odd", 0, "x;/odd"),
        ] {
            let loaded = load_with(&[], &[("NENE_SESSION__SAVE_PATH", text)]).unwrap();
            let session = &loaded.constants.settings().session;
            assert_eq!(session.save_path_depth, depth, "{text}");
            assert_eq!(session.save_path, PathBuf::from(dir), "{text}");
        }
    }

    #[test]
    fn defaults_apply_without_ini_files() {
        let loaded = load_with(&[], &[]).unwrap();
        let session = &loaded.constants.settings().session;
        assert_eq!(session.gc_maxlifetime, 1440);
        assert_eq!(session.name, "NENESESSID");
        assert_eq!(loaded.constants.get("SESSION_DSN"), Some(""));
        assert!(loaded.files_read.is_empty());
        let limits = &loaded.constants.settings().server.limits;
        assert_eq!(limits.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(limits.max_params_bytes, 64 * 1024);
    }

    #[test]
    fn a_file_overrides_a_default_and_the_environment_overrides_the_file() {
        let files = [(
            "system.ini",
            "[session]\ngc_maxlifetime = 600\nname = FILEID\n",
        )];
        let loaded = load_with(&files, &[("NENE_SESSION__GC_MAXLIFETIME", "77")]).unwrap();
        let constants = &loaded.constants;
        assert_eq!(constants.settings().session.gc_maxlifetime, 77);
        assert_eq!(constants.settings().session.name, "FILEID");
        let all: BTreeMap<_, _> = constants.iter().collect();
        assert_eq!(
            all["SESSION_GC_MAXLIFETIME"].source,
            Source::Env("NENE_SESSION__GC_MAXLIFETIME".into())
        );
        assert!(matches!(
            all["SESSION_NAME"].source,
            Source::File { line: 3, .. }
        ));
        assert_eq!(all["SESSION_COOKIE_PATH"].source, Source::Default);
    }

    #[test]
    fn nene_session_dsn_sets_the_session_dsn_constant() {
        let loaded = load_with(&[], &[("NENE_SESSION_DSN", "redis://cache:6379/2")]).unwrap();
        assert_eq!(
            loaded.constants.get("SESSION_DSN"),
            Some("redis://cache:6379/2")
        );
        assert_eq!(
            loaded.constants.settings().session.dsn,
            "redis://cache:6379/2"
        );
    }

    #[test]
    fn php_style_dotted_keys_and_size_shorthand_are_understood() {
        let files = [(
            "system.ini",
            "session.cookie_httponly = Off\n[server]\nmax_body_bytes = 2M\n",
        )];
        let loaded = load_with(&files, &[]).unwrap();
        let settings = loaded.constants.settings();
        assert!(!settings.session.cookie_httponly);
        assert_eq!(settings.server.limits.max_body_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn site_constants_come_from_site_ini_and_the_environment() {
        let files = [(
            "site.ini",
            "COPYRIGHT = \"ACME\"\n[site]\ntitle = \"My Shop\"\nowner = me\n",
        )];
        let loaded = load_with(&files, &[("NENE_SITE__OWNER", "you")]).unwrap();
        assert_eq!(loaded.constants.get("SITE_TITLE"), Some("My Shop"));
        assert_eq!(loaded.constants.get("COPYRIGHT"), Some("ACME"));
        assert_eq!(loaded.constants.get("SITE_OWNER"), Some("you"));
    }

    #[test]
    fn a_wrong_type_names_the_file_line_key_value_and_what_is_accepted() {
        let error = error_of(
            &[("system.ini", "[session]\n\ngc_maxlifetime = abc\n")],
            &[],
        );
        assert!(error.contains("system.ini:3"), "{error}");
        assert!(error.contains("session.gc_maxlifetime"), "{error}");
        assert!(error.contains("\"abc\""), "{error}");
        assert!(error.contains("a whole number from 1 to"), "{error}");
    }

    #[test]
    fn out_of_range_values_and_bad_choices_are_refused() {
        let error = error_of(&[], &[("NENE_SESSION__SID_LENGTH", "1000")]);
        assert!(error.contains("env NENE_SESSION__SID_LENGTH"), "{error}");
        assert!(error.contains("from 22 to 128"), "{error}");
        let error = error_of(
            &[("system.ini", "[session]\ncookie_samesite = Sometimes\n")],
            &[],
        );
        assert!(
            error.contains("one of Lax, Strict, None, (empty)"),
            "{error}"
        );
        let error = error_of(&[("system.ini", "[server]\nreceive_timeout = soon\n")], &[]);
        assert!(error.contains("a duration"), "{error}");
        let error = error_of(&[("system.ini", "[server]\nlisten = localhost\n")], &[]);
        assert!(error.contains("unix:/path/to.sock"), "{error}");
    }

    #[test]
    fn unknown_keys_get_a_did_you_mean() {
        let error = error_of(&[("system.ini", "[session]\ngc_maxlifetim = 10\n")], &[]);
        assert!(error.contains("system.ini:2"), "{error}");
        assert!(
            error.contains("did you mean session.gc_maxlifetime?"),
            "{error}"
        );
        let error = error_of(&[], &[("NENE_SESSION__COOKIE_SECUR", "on")]);
        assert!(
            error.contains("did you mean NENE_SESSION__COOKIE_SECURE?"),
            "{error}"
        );
        // One underscore instead of two.
        let error = error_of(&[], &[("NENE_SESSION_GC_MAXLIFETIME", "10")]);
        assert!(
            error.contains("did you mean NENE_SESSION__GC_MAXLIFETIME?"),
            "{error}"
        );
        // A misspelt section is not taken for an application constant.
        let error = error_of(&[], &[("NENE_SESION__NAME", "x")]);
        assert!(
            error.contains("did you mean NENE_SESSION__NAME?"),
            "{error}"
        );
        let error = error_of(&[("system.ini", "[sesion]\nname = x\n")], &[]);
        assert!(error.contains("did you mean [session]?"), "{error}");
    }

    #[test]
    fn samesite_none_without_secure_is_refused() {
        let error = error_of(
            &[("system.ini", "[session]\ncookie_samesite = None\n")],
            &[],
        );
        assert!(
            error.contains("needs session.cookie_secure = on"),
            "{error}"
        );
        let ok = load_with(
            &[(
                "system.ini",
                "[session]\ncookie_samesite = None\ncookie_secure = on\n",
            )],
            &[],
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn nene_sections_in_site_ini_and_unreadable_files_are_errors() {
        let error = error_of(&[("site.ini", "[session]\nname = X\n")], &[]);
        assert!(error.contains("belongs in system.ini"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("system.ini")).unwrap();
        let error = load(&LoadOptions {
            ini_dir: dir.path().to_path_buf(),
            ..LoadOptions::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("cannot read ini file"), "{error}");
    }

    #[test]
    fn the_dsn_is_never_shown_in_an_error() {
        let error = error_of(
            &[(
                "system.ini",
                "[session]\ndsn = \"redis://u:hunter2@h:1\"\nname = 123\n",
            )],
            &[],
        );
        assert!(!error.contains("hunter2"), "{error}");
    }
}
