//! Building: the final text of every setting, already layered, into the
//! typed settings each part of nene runs with. Each value is read through
//! its declaration in [`super::table`], so a setting can only be read as the
//! type it was declared with, and the checks that span two settings live
//! here.

use crate::fastcgi::ConnectionLimits;
use crate::ops::OpsSettings;
use crate::server::ServerSettings;
use crate::session::{CookieSameSite, CookieSecure, SessionSettings};
use crate::trace::TraceSettings;
use crate::upload::UploadSettings;

use super::error::ConfigError;
use super::layering::RawValues;
use super::setting::{Accepts, Setting};
use super::settings::Settings;
use super::table::*;

/// Reads typed values out of the layered text.
struct Reader<'a> {
    values: &'a RawValues,
}

impl Reader<'_> {
    /// `setting`'s value, or an error naming where the bad text came from.
    fn get<A: Accepts>(&self, setting: &Setting<A>) -> Result<A::Value, ConfigError> {
        let raw = self.values.raw(&setting.spec);
        setting
            .parse(&raw.text)
            .map_err(|accepted| ConfigError::invalid(&setting.spec, &raw, accepted))
    }

    /// A count for a `usize` field; the table bounds every count far below
    /// `usize::MAX`, so the saturation never happens.
    fn count<A: Accepts<Value = u64>>(&self, setting: &Setting<A>) -> Result<usize, ConfigError> {
        Ok(usize::try_from(self.get(setting)?).unwrap_or(usize::MAX))
    }
}

/// Every typed setting from `values`; the first problem is the error.
pub(super) fn build_settings(values: &RawValues) -> Result<Settings, ConfigError> {
    let read = Reader { values };
    let server = build_server(&read)?;
    let uploads = UploadSettings {
        tmp_dir: server.limits.upload_tmp_dir.clone(),
        upload_max_filesize: read.get(&SERVER_UPLOAD_MAX_FILESIZE)?,
        max_file_uploads: read.count(&SERVER_MAX_FILE_UPLOADS)?,
        max_input_vars: read.count(&SERVER_MAX_INPUT_VARS)?,
    };
    Ok(Settings {
        uploads,
        server,
        htdocs: read.get(&SERVER_HTDOCS)?,
        trusted_proxies: read.get(&SERVER_TRUSTED_PROXIES)?,
        layers_num: read.count(&SERVER_LAYERS_NUM)?,
        session: build_session(&read)?,
        log_level: read.get(&LOG_LEVEL)?,
        ops: build_ops(&read)?,
        trace: build_trace(&read)?,
    })
}

fn build_trace(read: &Reader<'_>) -> Result<TraceSettings, ConfigError> {
    let millis = |setting| -> Result<_, ConfigError> {
        Ok(std::time::Duration::from_millis(read.get(setting)?))
    };
    Ok(TraceSettings {
        exporter: read.get(&OTEL_TRACES_EXPORTER)?,
        endpoint: Some(read.get(&OTEL_EXPORTER_OTLP_ENDPOINT)?).filter(|url| !url.is_empty()),
        protocol: read.get(&OTEL_EXPORTER_OTLP_PROTOCOL)?,
        service_name: read.get(&OTEL_SERVICE_NAME)?,
        sampler: read.get(&OTEL_TRACES_SAMPLER)?,
        sampler_ratio: read.get(&OTEL_TRACES_SAMPLER_ARG)?,
        max_queue_size: read.count(&OTEL_BSP_MAX_QUEUE_SIZE)?,
        max_export_batch_size: read.count(&OTEL_BSP_MAX_EXPORT_BATCH_SIZE)?,
        schedule_delay: millis(&OTEL_BSP_SCHEDULE_DELAY)?,
        export_timeout: millis(&OTEL_BSP_EXPORT_TIMEOUT)?,
    })
}

fn build_server(read: &Reader<'_>) -> Result<ServerSettings, ConfigError> {
    let server = ServerSettings {
        listen: read.get(&SERVER_LISTEN)?,
        socket_mode: read.get(&SERVER_SOCKET_MODE)?,
        // At most 65,535 (the table's bound).
        listen_backlog: read.get(&SERVER_LISTEN_BACKLOG)? as u32,
        worker_threads: Some(read.count(&SERVER_WORKER_THREADS)?).filter(|&threads| threads > 0),
        limits: ConnectionLimits {
            max_params_bytes: read.count(&SERVER_MAX_PARAMS_BYTES)?,
            max_params: read.count(&SERVER_MAX_PARAMS)?,
            max_body_bytes: read.count(&SERVER_MAX_BODY_BYTES)?,
            client_body_buffer_size: read.count(&SERVER_CLIENT_BODY_BUFFER_SIZE)?,
            upload_tmp_dir: read.get(&SERVER_UPLOAD_TMP_DIR)?,
            max_buffered_bytes: read.count(&SERVER_MAX_BUFFERED_BYTES)?,
            receive_timeout: read.get(&SERVER_RECEIVE_TIMEOUT)?,
            idle_timeout: read.get(&SERVER_IDLE_TIMEOUT)?,
            max_requests_per_connection: read.count(&SERVER_MAX_REQUESTS_PER_CONNECTION)?,
            max_connections: read.count(&SERVER_MAX_CONNECTIONS)?,
        },
        drain_timeout: read.get(&SERVER_DRAIN_TIMEOUT)?,
        allowed_clients: read.get(&SERVER_ALLOWED_CLIENTS)?,
    };
    let limits = &server.limits;
    // One request must always fit: full params and a body at the in-memory
    // threshold, or every such request would be refused.
    if limits.max_params_bytes + limits.client_body_buffer_size > limits.max_buffered_bytes {
        let budget = read.values.raw(&SERVER_MAX_BUFFERED_BYTES.spec);
        return Err(ConfigError::Conflict(format!(
            "server.max_buffered_bytes = {} ({}) is less than one request may hold: max_params_bytes ({}) + client_body_buffer_size ({})",
            budget.text, budget.source, limits.max_params_bytes, limits.client_body_buffer_size
        )));
    }
    Ok(server)
}

fn build_session(read: &Reader<'_>) -> Result<SessionSettings, ConfigError> {
    let (save_path_depth, save_path) = read.get(&SESSION_SAVE_PATH)?;
    let settings = SessionSettings {
        dsn: read.get(&SESSION_DSN)?,
        migrate_from: read.get(&SESSION_MIGRATE_FROM)?,
        name: read.get(&SESSION_NAME)?,
        save_path,
        save_path_depth,
        gc_maxlifetime: read.get(&SESSION_GC_MAXLIFETIME)?,
        // Both at most 1,000,000 (the table's bounds).
        gc_probability: read.get(&SESSION_GC_PROBABILITY)? as u32,
        gc_divisor: read.get(&SESSION_GC_DIVISOR)? as u32,
        cookie_lifetime: read.get(&SESSION_COOKIE_LIFETIME)?,
        cookie_path: read.get(&SESSION_COOKIE_PATH)?,
        cookie_domain: read.get(&SESSION_COOKIE_DOMAIN)?,
        cookie_secure: read.get(&SESSION_COOKIE_SECURE)?,
        cookie_httponly: read.get(&SESSION_COOKIE_HTTPONLY)?,
        cookie_samesite: read.get(&SESSION_COOKIE_SAMESITE)?,
        use_strict_mode: read.get(&SESSION_USE_STRICT_MODE)?,
        lazy_write: read.get(&SESSION_LAZY_WRITE)?,
        sid_length: read.count(&SESSION_SID_LENGTH)?,
        // 4 to 6 (the table's bounds).
        sid_bits_per_character: read.get(&SESSION_SID_BITS_PER_CHARACTER)? as u8,
        save_path_fsync: read.get(&SESSION_SAVE_PATH_FSYNC)?,
        absolute_lifetime: read.get(&SESSION_ABSOLUTE_LIFETIME)?,
        max_size: read.get(&SESSION_MAX_SIZE)?,
        serialize_handler: read.get(&SESSION_SERIALIZE_HANDLER)?,
        save_path_lock: read.get(&SESSION_SAVE_PATH_LOCK)?,
        save_path_lock_wait: read.get(&SESSION_SAVE_PATH_LOCK_WAIT)?,
        cache_limiter: read.get(&SESSION_CACHE_LIMITER)?,
        cache_expire: read.get(&SESSION_CACHE_EXPIRE)?,
    };
    if settings.cookie_samesite == CookieSameSite::None
        && settings.cookie_secure != CookieSecure::On
    {
        let samesite = read.values.raw(&SESSION_COOKIE_SAMESITE.spec);
        let secure = read.values.raw(&SESSION_COOKIE_SECURE.spec);
        return Err(ConfigError::Conflict(format!(
            "session.cookie_samesite = None ({}) needs session.cookie_secure = on, but it is {:?} ({}): browsers drop SameSite=None cookies without Secure",
            samesite.source, secure.text, secure.source
        )));
    }
    let entropy = settings.sid_length * usize::from(settings.sid_bits_per_character);
    if entropy < 128 {
        let length = read.values.raw(&SESSION_SID_LENGTH.spec);
        return Err(ConfigError::Conflict(format!(
            "session.sid_length = {} ({}) with sid_bits_per_character = {} gives {entropy} bits of entropy; at least 128 are needed",
            settings.sid_length, length.source, settings.sid_bits_per_character
        )));
    }
    Ok(settings)
}

fn build_ops(read: &Reader<'_>) -> Result<OpsSettings, ConfigError> {
    Ok(OpsSettings {
        request_terminate_timeout: read.get(&SERVER_REQUEST_TERMINATE_TIMEOUT)?,
        request_slowlog_timeout: read.get(&SERVER_REQUEST_SLOWLOG_TIMEOUT)?,
        slowlog: read.get(&SERVER_SLOWLOG)?,
        status_path: read.get(&PM_STATUS_PATH)?,
        status_allow: read.get(&PM_STATUS_ALLOW)?,
        ping_path: read.get(&PING_PATH)?,
        ping_response: read.get(&PING_RESPONSE)?,
        access_log: read.get(&ACCESS_LOG)?,
        access_format: read.get(&ACCESS_FORMAT)?,
        log_format: read.get(&LOG_FORMAT)?,
    })
}
