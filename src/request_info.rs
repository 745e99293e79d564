//! What the web server in front knows about a request and the HTTP request
//! itself does not carry: who the client is, whether it came over HTTPS, and
//! which script the URL named. With FastCGI these are CGI params
//! (`REMOTE_ADDR`, `HTTPS`, `SCRIPT_NAME`, `PATH_INFO`); `nene dev` fills
//! the same values from its own connection. An application takes
//! [`RequestInfo`] as a handler argument and never sees the params; the
//! session cookie (`Secure`), the status page (`pm.status_allow`) and the
//! access log read it too.

use std::net::{IpAddr, SocketAddr};

use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;

use crate::request_context::RequestContext;

/// The client and transport of one request, as the web server saw them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The client's address (`REMOTE_ADDR`); `None` when the web server sent
    /// none or something that is not an IP address. Behind a proxy chain this
    /// is the last hop nginx saw (use nginx's `real_ip` module to change it).
    pub client_ip: Option<IpAddr>,
    /// The client's port (`REMOTE_PORT`), when given.
    pub client_port: Option<u16>,
    /// The request reached the web server over TLS (`HTTPS` set and not
    /// `off`, as PHP's `$_SERVER['HTTPS']` is read). A forwarded
    /// `X-Forwarded-Proto` is not looked at here: only the session cookie
    /// believes it, and only from `server.trusted_proxies`.
    pub https: bool,
    /// The address the web server accepted the connection on
    /// (`SERVER_ADDR`:`SERVER_PORT`), when given.
    pub server_addr: Option<SocketAddr>,
    /// `SERVER_NAME`: the virtual host's name (may be empty).
    pub server_name: String,
    /// `SCRIPT_NAME`: the front controller's URL path as the web server
    /// split it (nginx's stock config: the whole path; PHP-style configs:
    /// `/index.php`).
    pub script_name: String,
    /// `PATH_INFO`: what follows the script name, when the web server split
    /// the path (`/index.php/user/edit` → `/user/edit`).
    pub path_info: Option<String>,
}

/// Who the client is and how it came: the part of [`RequestInfo`] nene's
/// own layers read on every request (the access log, the session cookie's
/// `Secure` and trusted proxies, the status page's allow list). Kept in the
/// request's context apart from the rest, which is read from the params
/// only for a handler that asks for `RequestInfo` (the names' two
/// allocations, and parsing the server's address: about 400 instructions,
/// saved for the others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Peer {
    /// See [`RequestInfo::client_ip`].
    pub(crate) client_ip: Option<IpAddr>,
    /// See [`RequestInfo::client_port`].
    pub(crate) client_port: Option<u16>,
    /// See [`RequestInfo::https`].
    pub(crate) https: bool,
}

impl Peer {
    /// The values as CGI names them (`REMOTE_ADDR`, `REMOTE_PORT`,
    /// `HTTPS`); see [`RequestInfo::from_cgi`].
    pub(crate) fn from_cgi<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            client_ip: get("REMOTE_ADDR").and_then(|addr| addr.parse().ok()),
            client_port: get("REMOTE_PORT").and_then(|port| port.parse().ok()),
            https: get("HTTPS")
                .is_some_and(|https| !https.is_empty() && !https.eq_ignore_ascii_case("off")),
        }
    }
}

impl RequestInfo {
    /// The values as CGI names them; a missing or unparsable value is left
    /// out (`None`, empty) rather than guessed. `get` returns a param's
    /// value when present and valid UTF-8.
    pub fn from_cgi<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self::of_peer(Peer::from_cgi(&get), get)
    }

    /// `peer` with the rest `get` gives (`SERVER_ADDR`, `SERVER_PORT`,
    /// `SERVER_NAME`, `SCRIPT_NAME`, `PATH_INFO`).
    pub(crate) fn of_peer<'a>(peer: Peer, get: impl Fn(&str) -> Option<&'a str>) -> Self {
        let server_ip: Option<IpAddr> = get("SERVER_ADDR").and_then(|addr| addr.parse().ok());
        let server_port: Option<u16> = get("SERVER_PORT").and_then(|port| port.parse().ok());
        Self {
            client_ip: peer.client_ip,
            client_port: peer.client_port,
            https: peer.https,
            server_addr: server_ip.zip(server_port).map(SocketAddr::from),
            server_name: get("SERVER_NAME").unwrap_or_default().to_string(),
            script_name: get("SCRIPT_NAME").unwrap_or_default().to_string(),
            path_info: get("PATH_INFO")
                .filter(|info| !info.is_empty())
                .map(str::to_string),
        }
    }
}

/// Handlers take `RequestInfo` as an argument: made from the peer nene's
/// server put into the request's context and the params it keeps there.
impl<S: Send + Sync> FromRequestParts<S> for RequestInfo {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let missing = "request info is missing: the application runs outside nene's server\n";
        let info = |context: &RequestContext| {
            let params = context.params.as_ref();
            let peer = context.peer?;
            Some(Self::of_peer(peer, |name| params?.get_str(name)))
        };
        RequestContext::extract(&parts.extensions, info, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pairs: &[(&str, &'static str)]) -> RequestInfo {
        RequestInfo::from_cgi(|name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
    }

    #[test]
    fn cgi_params_become_typed_values() {
        let info = info(&[
            ("REMOTE_ADDR", "10.0.0.7"),
            ("REMOTE_PORT", "51234"),
            ("HTTPS", "on"),
            ("SERVER_ADDR", "127.0.0.1"),
            ("SERVER_PORT", "8080"),
            ("SERVER_NAME", "shop.example"),
            ("SCRIPT_NAME", "/index.php"),
            ("PATH_INFO", "/user/edit"),
        ]);
        assert_eq!(info.client_ip, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(info.client_port, Some(51234));
        assert!(info.https);
        assert_eq!(info.server_addr, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(info.server_name, "shop.example");
        assert_eq!(info.script_name, "/index.php");
        assert_eq!(info.path_info.as_deref(), Some("/user/edit"));
    }

    #[test]
    fn https_off_or_empty_is_plain_http_and_garbage_is_no_address() {
        assert!(!info(&[("HTTPS", "off")]).https);
        assert!(!info(&[("HTTPS", "OFF")]).https);
        assert!(!info(&[("HTTPS", "")]).https);
        assert!(!info(&[]).https);
        let garbage = info(&[("REMOTE_ADDR", "not an ip"), ("PATH_INFO", "")]);
        assert_eq!(garbage.client_ip, None);
        assert_eq!(garbage.path_info, None);
    }
}
