//! Requests through a real web server: nginx (and Apache, lighttpd, Caddy)
//! in front of the nene binary, with bodies, uploads, hostile input and the
//! security headers and refusals a client sees.

mod hostile_input;
mod pages;
mod request_bodies;
mod security;
mod through_nginx;
mod uploads;
mod web_servers;

/// A body's SHA-1 as lowercase hex, as the example application's upload
/// routes answer it (and `sha1sum` prints it).
fn sha1_hex(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}
