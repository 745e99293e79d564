//! nene: a FastCGI application server that runs a PHP-style front controller
//! behind nginx.
//!
//! Layers, each knowing only those below it:
//! - [`fastcgi`]: records, connections, limits (bytes and CGI only);
//! - [`server`]: listeners, the accept loop, shutdown, and the bridge from CGI
//!   to `http` types and tower services;
//! - [`dispatch`]: NeNe's `/{controller}/{action}` routing;
//! - [`app`]: the example application the tests and the compose stack run;
//! - [`ping`]: `nene ping`, a one-request FastCGI client for healthchecks.

pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod fastcgi;
pub mod front_controller;
pub mod ops;
pub mod ping;
pub mod server;
pub mod session;
