//! nene: a FastCGI application server that runs a PHP-style front controller
//! behind nginx (or, for development, serves HTTP itself).
//!
//! An application is a crate whose `main` is one call, [`run`]: it gets
//! nene's command line (`serve`, `dev`, `config`, `check`, `ping`), ini
//! files and environment as [`Constants`], sessions, operations pages and
//! logs. Its controllers are axum handlers registered on a [`Dispatcher`]
//! (NeNe's `/{controller}/{action}` convention) or any axum `Router`; they
//! take [`Session`] (or, to only read it without its lock,
//! [`ReadOnlySession`]), [`Constants`] and [`RequestInfo`] as arguments.
//!
//! ```no_run
//! use axum::routing::get;
//! use nene::{Constants, Controller, Dispatcher, NotFoundPage, Session, SessionError};
//!
//! async fn hello(session: Session, constants: Constants) -> Result<String, SessionError> {
//!     let visits = session.get::<u64>("visits").await?.unwrap_or(0) + 1;
//!     session.insert("visits", visits).await?;
//!     let site = constants.get("SITE_TITLE").unwrap_or("nene");
//!     Ok(format!("Hello from {site}, visit {visits}\n"))
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     nene::run(|constants| {
//!         Dispatcher::builder(NotFoundPage::load(&constants.settings().htdocs))
//!             .controller("hello", Controller::new().action("index", get(hello)))
//!             .build()
//!     })
//! }
//! ```
//!
//! The public API is what this page lists: the entry points, the types a
//! controller takes as arguments, and what they return. nene's modules are
//! private; the request path, top to bottom, is in these files:
//!
//! | module | what it does |
//! |---|---|
//! | `entry_point` | [`run`]: the entry point: command line, logging, signals |
//! | `cli` | the command line: subcommands and flags |
//! | `bootstrap` | start-up in PHP's order: ini → cookie → session handler → serve |
//! | `config` | ini files + environment → [`Constants`] and typed [`Settings`] |
//! | `choice` | settings that are one word of a list: the `FromStr` and its error |
//! | `server` | listener, accept loop, drain; CGI params → `http` request |
//! | `fastcgi` | the crate `nene-fastcgi` (`fastcgi/`): records, name-value pairs, the connection state machine (bytes only) |
//! | `dev` | `nene dev`: HTTP/1.1 and static files instead of nginx + FastCGI |
//! | `application` | [`Application`]: what nene can serve: any tower service over `http` types |
//! | `front_controller` | per request: operations layer → constants → session → application |
//! | `ops` | ping and status pages, request timeout, slow and access logs |
//! | `histogram` | latency histograms (requests by route, session backend and lock times) and their OpenMetrics form |
//! | `layer_notes` | the route and the session, told by the layers inside to the operations layer |
//! | `log_limit` | one line per second for warnings a peer can trigger (in `nene-fastcgi`) |
//! | `pages` | for HTML pages and forms: [`CsrfToken`], [`RequireCsrf`], [`Flash`] |
//! | `panic_log` | a panic anywhere is one rate-limited log line, not a flood |
//! | `session` | `session/lifecycle`: the [`Session`] handle, cookie and commit around each request; `session/backend`: the DSN, the backend contract and the lock, files, memory, Redis, memcached and SQL; `session/copy.rs`: `nene sessions copy` |
//! | `upload` | `multipart/form-data` uploads as an [`UploadForm`]: fields, and files on disk |
//! | `dispatch` | NeNe's `/{controller}/{action}` routing |
//! | `request_info` | client address, HTTPS, script name: the CGI values an app needs |
//! | `ping` | `nene ping`, a one-request FastCGI client for healthchecks |
//!
//! nene's own tests and benches reach the modules themselves through the
//! `internals` feature, which makes them public and hidden from these
//! docs: nothing under it is part of the API, and it changes without
//! notice (docs/decisions/0027).

#![deny(missing_docs)]
// Built without the `internals` feature (as every application is), the
// modules' `pub` items that only nene's tests and benches use are unused:
// not worth a warning in an application's build.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

mod application;
mod upgrade;

// nene's modules: private, or with the `internals` feature public and
// hidden from the docs, for nene's own tests and benches. Declared one by
// one rather than by a macro, so that rustfmt finds their files.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod bootstrap;
#[cfg(not(feature = "internals"))]
mod bootstrap;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod choice;
#[cfg(not(feature = "internals"))]
mod choice;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod cli;
#[cfg(not(feature = "internals"))]
mod cli;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod config;
#[cfg(not(feature = "internals"))]
mod config;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod dev;
#[cfg(not(feature = "internals"))]
mod dev;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod dispatch;
#[cfg(not(feature = "internals"))]
mod dispatch;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod entry_point;
#[cfg(not(feature = "internals"))]
mod entry_point;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod front_controller;
#[cfg(not(feature = "internals"))]
mod front_controller;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod histogram;
#[cfg(not(feature = "internals"))]
mod histogram;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod layer_notes;
#[cfg(not(feature = "internals"))]
mod layer_notes;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod ops;
#[cfg(not(feature = "internals"))]
mod ops;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod pages;
#[cfg(not(feature = "internals"))]
mod pages;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod panic_log;
#[cfg(not(feature = "internals"))]
mod panic_log;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod ping;
#[cfg(not(feature = "internals"))]
mod ping;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod request_context;
#[cfg(not(feature = "internals"))]
mod request_context;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod request_info;
#[cfg(not(feature = "internals"))]
mod request_info;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod server;
#[cfg(not(feature = "internals"))]
mod server;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod session;
#[cfg(not(feature = "internals"))]
mod session;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod trace;
#[cfg(not(feature = "internals"))]
mod trace;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod upload;
#[cfg(not(feature = "internals"))]
mod upload;

// The FastCGI protocol is a crate of the workspace (fastcgi/, nene-fastcgi);
// nene's code names it `crate::fastcgi`, and its rate-limited log lines
// `crate::log_limit`.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use nene_fastcgi as fastcgi;
#[cfg(not(feature = "internals"))]
use nene_fastcgi as fastcgi;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use nene_fastcgi::log_limit;
#[cfg(not(feature = "internals"))]
use nene_fastcgi::log_limit;

pub use application::Application;
pub use bootstrap::{Bootstrap, StartupError};
pub use config::{ConfigError, Constants, Settings};
pub use dispatch::{Controller, Dispatcher, NotFoundPage};
pub use entry_point::{run, run_async};
pub use pages::{CsrfToken, Flash, RequireCsrf};
pub use request_info::RequestInfo;
pub use session::{ReadOnlySession, Session, SessionError, redact_dsn};
pub use upload::{UploadError, UploadForm, UploadedFile};
