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
//! The request path, top to bottom:
//!
//! | module | what it does |
//! |---|---|
//! | [`entry_point`] | [`run`]: the entry point: command line, logging, signals |
//! | [`cli`] | the command line: subcommands and flags |
//! | [`bootstrap`] | start-up in PHP's order: ini → cookie → session handler → serve |
//! | [`config`] | ini files + environment → [`Constants`] and typed settings |
//! | [`choice`] | settings that are one word of a list: the `FromStr` and its error |
//! | [`server`] | listener, accept loop, drain; CGI params → `http` request |
//! | [`fastcgi`] | records, name-value pairs, the connection state machine (bytes only) |
//! | [`dev`] | `nene dev`: HTTP/1.1 and static files instead of nginx + FastCGI |
//! | [`Application`] | what nene can serve: any tower service over `http` types |
//! | [`front_controller`] | per request: operations layer → constants → session → application |
//! | [`ops`] | ping and status pages, request timeout, slow and access logs |
//! | [`log_limit`] | one line per second for warnings a peer can trigger |
//! | [`panic_log`] | a panic anywhere is one rate-limited log line, not a flood |
//! | [`session`] | [`session::lifecycle`]: the session handle, cookie and commit around each request; [`session::backend`]: the DSN, the backend contract, files, Redis, memcached and SQL; [`session::copy`]: `nene sessions copy` |
//! | [`upload`] | `multipart/form-data` uploads as an [`UploadForm`]: fields, and files on disk |
//! | [`dispatch`] | NeNe's `/{controller}/{action}` routing |
//! | [`request_info`] | client address, HTTPS, script name: the CGI values an app needs |
//! | [`ping`] | `nene ping`, a one-request FastCGI client for healthchecks |

#![deny(missing_docs)]

mod application;
pub mod bootstrap;
pub mod choice;
pub mod cli;
pub mod config;
pub mod dev;
pub mod dispatch;
pub mod entry_point;
pub mod fastcgi;
pub mod front_controller;
pub mod log_limit;
pub mod ops;
pub mod panic_log;
pub mod ping;
pub mod request_info;
pub mod server;
pub mod session;
mod upgrade;
pub mod upload;

pub use application::Application;
pub use bootstrap::{Bootstrap, StartupError};
pub use config::{ConfigError, Constants};
pub use dispatch::{Controller, Dispatcher, NotFoundPage};
pub use entry_point::{run, run_async};
pub use request_info::RequestInfo;
pub use session::{ReadOnlySession, Session, SessionError, redact_dsn};
pub use upload::UploadForm;
