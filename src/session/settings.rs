//! The `[session]` settings: PHP's `session.*` names and meanings (see the
//! README's settings table for where nene's defaults differ and why).

use std::path::PathBuf;

use crate::choice::choice_from_str;

/// Whether the session cookie carries `Secure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieSecure {
    /// Secure when the request came over HTTPS (the `HTTPS` param, or
    /// `X-Forwarded-Proto: https` from a trusted proxy).
    Auto,
    /// Always `Secure`; the cookie is never sent over plain HTTP.
    On,
    /// Never `Secure`, even over HTTPS.
    Off,
}

/// The cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieSameSite {
    /// Sent on same-site requests and top-level cross-site navigations
    /// (nene's default).
    Lax,
    /// Sent on same-site requests only; a link from another site arrives
    /// without the session.
    Strict,
    /// Sent on cross-site requests too; needs `Secure`, which the loader
    /// enforces.
    None,
    /// PHP's empty value: no SameSite attribute at all.
    Unset,
}

/// PHP's `session.cache_limiter`: the caching headers a response that used
/// the session carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLimiter {
    /// `Expires` in the past and `Cache-Control: no-store, no-cache,
    /// must-revalidate`: no cache keeps a page that used the session (PHP's
    /// default).
    Nocache,
    /// `Cache-Control: private, max-age` plus an `Expires` in the past, as PHP
    /// sends it.
    Private,
    /// `Cache-Control: private, max-age` without the `Expires` header.
    PrivateNoExpire,
    /// `Cache-Control: public, max-age` and a matching `Expires`: shared caches
    /// may keep the page.
    Public,
    /// PHP's empty value: no caching headers are added.
    Unset,
}

/// How file sessions are locked (`session.save_path_lock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SavePathLock {
    /// nene's own: `flock` on `sess_{id}.lock`, the session file replaced
    /// whole by rename (never torn).
    LockFile,
    /// PHP's: `flock` on `sess_{id}` itself, rewritten in place, so that
    /// nene and PHP sharing a save_path exclude each other.
    SessionFile,
}

/// PHP's `session.serialize_handler`: the format sessions are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerializeHandler {
    /// nene's own: one JSON object (the default).
    Json,
    /// PHP's default: `name|serialize(value)` for each key.
    Php,
    /// `serialize($_SESSION)`: one PHP array.
    PhpSerialize,
}

choice_from_str!(CookieSecure, "auto, on, off", {
    "auto" => CookieSecure::Auto,
    "on" | "1" | "true" | "yes" => CookieSecure::On,
    "off" | "0" | "false" | "no" | "" => CookieSecure::Off,
});
choice_from_str!(CookieSameSite, "Lax, Strict, None, or empty", {
    "lax" => CookieSameSite::Lax,
    "strict" => CookieSameSite::Strict,
    "none" => CookieSameSite::None,
    "" => CookieSameSite::Unset,
});
choice_from_str!(SavePathLock, "lock_file, session_file", {
    "lock_file" => SavePathLock::LockFile,
    "session_file" => SavePathLock::SessionFile,
});
choice_from_str!(SerializeHandler, "json, php, php_serialize", {
    "json" => SerializeHandler::Json,
    "php" => SerializeHandler::Php,
    "php_serialize" => SerializeHandler::PhpSerialize,
});
choice_from_str!(CacheLimiter, "nocache, private, private_no_expire, public, or empty", {
    "nocache" => CacheLimiter::Nocache,
    "private" => CacheLimiter::Private,
    "private_no_expire" => CacheLimiter::PrivateNoExpire,
    "public" => CacheLimiter::Public,
    "" => CacheLimiter::Unset,
});

/// `[session]` in system.ini. Field names are PHP's `session.*` keys.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// The SESSION_DSN constant (env `NENE_SESSION_DSN`): empty = files,
    /// `redis://…` = Redis.
    pub dsn: String,
    /// `session.migrate_from`: the backend sessions are being moved away
    /// from (a DSN, or `files`); empty when no move is under way. Reads of
    /// an id the new backend lacks fall back to it (backend/migrating.rs).
    pub migrate_from: String,
    /// Cookie name.
    pub name: String,
    /// Directory of session files (files handler).
    pub save_path: PathBuf,
    /// PHP's `N;` prefix of `session.save_path`: sessions live N levels of
    /// one-character directories down (`a/b/sess_ab…` for 2); 0 = flat.
    pub save_path_depth: usize,
    /// Seconds a session lives after its last use (Redis TTL, file gc age).
    pub gc_maxlifetime: u64,
    /// gc runs on gc_probability / gc_divisor of the requests that start a session.
    pub gc_probability: u32,
    /// The other half of the gc chance: gc_probability / gc_divisor.
    pub gc_divisor: u32,
    /// Cookie Max-Age in seconds; 0 = until the browser closes.
    pub cookie_lifetime: u64,
    /// The cookie's `Path`.
    pub cookie_path: String,
    /// The cookie's `Domain`; empty = no attribute, so the cookie goes to the
    /// exact host only.
    pub cookie_domain: String,
    /// When the cookie carries `Secure`.
    pub cookie_secure: CookieSecure,
    /// The cookie carries `HttpOnly`, so page scripts cannot read the session
    /// id.
    pub cookie_httponly: bool,
    /// The cookie's `SameSite` attribute.
    pub cookie_samesite: CookieSameSite,
    /// Refuse ids the backend does not know (no session fixation).
    pub use_strict_mode: bool,
    /// An unchanged session is not rewritten, only its expiry refreshed.
    pub lazy_write: bool,
    /// Characters in a session id.
    pub sid_length: usize,
    /// Bits per id character: 4 (0-9a-f), 5 (0-9a-v) or 6 (0-9a-zA-Z,-).
    pub sid_bits_per_character: u8,
    /// nene's own: files sessions are fsynced before the rename that
    /// replaces the old file (PHP's files handler never syncs).
    pub save_path_fsync: bool,
    /// nene's own: seconds after creation when a session ends however
    /// active it is; 0 = off.
    pub absolute_lifetime: u64,
    /// nene's own: the largest stored session, in bytes. A larger stored
    /// value is not loaded (the request starts with an empty session and
    /// leaves it alone); a session that grows past it is not stored (500).
    pub max_size: u64,
    /// The format sessions are stored in (PHP's name).
    pub serialize_handler: SerializeHandler,
    /// nene's own: how file sessions are locked.
    pub save_path_lock: SavePathLock,
    /// nene's own: how long a file session's lock is waited for.
    pub save_path_lock_wait: std::time::Duration,
    /// The caching headers a response that used the session carries.
    pub cache_limiter: CacheLimiter,
    /// `Expires`/`max-age` minutes for the public and private cache limiters.
    pub cache_expire: u64,
}

impl SessionSettings {
    /// How long a session lives after its last use: `gc_maxlifetime`.
    pub fn lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.gc_maxlifetime)
    }
}
