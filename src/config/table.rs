//! Every setting nene knows, each declared once: section, key, default,
//! what it accepts, what it means and PHP's name for it. The loader refuses a
//! key in nene's sections that is not here and parses each value with the
//! kind declared here; `nene config` prints this table, the README's
//! settings table is `nene config --table` (a test holds them equal), and
//! [`super::Settings::defaults`] is this table with nothing overridden.
//!
//! Adding a setting is one entry here plus its use in `building.rs`.

use crate::ops::LogFormat;
use crate::session::{CacheLimiter, CookieSameSite, CookieSecure, SavePathLock, SerializeHandler};
use crate::trace::{OtlpProtocol, SamplerName, TracesExporter};

use super::kinds::{
    AddressList, Bytes, Choice, CookieDomain, CookieName, CookiePath, Destination, DirOrSystemTemp,
    FileMode, FilePath, Flag, ListenAddress, LogFilter, Number, OptionalTimeout, Ratio, SavePath,
    Text, Timeout, UrlPath, Verbatim,
};
use super::setting::{AnySetting, Setting, SettingSpec};

/// Sections that belong to nene; any other section is the application's.
pub const NENE_SECTIONS: &[&str] = &["server", "session", "log", "pm", "ping", "access", "otel"];

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

/// Declares each setting as a typed constant and lists them all in
/// [`SETTINGS`], so a setting cannot be declared and left out of the table.
macro_rules! settings {
    ($($name:ident: $kind:ty = $setting:expr;)*) => {
        $(
            #[doc = concat!("The `", stringify!($name), "` setting (see [`SETTINGS`]).")]
            pub const $name: Setting<$kind> = $setting;
        )*

        /// Every setting, in the order `nene config` and the README list them.
        pub const SETTINGS: &[&dyn AnySetting] = &[$(&$name),*];
    };
}

settings! {
    SERVER_LISTEN: ListenAddress = Setting::new(
        "server",
        "listen",
        "127.0.0.1:9000",
        ListenAddress,
        "listen",
        "FastCGI address: IP:PORT or unix:/path/to.sock",
    )
    .env_alias("NENE_LISTEN");
    SERVER_SOCKET_MODE: FileMode = Setting::new(
        "server",
        "socket_mode",
        "0660",
        FileMode,
        "listen.mode",
        "mode of the Unix socket file (nginx's user must be able to write to it)",
    );
    SERVER_HTDOCS: FilePath = Setting::new(
        "server",
        "htdocs",
        "htdocs",
        FilePath,
        "(nginx root)",
        "document root; 404.html is read from here",
    )
    .env_alias("NENE_HTDOCS");
    // Each connection costs a task and a few KiB; the listen queue holds the
    // rest. Also reported to the web server as FCGI_MAX_CONNS.
    SERVER_MAX_CONNECTIONS: Number = Setting::new(
        "server",
        "max_connections",
        "4096",
        Number { min: 1, max: 1_000_000, },
        "pm.max_children (roughly)",
        "open connections at once; more wait in the listen queue",
    );
    // nginx opens upstream connections in bursts when its kept ones are all
    // busy; a queue that overflows drops them and the kernel retries after a
    // second.
    SERVER_LISTEN_BACKLOG: Number = Setting::new(
        "server",
        "listen_backlog",
        "4096",
        Number { min: 1, max: 65_535, },
        "listen.backlog",
        "connections the kernel queues before nene accepts them (capped by net.core.somaxconn)",
    );
    // tokio's default is one thread per core, for each instance: two
    // instances sharing a 2-core host ran four, and a session shared round
    // robin between them got 3–15% more req/s with one thread each (less
    // parking and waking; benches/two_instances.sh).
    SERVER_WORKER_THREADS: Number = Setting::new(
        "server",
        "worker_threads",
        "0",
        Number { min: 0, max: 1024, },
        "-",
        "threads that run requests; 0 = one per CPU core. Instances that share a host: split its cores between them",
    );
    // nginx never multiplexes (one request per connection); a client that
    // does still gets a few at once, and each waiting request holds a
    // connection's worth of params and body budget.
    SERVER_MAX_REQUESTS_PER_CONNECTION: Number = Setting::new(
        "server",
        "max_requests_per_connection",
        "8",
        Number { min: 1, max: 65_535, },
        "-",
        "requests open at once on one multiplexed connection (FCGI_OVERLOADED above it)",
    );
    SERVER_MAX_PARAMS_BYTES: Bytes = Setting::new(
        "server",
        "max_params_bytes",
        "64K",
        Bytes { min: KIB, max: 16 * MIB, },
        "-",
        "FastCGI params (headers) per request; above it the answer is 431",
    );
    // nginx sends about 20 params plus one per request header, and its own
    // header buffers (4 × 8 KiB) hold a few hundred headers.
    SERVER_MAX_PARAMS: Number = Setting::new(
        "server",
        "max_params",
        "1000",
        Number { min: 32, max: 100_000, },
        "-",
        "FastCGI params (name-value pairs) per request; above it the answer is 431, a pair with an empty name is 400",
    );
    // PHP's post_max_size default.
    SERVER_MAX_BODY_BYTES: Bytes = Setting::new(
        "server",
        "max_body_bytes",
        "8M",
        Bytes { min: 0, max: 4 * GIB, },
        "post_max_size",
        "request body; above it the answer is 413 and the body is never held",
    );
    // One FastCGI record's worth (nginx's own default is two memory pages,
    // 16 KiB on x86-64): a login form or a JSON call stays in memory, an
    // upload goes to disk.
    SERVER_CLIENT_BODY_BUFFER_SIZE: Bytes = Setting::new(
        "server",
        "client_body_buffer_size",
        "64K",
        Bytes { min: 0, max: 16 * MIB, },
        "(nginx client_body_buffer_size)",
        "a body up to this size is kept in memory; a larger one is written to a file in upload_tmp_dir as it arrives",
    );
    SERVER_UPLOAD_TMP_DIR: DirOrSystemTemp = Setting::new(
        "server",
        "upload_tmp_dir",
        "",
        DirOrSystemTemp,
        "upload_tmp_dir",
        "directory of request bodies over client_body_buffer_size and of uploaded files (created 0700); empty = the system's temp directory",
    );
    SERVER_UPLOAD_MAX_FILESIZE: Bytes = Setting::new(
        "server",
        "upload_max_filesize",
        "2M",
        Bytes { min: 0, max: 64 * GIB, },
        "upload_max_filesize",
        "largest file a multipart/form-data upload may carry (UploadForm); above it, 413",
    );
    SERVER_MAX_FILE_UPLOADS: Number = Setting::new(
        "server",
        "max_file_uploads",
        "20",
        Number { min: 1, max: 100_000, },
        "max_file_uploads",
        "most files in one upload (UploadForm); above it, 413",
    );
    SERVER_MAX_INPUT_VARS: Number = Setting::new(
        "server",
        "max_input_vars",
        "1000",
        Number { min: 1, max: 1_000_000, },
        "max_input_vars",
        "most text fields in one multipart/form-data request (UploadForm); above it, 413",
    );
    // 512 requests with full params and an in-memory body each, or about
    // 30,000 with nginx's usual 1–2 KiB of params.
    SERVER_MAX_BUFFERED_BYTES: Bytes = Setting::new(
        "server",
        "max_buffered_bytes",
        "64M",
        Bytes { min: MIB, max: 64 * GIB, },
        "-",
        "params and in-memory bodies of all requests together; a request that would go over it is answered 503",
    );
    SERVER_RECEIVE_TIMEOUT: Timeout = Setting::new(
        "server",
        "receive_timeout",
        "30s",
        Timeout,
        "-",
        "time to receive a whole request; a slower peer is disconnected",
    );
    // Longer than nginx's upstream keepalive_timeout (60 s), so nginx closes
    // an idle kept connection before we do and never sends a request into a
    // connection we are closing.
    SERVER_IDLE_TIMEOUT: Timeout = Setting::new(
        "server",
        "idle_timeout",
        "75s",
        Timeout,
        "-",
        "a kept connection idle this long is closed (keep above nginx's 60 s upstream keepalive)",
    );
    // Below Docker's 10 s stop grace period, so a drain ends before the
    // container runtime resorts to SIGKILL.
    SERVER_DRAIN_TIMEOUT: Timeout = Setting::new(
        "server",
        "drain_timeout",
        "8s",
        Timeout,
        "process_control_timeout",
        "after SIGTERM, time for requests in flight to finish",
    );
    SERVER_ALLOWED_CLIENTS: AddressList = Setting::new(
        "server",
        "allowed_clients",
        "127.0.0.1, ::1",
        AddressList { at_least_one: true },
        "listen.allowed_clients",
        "TCP clients (IPs or CIDRs) that may connect; others are closed at accept (0.0.0.0/0, ::/0: anyone)",
    );
    SERVER_TRUSTED_PROXIES: AddressList = Setting::new(
        "server",
        "trusted_proxies",
        "",
        AddressList { at_least_one: false },
        "-",
        "peers (IPs or CIDRs) whose X-Forwarded-Proto is believed",
    );
    SERVER_LAYERS_NUM: Number = Setting::new(
        "server",
        "layers_num",
        "0",
        Number { min: 0, max: 16 },
        "(NeNe LAYERS_NUM)",
        "leading path segments the dispatcher skips (an app under a sub-path)",
    );
    SESSION_DSN: Text = Setting::new(
        "session",
        "dsn",
        "",
        Text,
        "session.save_handler + save_path",
        "SESSION_DSN: empty = files; redis://, memcached://, sqlite://, mysql://, postgres:// (see Sessions)",
    )
    .env_alias("NENE_SESSION_DSN")
    .secret();
    SESSION_MIGRATE_FROM: Text = Setting::new(
        "session",
        "migrate_from",
        "",
        Text,
        "-",
        "while switching backends: the old SESSION_DSN (`files` = files in save_path); an id the new backend lacks is read there and moved over",
    )
    .secret();
    SESSION_NAME: CookieName = Setting::new(
        "session",
        "name",
        "NENESESSID",
        CookieName,
        "session.name",
        "session cookie name",
    );
    SESSION_SAVE_PATH: SavePath = Setting::new(
        "session",
        "save_path",
        "var/sessions",
        SavePath,
        "session.save_path",
        "directory of session files (created 0700); PHP's N;/path keeps them N levels of subdirectories down",
    );
    SESSION_GC_MAXLIFETIME: Number = Setting::new(
        "session",
        "gc_maxlifetime",
        "1440",
        Number { min: 1, max: 315_360_000, },
        "session.gc_maxlifetime",
        "seconds a session lives after its last use (Redis TTL)",
    );
    SESSION_GC_PROBABILITY: Number = Setting::new(
        "session",
        "gc_probability",
        "1",
        Number { min: 0, max: 1_000_000, },
        "session.gc_probability",
        "file gc runs on gc_probability/gc_divisor of session starts",
    );
    SESSION_GC_DIVISOR: Number = Setting::new(
        "session",
        "gc_divisor",
        "100",
        Number { min: 1, max: 1_000_000, },
        "session.gc_divisor",
        "see gc_probability",
    );
    SESSION_COOKIE_LIFETIME: Number = Setting::new(
        "session",
        "cookie_lifetime",
        "0",
        Number { min: 0, max: 315_360_000, },
        "session.cookie_lifetime",
        "cookie Max-Age in seconds; 0 = until the browser closes",
    );
    SESSION_COOKIE_PATH: CookiePath = Setting::new(
        "session",
        "cookie_path",
        "/",
        CookiePath,
        "session.cookie_path",
        "cookie Path",
    );
    SESSION_COOKIE_DOMAIN: CookieDomain = Setting::new(
        "session",
        "cookie_domain",
        "",
        CookieDomain,
        "session.cookie_domain",
        "cookie Domain; empty = the host that set it",
    );
    SESSION_COOKIE_SECURE: Choice<CookieSecure> = Setting::new(
        "session",
        "cookie_secure",
        "auto",
        Choice::<CookieSecure>::of(),
        "session.cookie_secure",
        "Secure flag; auto = when the request came over HTTPS",
    );
    SESSION_COOKIE_HTTPONLY: Flag = Setting::new(
        "session",
        "cookie_httponly",
        "on",
        Flag,
        "session.cookie_httponly",
        "HttpOnly flag (scripts cannot read the cookie)",
    );
    SESSION_COOKIE_SAMESITE: Choice<CookieSameSite> = Setting::new(
        "session",
        "cookie_samesite",
        "Lax",
        Choice::<CookieSameSite>::of(),
        "session.cookie_samesite",
        "SameSite attribute; None needs cookie_secure = on",
    );
    SESSION_USE_STRICT_MODE: Flag = Setting::new(
        "session",
        "use_strict_mode",
        "on",
        Flag,
        "session.use_strict_mode",
        "an id the backend does not know is replaced, never adopted",
    );
    SESSION_LAZY_WRITE: Flag = Setting::new(
        "session",
        "lazy_write",
        "on",
        Flag,
        "session.lazy_write",
        "an unchanged session only has its expiry refreshed",
    );
    SESSION_SID_LENGTH: Number = Setting::new(
        "session",
        "sid_length",
        "32",
        Number { min: 22, max: 128 },
        "session.sid_length",
        "characters in a session id",
    );
    SESSION_SID_BITS_PER_CHARACTER: Number = Setting::new(
        "session",
        "sid_bits_per_character",
        "5",
        Number { min: 4, max: 6 },
        "session.sid_bits_per_character",
        "bits per id character",
    );
    SESSION_SAVE_PATH_FSYNC: Flag = Setting::new(
        "session",
        "save_path_fsync",
        "off",
        Flag,
        "-",
        "files: fsync each session file before it replaces the old one (survives power loss, costs a disk flush per write)",
    );
    SESSION_ABSOLUTE_LIFETIME: Number = Setting::new(
        "session",
        "absolute_lifetime",
        "0",
        Number { min: 0, max: 315_360_000, },
        "-",
        "seconds after creation when a session ends however active; 0 = off",
    );
    // At least 1 KiB: below that even a login does not fit. At most
    // 512 MiB, Redis' own limit for one string.
    SESSION_MAX_SIZE: Bytes = Setting::new(
        "session",
        "max_size",
        "4M",
        Bytes { min: 1024, max: 512 * 1024 * 1024, },
        "-",
        "largest stored session in bytes: a larger stored value is not loaded (the session starts empty and is left alone), a session that grows past it is not stored (500)",
    );
    SESSION_SERIALIZE_HANDLER: Choice<SerializeHandler> = Setting::new(
        "session",
        "serialize_handler",
        "json",
        Choice::<SerializeHandler>::of(),
        "session.serialize_handler",
        "the format sessions are stored in: json (nene's), or PHP's php / php_serialize to share sessions with a PHP application",
    );
    SESSION_SAVE_PATH_LOCK: Choice<SavePathLock> = Setting::new(
        "session",
        "save_path_lock",
        "lock_file",
        Choice::<SavePathLock>::of(),
        "-",
        "files: lock_file (sess_{id}.lock, files replaced whole) or session_file (PHP's flock on sess_{id}, written in place) to share a save_path with PHP",
    );
    // As long as Redis' `lock_wait` default: long enough for a slow request
    // of the same session to finish, short enough that a stuck one turns
    // into a 503 the user can retry.
    SESSION_SAVE_PATH_LOCK_WAIT: Timeout = Setting::new(
        "session",
        "save_path_lock_wait",
        "10s",
        Timeout,
        "-",
        "files: longest wait for a session's lock another request holds; then a 503 (Redis: the DSN's lock_wait)",
    );
    SESSION_CACHE_LIMITER: Choice<CacheLimiter> = Setting::new(
        "session",
        "cache_limiter",
        "nocache",
        Choice::<CacheLimiter>::of(),
        "session.cache_limiter",
        "caching headers on responses that used the session",
    );
    SESSION_CACHE_EXPIRE: Number = Setting::new(
        "session",
        "cache_expire",
        "180",
        Number { min: 0, max: 525_600, },
        "session.cache_expire",
        "minutes, for the private and public cache limiters",
    );
    SERVER_REQUEST_TERMINATE_TIMEOUT: OptionalTimeout = Setting::new(
        "server",
        "request_terminate_timeout",
        "30s",
        OptionalTimeout,
        "request_terminate_timeout",
        "a handler running longer is dropped and the request gets 504; 0 = no limit",
    );
    SERVER_REQUEST_SLOWLOG_TIMEOUT: OptionalTimeout = Setting::new(
        "server",
        "request_slowlog_timeout",
        "5s",
        OptionalTimeout,
        "request_slowlog_timeout",
        "requests slower than this are written to the slow log; 0 = off",
    );
    SERVER_SLOWLOG: Destination = Setting::new(
        "server",
        "slowlog",
        "stderr",
        Destination,
        "slowlog",
        "where the slow log goes: stderr or a file path",
    );
    PM_STATUS_PATH: UrlPath = Setting::new(
        "pm",
        "status_path",
        "/status",
        UrlPath,
        "pm.status_path",
        "path nene answers with its status page (text, ?json, ?html, ?openmetrics); empty = off",
    );
    PM_STATUS_ALLOW: AddressList = Setting::new(
        "pm",
        "status_allow",
        "127.0.0.1, ::1",
        AddressList { at_least_one: false },
        "-",
        "client addresses (REMOTE_ADDR) allowed to read the status page; others get 403",
    );
    PING_PATH: UrlPath = Setting::new(
        "ping",
        "path",
        "/ping",
        UrlPath,
        "ping.path",
        "path nene answers itself, without touching sessions; empty = off",
    );
    PING_RESPONSE: Text = Setting::new(
        "ping",
        "response",
        "pong",
        Text,
        "ping.response",
        "body of the ping answer",
    );
    ACCESS_LOG: Destination = Setting::new(
        "access",
        "log",
        "stderr",
        Destination,
        "access.log",
        "where the access log goes: stderr, a file path, or off",
    );
    ACCESS_FORMAT: Verbatim = Setting::new(
        "access",
        "format",
        "%R - %u %t \"%m %r%Q%q\" %s %{mili}d",
        Verbatim,
        "access.format",
        "access log line, PHP-FPM's format codes (see below)",
    );
    LOG_LEVEL: LogFilter = Setting::new(
        "log",
        "level",
        "info",
        LogFilter,
        "log_level",
        "log filter (RUST_LOG, when set, wins)",
    );
    LOG_FORMAT: Choice<LogFormat> = Setting::new(
        "log",
        "format",
        "text",
        Choice::<LogFormat>::of(),
        "-",
        "text lines, or one JSON object per line",
    );
    OTEL_TRACES_EXPORTER: Choice<TracesExporter> = Setting::new(
        "otel",
        "traces_exporter",
        "none",
        Choice::<TracesExporter>::of(),
        "-",
        "otlp sends a trace of each sampled request to a collector (feature otel)",
    )
    .env_alias("OTEL_TRACES_EXPORTER");
    OTEL_EXPORTER_OTLP_ENDPOINT: Text = Setting::new(
        "otel",
        "exporter_otlp_endpoint",
        "",
        Text,
        "-",
        "the collector's URL; empty = http://localhost:4317 (grpc) or :4318 (http/protobuf)",
    )
    .env_alias("OTEL_EXPORTER_OTLP_ENDPOINT");
    OTEL_EXPORTER_OTLP_PROTOCOL: Choice<OtlpProtocol> = Setting::new(
        "otel",
        "exporter_otlp_protocol",
        "http/protobuf",
        Choice::<OtlpProtocol>::of(),
        "-",
        "grpc or http/protobuf",
    )
    .env_alias("OTEL_EXPORTER_OTLP_PROTOCOL");
    OTEL_SERVICE_NAME: Text = Setting::new(
        "otel",
        "service_name",
        "nene",
        Text,
        "-",
        "service.name of every span",
    )
    .env_alias("OTEL_SERVICE_NAME");
    OTEL_TRACES_SAMPLER: Choice<SamplerName> = Setting::new(
        "otel",
        "traces_sampler",
        "parentbased_always_on",
        Choice::<SamplerName>::of(),
        "-",
        "which requests are traced (the specification's sampler names)",
    )
    .env_alias("OTEL_TRACES_SAMPLER");
    OTEL_TRACES_SAMPLER_ARG: Ratio = Setting::new(
        "otel",
        "traces_sampler_arg",
        "1.0",
        Ratio,
        "-",
        "the ratio of the traceidratio samplers, 0 to 1",
    )
    .env_alias("OTEL_TRACES_SAMPLER_ARG");
    OTEL_BSP_MAX_QUEUE_SIZE: Number = Setting::new(
        "otel",
        "bsp_max_queue_size",
        "2048",
        Number { min: 1, max: 1 << 20 },
        "-",
        "finished spans that may wait for the exporter; more are dropped and counted",
    )
    .env_alias("OTEL_BSP_MAX_QUEUE_SIZE");
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: Number = Setting::new(
        "otel",
        "bsp_max_export_batch_size",
        "512",
        Number { min: 1, max: 1 << 20 },
        "-",
        "spans per export",
    )
    .env_alias("OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
    OTEL_BSP_SCHEDULE_DELAY: Number = Setting::new(
        "otel",
        "bsp_schedule_delay",
        "5000",
        Number { min: 0, max: 3_600_000 },
        "-",
        "milliseconds a finished span waits at most for its batch",
    )
    .env_alias("OTEL_BSP_SCHEDULE_DELAY");
    OTEL_BSP_EXPORT_TIMEOUT: Number = Setting::new(
        "otel",
        "bsp_export_timeout",
        "30000",
        Number { min: 1, max: 3_600_000 },
        "-",
        "milliseconds an export may take before its spans are dropped",
    )
    .env_alias("OTEL_BSP_EXPORT_TIMEOUT");
}

/// The setting `section.key`, if nene knows it.
pub fn find(section: &str, key: &str) -> Option<&'static SettingSpec> {
    SETTINGS
        .iter()
        .map(|setting| setting.spec())
        .find(|spec| spec.section == section && spec.key == key)
}

/// The settings table as markdown, for the README (`nene config --table`).
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| setting | default | environment | meaning | PHP equivalent |\n|---|---|---|---|---|\n",
    );
    for spec in SETTINGS.iter().map(|setting| setting.spec()) {
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
