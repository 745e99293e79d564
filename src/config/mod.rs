//! Configuration: built-in defaults < `ini/system.ini` < `ini/site.ini` <
//! environment (`NENE_{SECTION}__{KEY}`, `NENE_SESSION_DSN`) < command line,
//! validated once at start-up into immutable [`Constants`]. Knows nothing of
//! sessions or the application beyond the plain data it hands them.

mod constants;
mod error;
mod ini_file;
mod loader;
mod session_settings;
mod settings;
mod source;
pub mod spec;

pub use constants::{Constant, Constants};
pub use error::{ConfigError, closest};
pub use loader::{INI_FILES, LoadOptions, Loaded, load};
pub use session_settings::{
    BadChoice, CacheLimiter, CookieSameSite, CookieSecure, SavePathLock, SerializeHandler,
    SessionSettings,
};
pub use settings::{LogDestination, LogFormat, OpsSettings, Settings};
pub use source::Source;
