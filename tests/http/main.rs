//! Requests through a real web server: nginx (and Apache, lighttpd, Caddy)
//! in front of the nene binary, with bodies, uploads, hostile input and the
//! security headers and refusals a client sees.

mod hostile_input;
mod request_bodies;
mod security;
mod through_nginx;
mod uploads;
mod web_servers;
