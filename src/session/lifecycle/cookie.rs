//! The session cookie, configured once from `[session]`: finding the id in a
//! request's cookies, deciding `Secure` (`cookie_secure = auto`: HTTPS from
//! nginx's `HTTPS` param, or `X-Forwarded-Proto: https` from a trusted proxy
//! only), and writing `Set-Cookie` with the `cookie` crate.

use cookie::{Cookie, SameSite};
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::request_context::RequestContext;
use crate::request_info::Peer;
use crate::session::{CookieSameSite, CookieSecure, SessionSettings};

/// The header a TLS-terminating proxy adds (`http` has no constant for it);
/// a `HeaderName` made once, where a `&str` key is parsed at every lookup.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Caps the cookies looked at in one request: a header with thousands of
/// same-named cookies costs at most this many id checks.
const MAX_CANDIDATES: usize = 16;

/// The session cookie's name and attributes, from `[session]`.
#[derive(Clone, Debug)]
pub struct SessionCookie {
    name: String,
    path: String,
    /// Empty = no Domain attribute (host-only cookie).
    domain: String,
    /// Max-Age in seconds; 0 = a browser-session cookie.
    lifetime: u64,
    secure: CookieSecure,
    http_only: bool,
    same_site: CookieSameSite,
    /// Peers whose `X-Forwarded-Proto` is believed.
    trusted_proxies: Vec<IpNet>,
}

impl SessionCookie {
    /// From the session settings and `server.trusted_proxies`.
    pub fn new(settings: &SessionSettings, trusted_proxies: &[IpNet]) -> Self {
        Self {
            name: settings.name.clone(),
            path: settings.cookie_path.clone(),
            domain: settings.cookie_domain.clone(),
            lifetime: settings.cookie_lifetime,
            secure: settings.cookie_secure,
            http_only: settings.cookie_httponly,
            same_site: settings.cookie_samesite,
            trusted_proxies: trusted_proxies.to_vec(),
        }
    }

    /// The cookie's name (`session.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The values of every cookie named like the session cookie, in the
    /// order the browser sent them (the most specific path first). Owned:
    /// the session keeps them, and a list of slices copied afterwards was
    /// one allocation more on every request with a cookie.
    pub fn candidate_ids(&self, parts: &Parts) -> Vec<String> {
        let mut found = Vec::new();
        for header in parts.headers.get_all(http::header::COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            for pair in header.split(';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                if name.trim() == self.name {
                    found.push(value.trim().trim_matches('"').to_string());
                    if found.len() == MAX_CANDIDATES {
                        return found;
                    }
                }
            }
        }
        found
    }

    /// Whether the client reached nginx over HTTPS.
    pub fn request_is_https(&self, parts: &Parts) -> bool {
        let context = RequestContext::of(&parts.extensions);
        let Some(peer) = context.and_then(|context| context.peer) else {
            return false;
        };
        if peer.https {
            return true;
        }
        // The trust first: most sites trust no proxy, and looking the header
        // up costs a hash of its name.
        if !self.peer_is_trusted(peer) {
            return false;
        }
        parts
            .headers
            .get(X_FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            // The right-most value is the one the trusted proxy added; a
            // proxy that appends leaves the client's own claim on the left.
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    fn peer_is_trusted(&self, peer: Peer) -> bool {
        peer.client_ip
            .is_some_and(|addr| self.trusted_proxies.iter().any(|net| net.contains(&addr)))
    }

    /// `Set-Cookie` carrying `id`.
    pub fn set_cookie(&self, id: &str, https: bool) -> HeaderValue {
        let mut cookie = self.base(id.to_string(), https);
        if self.lifetime > 0 {
            cookie.set_max_age(cookie::time::Duration::seconds(self.lifetime as i64));
        }
        header_value(cookie)
    }

    /// `Set-Cookie` that makes the browser drop the cookie.
    pub fn removal_cookie(&self, https: bool) -> HeaderValue {
        let mut cookie = self.base(String::new(), https);
        cookie.make_removal();
        header_value(cookie)
    }

    fn base(&self, value: String, https: bool) -> Cookie<'static> {
        let mut cookie = Cookie::new(self.name.clone(), value);
        cookie.set_path(self.path.clone());
        if !self.domain.is_empty() {
            cookie.set_domain(self.domain.clone());
        }
        let secure = match self.secure {
            CookieSecure::On => true,
            CookieSecure::Off => false,
            CookieSecure::Auto => https,
        };
        cookie.set_secure(secure);
        cookie.set_http_only(self.http_only);
        match self.same_site {
            CookieSameSite::Lax => cookie.set_same_site(SameSite::Lax),
            CookieSameSite::Strict => cookie.set_same_site(SameSite::Strict),
            CookieSameSite::None => cookie.set_same_site(SameSite::None),
            CookieSameSite::Unset => {}
        }
        cookie
    }
}

fn header_value(cookie: Cookie<'static>) -> HeaderValue {
    // Name, path and domain were validated at start-up and ids are from a
    // fixed alphabet, so the text is always a valid header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(params: &[(&str, &str)], headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        let peer = Peer::from_cgi(|name| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v));
        RequestContext::of_mut(&mut parts.extensions).peer = Some(peer);
        parts
    }

    fn cookie(trusted: &[&str]) -> SessionCookie {
        let proxies: Vec<IpNet> = trusted.iter().map(|p| p.parse().unwrap()).collect();
        SessionCookie::new(&crate::config::Settings::defaults().session, &proxies)
    }

    #[test]
    fn secure_auto_follows_the_https_param() {
        let c = cookie(&[]);
        assert!(c.request_is_https(&parts(&[("HTTPS", "on")], &[])));
        assert!(!c.request_is_https(&parts(&[("HTTPS", "off")], &[])));
        assert!(!c.request_is_https(&parts(&[], &[])));
        assert!(
            c.set_cookie("abc", true)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        assert!(
            !c.set_cookie("abc", false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn forwarded_proto_counts_only_from_a_trusted_proxy() {
        let c = cookie(&["10.0.0.0/8"]);
        let trusted = parts(
            &[("REMOTE_ADDR", "10.1.2.3")],
            &[("x-forwarded-proto", "https")],
        );
        assert!(c.request_is_https(&trusted));
        let untrusted = parts(
            &[("REMOTE_ADDR", "192.0.2.7")],
            &[("x-forwarded-proto", "https")],
        );
        assert!(!c.request_is_https(&untrusted));
        // The client wrote `https`, the proxy appended what it saw.
        let appended = parts(
            &[("REMOTE_ADDR", "10.1.2.3")],
            &[("x-forwarded-proto", "https, http")],
        );
        assert!(!c.request_is_https(&appended));
        let appended_https = parts(
            &[("REMOTE_ADDR", "10.1.2.3")],
            &[("x-forwarded-proto", "http,https")],
        );
        assert!(c.request_is_https(&appended_https));
    }

    #[test]
    fn the_cookie_carries_the_configured_attributes() {
        let c = cookie(&[]);
        let text = c.set_cookie("abc123", false).to_str().unwrap().to_string();
        assert!(text.starts_with("NENESESSID=abc123"), "{text}");
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax") && text.contains("Path=/")
        );
        assert!(
            !text.contains("Max-Age"),
            "a browser-session cookie: {text}"
        );
        let removal = c.removal_cookie(false).to_str().unwrap().to_string();
        assert!(removal.contains("Max-Age=0"), "{removal}");
    }

    #[test]
    fn every_same_named_cookie_is_a_candidate_in_order() {
        let c = cookie(&[]);
        let p = parts(
            &[],
            &[(
                "cookie",
                "a=1; NENESESSID=first; NENESESSID=\"second\"; b=2",
            )],
        );
        assert_eq!(c.candidate_ids(&p), vec!["first", "second"]);
    }
}
