//! Every setting nene knows, in one table: section, key, default, what it
//! accepts, what it means, and PHP's equivalent. The loader validates against
//! it, `nene config` prints it, and the README's settings table follows it.

/// What a setting accepts. Validation turns the raw text into a message
/// naming the source and saying what is accepted when it does not fit.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `on/off`, `true/false`, `yes/no`, `1/0` (PHP ini booleans).
    Bool,
    /// A whole number within bounds.
    Number {
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// A byte size: a number, optionally with PHP's `K`, `M` or `G` suffix.
    Bytes {
        /// The fewest bytes accepted.
        min: u64,
        /// The most bytes accepted.
        max: u64,
    },
    /// A duration such as `30s`, `500ms`, `2m`.
    Duration,
    /// A duration, or `0` / `off` for none.
    OptionalDuration,
    /// Free text.
    Text,
    /// One of a fixed list (case-insensitive).
    Choice(&'static [&'static str]),
    /// `IP:PORT` or `unix:/path`.
    ListenAddr,
    /// An octal file mode such as `0660`.
    FileMode,
    /// Comma-separated IP addresses or CIDR ranges.
    AddressList,
    /// The session DSN (validated by the session factory's parser).
    Dsn,
    /// A log filter such as `info` or `nene=debug,warn`.
    LogFilter,
}

/// One setting.
#[derive(Clone, Copy, Debug)]
pub struct SettingSpec {
    /// The ini section, without brackets: `server`, `session`, …
    pub section: &'static str,
    /// The key within the section, lower case.
    pub key: &'static str,
    /// The value used when no file, variable or flag sets it.
    pub default: &'static str,
    /// What the value must be; validation and the message for a bad value
    /// follow it.
    pub kind: Kind,
    /// A second environment variable that also sets it (`NENE_SESSION_DSN`
    /// for `SESSION_DSN`, see docs/decisions/0006; `NENE_LISTEN`).
    pub env_alias: Option<&'static str>,
    /// PHP's (or PHP-FPM's) name for the same thing, `-` when there is none;
    /// printed in the settings table.
    pub php: &'static str,
    /// One line on what the setting does, for `nene config` and the README.
    pub meaning: &'static str,
}

impl SettingSpec {
    /// `section.key`, as written in messages.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    /// The environment variable that overrides it: `NENE_{SECTION}__{KEY}`.
    pub fn env_var(&self) -> String {
        format!(
            "NENE_{}__{}",
            self.section.to_ascii_uppercase(),
            self.key.to_ascii_uppercase()
        )
    }

    /// The constant name: `SECTION_KEY` in upper case.
    pub fn constant_name(&self) -> String {
        format!(
            "{}_{}",
            self.section.to_ascii_uppercase(),
            self.key.to_ascii_uppercase()
        )
    }
}

/// Sections that belong to nene; any other section is the application's.
pub const NENE_SECTIONS: &[&str] = &["server", "session", "log", "pm", "ping", "access"];

const fn setting(
    section: &'static str,
    key: &'static str,
    default: &'static str,
    kind: Kind,
    php: &'static str,
    meaning: &'static str,
) -> SettingSpec {
    SettingSpec {
        section,
        key,
        default,
        kind,
        env_alias: None,
        php,
        meaning,
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

/// Every setting nene knows. The loader refuses a key in nene's sections that
/// is not here, and fills each one missing from every source with its default.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        env_alias: Some("NENE_LISTEN"),
        ..setting(
            "server",
            "listen",
            "127.0.0.1:9000",
            Kind::ListenAddr,
            "listen",
            "FastCGI address: IP:PORT or unix:/path/to.sock",
        )
    },
    setting(
        "server",
        "socket_mode",
        "0660",
        Kind::FileMode,
        "listen.mode",
        "mode of the Unix socket file (nginx's user must be able to write to it)",
    ),
    SettingSpec {
        env_alias: Some("NENE_HTDOCS"),
        ..setting(
            "server",
            "htdocs",
            "htdocs",
            Kind::Text,
            "(nginx root)",
            "document root; 404.html is read from here",
        )
    },
    setting(
        "server",
        "max_connections",
        "4096",
        Kind::Number {
            min: 1,
            max: 1_000_000,
        },
        "pm.max_children (roughly)",
        "open connections at once; more wait in the listen queue",
    ),
    setting(
        "server",
        "listen_backlog",
        "4096",
        Kind::Number {
            min: 1,
            max: 65_535,
        },
        "listen.backlog",
        "connections the kernel queues before nene accepts them (capped by net.core.somaxconn)",
    ),
    setting(
        "server",
        "max_requests_per_connection",
        "8",
        Kind::Number {
            min: 1,
            max: 65_535,
        },
        "-",
        "requests open at once on one multiplexed connection (FCGI_OVERLOADED above it)",
    ),
    setting(
        "server",
        "max_params_bytes",
        "64K",
        Kind::Bytes {
            min: KIB,
            max: 16 * MIB,
        },
        "-",
        "FastCGI params (headers) per request; above it the answer is 431",
    ),
    setting(
        "server",
        "max_params",
        "1000",
        Kind::Number {
            min: 32,
            max: 100_000,
        },
        "-",
        "FastCGI params (name-value pairs) per request; above it the answer is 431, a pair with an empty name is 400",
    ),
    setting(
        "server",
        "max_body_bytes",
        "8M",
        Kind::Bytes {
            min: 0,
            max: 4 * GIB,
        },
        "post_max_size",
        "request body; above it the answer is 413 and the body is never held",
    ),
    setting(
        "server",
        "client_body_buffer_size",
        "64K",
        Kind::Bytes {
            min: 0,
            max: 16 * MIB,
        },
        "(nginx client_body_buffer_size)",
        "a body up to this size is kept in memory; a larger one is written to a file in upload_tmp_dir as it arrives",
    ),
    setting(
        "server",
        "upload_tmp_dir",
        "",
        Kind::Text,
        "upload_tmp_dir",
        "directory of request bodies over client_body_buffer_size and of uploaded files (created 0700); empty = the system's temp directory",
    ),
    setting(
        "server",
        "upload_max_filesize",
        "2M",
        Kind::Bytes {
            min: 0,
            max: 64 * GIB,
        },
        "upload_max_filesize",
        "largest file a multipart/form-data upload may carry (UploadForm); above it, 413",
    ),
    setting(
        "server",
        "max_file_uploads",
        "20",
        Kind::Number {
            min: 1,
            max: 100_000,
        },
        "max_file_uploads",
        "most files in one upload (UploadForm); above it, 413",
    ),
    setting(
        "server",
        "max_input_vars",
        "1000",
        Kind::Number {
            min: 1,
            max: 1_000_000,
        },
        "max_input_vars",
        "most text fields in one multipart/form-data request (UploadForm); above it, 413",
    ),
    setting(
        "server",
        "max_buffered_bytes",
        "64M",
        Kind::Bytes {
            min: MIB,
            max: 64 * GIB,
        },
        "-",
        "params and in-memory bodies of all requests together; a request that would go over it is answered 503",
    ),
    setting(
        "server",
        "receive_timeout",
        "30s",
        Kind::Duration,
        "-",
        "time to receive a whole request; a slower peer is disconnected",
    ),
    setting(
        "server",
        "idle_timeout",
        "75s",
        Kind::Duration,
        "-",
        "a kept connection idle this long is closed (keep above nginx's 60 s upstream keepalive)",
    ),
    setting(
        "server",
        "drain_timeout",
        "8s",
        Kind::Duration,
        "process_control_timeout",
        "after SIGTERM, time for requests in flight to finish",
    ),
    setting(
        "server",
        "allowed_clients",
        "127.0.0.1, ::1",
        Kind::AddressList,
        "listen.allowed_clients",
        "TCP clients (IPs or CIDRs) that may connect; others are closed at accept (0.0.0.0/0, ::/0: anyone)",
    ),
    setting(
        "server",
        "trusted_proxies",
        "",
        Kind::AddressList,
        "-",
        "peers (IPs or CIDRs) whose X-Forwarded-Proto is believed",
    ),
    setting(
        "server",
        "layers_num",
        "0",
        Kind::Number { min: 0, max: 16 },
        "(NeNe LAYERS_NUM)",
        "leading path segments the dispatcher skips (an app under a sub-path)",
    ),
    SettingSpec {
        env_alias: Some("NENE_SESSION_DSN"),
        ..setting(
            "session",
            "dsn",
            "",
            Kind::Dsn,
            "session.save_handler + save_path",
            "SESSION_DSN: empty = files, redis://host:port[/db] = Redis",
        )
    },
    setting(
        "session",
        "name",
        "NENESESSID",
        Kind::Text,
        "session.name",
        "session cookie name",
    ),
    setting(
        "session",
        "save_path",
        "var/sessions",
        Kind::Text,
        "session.save_path",
        "directory of session files (created 0700); PHP's N;/path keeps them N levels of subdirectories down",
    ),
    setting(
        "session",
        "gc_maxlifetime",
        "1440",
        Kind::Number {
            min: 1,
            max: 315_360_000,
        },
        "session.gc_maxlifetime",
        "seconds a session lives after its last use (Redis TTL)",
    ),
    setting(
        "session",
        "gc_probability",
        "1",
        Kind::Number {
            min: 0,
            max: 1_000_000,
        },
        "session.gc_probability",
        "file gc runs on gc_probability/gc_divisor of session starts",
    ),
    setting(
        "session",
        "gc_divisor",
        "100",
        Kind::Number {
            min: 1,
            max: 1_000_000,
        },
        "session.gc_divisor",
        "see gc_probability",
    ),
    setting(
        "session",
        "cookie_lifetime",
        "0",
        Kind::Number {
            min: 0,
            max: 315_360_000,
        },
        "session.cookie_lifetime",
        "cookie Max-Age in seconds; 0 = until the browser closes",
    ),
    setting(
        "session",
        "cookie_path",
        "/",
        Kind::Text,
        "session.cookie_path",
        "cookie Path",
    ),
    setting(
        "session",
        "cookie_domain",
        "",
        Kind::Text,
        "session.cookie_domain",
        "cookie Domain; empty = the host that set it",
    ),
    setting(
        "session",
        "cookie_secure",
        "auto",
        Kind::Choice(&["auto", "on", "off"]),
        "session.cookie_secure",
        "Secure flag; auto = when the request came over HTTPS",
    ),
    setting(
        "session",
        "cookie_httponly",
        "on",
        Kind::Bool,
        "session.cookie_httponly",
        "HttpOnly flag (scripts cannot read the cookie)",
    ),
    setting(
        "session",
        "cookie_samesite",
        "Lax",
        Kind::Choice(&["Lax", "Strict", "None", ""]),
        "session.cookie_samesite",
        "SameSite attribute; None needs cookie_secure = on",
    ),
    setting(
        "session",
        "use_strict_mode",
        "on",
        Kind::Bool,
        "session.use_strict_mode",
        "an id the backend does not know is replaced, never adopted",
    ),
    setting(
        "session",
        "lazy_write",
        "on",
        Kind::Bool,
        "session.lazy_write",
        "an unchanged session only has its expiry refreshed",
    ),
    setting(
        "session",
        "sid_length",
        "32",
        Kind::Number { min: 22, max: 128 },
        "session.sid_length",
        "characters in a session id",
    ),
    setting(
        "session",
        "sid_bits_per_character",
        "5",
        Kind::Choice(&["4", "5", "6"]),
        "session.sid_bits_per_character",
        "bits per id character",
    ),
    setting(
        "session",
        "save_path_fsync",
        "off",
        Kind::Bool,
        "-",
        "files: fsync each session file before it replaces the old one (survives power loss, costs a disk flush per write)",
    ),
    setting(
        "session",
        "absolute_lifetime",
        "0",
        Kind::Number {
            min: 0,
            max: 315_360_000,
        },
        "-",
        "seconds after creation when a session ends however active; 0 = off",
    ),
    setting(
        "session",
        "max_size",
        "4M",
        // At least 1 KiB: below that even a login does not fit. At most
        // 512 MiB, Redis' own limit for one string.
        Kind::Bytes {
            min: 1024,
            max: 512 * 1024 * 1024,
        },
        "-",
        "largest stored session in bytes: a larger stored value is not loaded (the session starts empty and is left alone), a session that grows past it is not stored (500)",
    ),
    setting(
        "session",
        "serialize_handler",
        "json",
        Kind::Choice(&["json", "php", "php_serialize"]),
        "session.serialize_handler",
        "the format sessions are stored in: json (nene's), or PHP's php / php_serialize to share sessions with a PHP application",
    ),
    setting(
        "session",
        "save_path_lock",
        "lock_file",
        Kind::Choice(&["lock_file", "session_file"]),
        "-",
        "files: lock_file (sess_{id}.lock, files replaced whole) or session_file (PHP's flock on sess_{id}, written in place) to share a save_path with PHP",
    ),
    setting(
        "session",
        "cache_limiter",
        "nocache",
        Kind::Choice(&["nocache", "private", "private_no_expire", "public", ""]),
        "session.cache_limiter",
        "caching headers on responses that used the session",
    ),
    setting(
        "session",
        "cache_expire",
        "180",
        Kind::Number {
            min: 0,
            max: 525_600,
        },
        "session.cache_expire",
        "minutes, for the private and public cache limiters",
    ),
    setting(
        "server",
        "request_terminate_timeout",
        "30s",
        Kind::OptionalDuration,
        "request_terminate_timeout",
        "a handler running longer is dropped and the request gets 504; 0 = no limit",
    ),
    setting(
        "server",
        "request_slowlog_timeout",
        "5s",
        Kind::OptionalDuration,
        "request_slowlog_timeout",
        "requests slower than this are written to the slow log; 0 = off",
    ),
    setting(
        "server",
        "slowlog",
        "stderr",
        Kind::Text,
        "slowlog",
        "where the slow log goes: stderr or a file path",
    ),
    setting(
        "pm",
        "status_path",
        "/status",
        Kind::Text,
        "pm.status_path",
        "path nene answers with its status page (text, ?json, ?openmetrics); empty = off",
    ),
    setting(
        "pm",
        "status_allow",
        "127.0.0.1, ::1",
        Kind::AddressList,
        "-",
        "client addresses (REMOTE_ADDR) allowed to read the status page; others get 403",
    ),
    setting(
        "ping",
        "path",
        "/ping",
        Kind::Text,
        "ping.path",
        "path nene answers itself, without touching sessions; empty = off",
    ),
    setting(
        "ping",
        "response",
        "pong",
        Kind::Text,
        "ping.response",
        "body of the ping answer",
    ),
    setting(
        "access",
        "log",
        "stderr",
        Kind::Text,
        "access.log",
        "where the access log goes: stderr, a file path, or off",
    ),
    setting(
        "access",
        "format",
        "%R - %u %t \"%m %r%Q%q\" %s %{mili}d",
        Kind::Text,
        "access.format",
        "access log line, PHP-FPM's format codes (see below)",
    ),
    setting(
        "log",
        "level",
        "info",
        Kind::LogFilter,
        "log_level",
        "log filter (RUST_LOG, when set, wins)",
    ),
    setting(
        "log",
        "format",
        "text",
        Kind::Choice(&["text", "json"]),
        "-",
        "text lines, or one JSON object per line",
    ),
];

/// The spec of `section.key`, if nene knows it.
pub fn find(section: &str, key: &str) -> Option<&'static SettingSpec> {
    SETTINGS
        .iter()
        .find(|spec| spec.section == section && spec.key == key)
}

/// The settings table as markdown, for the README (`nene config --table`).
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| setting | default | environment | meaning | PHP equivalent |\n|---|---|---|---|---|\n",
    );
    for spec in SETTINGS {
        let env = match spec.env_alias {
            Some(alias) => format!("`{alias}` or `{}`", spec.env_var()),
            None => format!("`{}`", spec.env_var()),
        };
        let default = if spec.default.is_empty() {
            "(empty)".to_string()
        } else {
            format!("`{}`", spec.default)
        };
        table.push_str(&format!(
            "| `{}` | {default} | {env} | {} | {} |\n",
            spec.dotted(),
            spec.meaning,
            spec.php
        ));
    }
    table
}
