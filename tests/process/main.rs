//! The nene binary as an operator runs it: the command line and its
//! configuration, start-up on TCP and Unix sockets, signals and drain, the
//! operations pages and logs, `nene dev`, and an application built outside
//! the repository.

mod cli_config;
mod dev_server;
mod external_app;
mod lifecycle;
mod operations;
mod passed_socket;
mod traces;
mod unix_socket_startup;
mod upgrade;
