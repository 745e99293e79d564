//! Configuration: built-in defaults < ini files < environment, validated
//! once at start-up into immutable [`Constants`]. Knows nothing of the server
//! or sessions beyond the plain data it hands them.

mod session_settings;

pub use session_settings::{BadChoice, CacheLimiter, CookieSameSite, CookieSecure, SessionSettings};
