//! Builds an `http::Request` from CGI params and a body: what an application
//! sees instead of FastCGI records.

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use crate::fastcgi::{CgiParams, CgiRequest, RequestBody};
use crate::request_context::RequestContext;
use crate::request_info::Peer;

use super::routing_path::{BadPath, canonical_path, is_canonical};

/// A request whose params cannot make an HTTP request; answered 400.
#[derive(Debug, thiserror::Error)]
pub enum BadCgiRequest {
    /// The peer sent no `REQUEST_METHOD`.
    #[error("REQUEST_METHOD is missing")]
    MissingMethod,
    /// `REQUEST_METHOD` is not an HTTP method token.
    #[error("REQUEST_METHOD is not a valid method")]
    BadMethod,
    /// `REQUEST_URI` cannot be made a request target even percent-encoded.
    #[error("REQUEST_URI is not a valid request target")]
    BadUri,
    /// The path cannot be routed (an encoded slash or NUL).
    #[error("REQUEST_URI: {0}")]
    BadPath(#[from] BadPath),
    /// More `HTTP_*` params than a header map holds.
    #[error("too many request headers")]
    TooManyHeaders,
    /// A param nene trusts (the client's address, HTTPS) came twice: which
    /// one is true cannot be told, so neither is believed.
    #[error("the CGI param {0} was sent more than once")]
    RepeatedParam(&'static str),
}

/// The params nene reads besides the headers, by their place in
/// [`KnownParams`]; the first three decide who the client is, so each may
/// come once or the request is refused.
#[derive(Clone, Copy)]
enum Known {
    RemoteAddr,
    RemotePort,
    Https,
    Method,
    RequestUri,
    Protocol,
    // The CGI fallback for REQUEST_URI. The rest of `RequestInfo`
    // (`SERVER_ADDR`, `SERVER_NAME`, …) is read from the params when a
    // handler asks for it.
    ScriptName,
    PathInfo,
    QueryString,
}

/// How many [`Known`] params there are; the first [`SINGLE`] are the ones
/// sent once or refused.
const KNOWN: usize = Known::QueryString as usize + 1;
const SINGLE: usize = Known::Https as usize + 1;
const SINGLE_NAMES: [&str; SINGLE] = ["REMOTE_ADDR", "REMOTE_PORT", "HTTPS"];

impl Known {
    /// One `match`, which compares lengths before bytes: this runs for each
    /// of the twenty-odd params nginx sends that is not a header.
    fn of(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"REMOTE_ADDR" => Self::RemoteAddr,
            b"REMOTE_PORT" => Self::RemotePort,
            b"HTTPS" => Self::Https,
            b"REQUEST_METHOD" => Self::Method,
            b"REQUEST_URI" => Self::RequestUri,
            b"SERVER_PROTOCOL" => Self::Protocol,
            b"SCRIPT_NAME" => Self::ScriptName,
            b"PATH_INFO" => Self::PathInfo,
            b"QUERY_STRING" => Self::QueryString,
            _ => return None,
        })
    }
}

/// The values of the [`Known`] params, gathered in the one pass over all of
/// them (the last one wins when a name repeats, as with nginx's
/// `fastcgi_param` overrides), borrowed from the params.
#[derive(Default)]
struct KnownParams<'a> {
    values: [Option<&'a [u8]>; KNOWN],
    /// How often each of the first [`SINGLE`] came.
    single_count: [u8; SINGLE],
}

impl<'a> KnownParams<'a> {
    /// Keeps `name`'s value if nene reads it.
    fn take(&mut self, name: &[u8], value: &'a [u8]) {
        let Some(known) = Known::of(name) else {
            return;
        };
        if let Some(count) = self.single_count.get_mut(known as usize) {
            *count = count.saturating_add(1);
        }
        self.values[known as usize] = Some(value);
    }

    fn get(&self, known: Known) -> Option<&'a [u8]> {
        self.values[known as usize]
    }

    /// The value of a [`Known`] param by its CGI name, when sent as UTF-8.
    fn get_str(&self, name: &str) -> Option<&'a str> {
        std::str::from_utf8(self.get(Known::of(name.as_bytes())?)?).ok()
    }
}

/// The request as an application sees it. nene's request context (one
/// extension) holds the client's address and HTTPS, and the params: what
/// a handler's `RequestInfo` is made from, and what the access log's
/// `%{VAR}e` reads; applications should not need the params themselves.
pub fn build_http_request(cgi: CgiRequest) -> Result<Request<Body>, BadCgiRequest> {
    build_http_request_or_params(cgi).map_err(|(error, _params)| error)
}

/// Like [`build_http_request`]; a refused request's params come back with
/// the error, for its access-log line.
pub(crate) fn build_http_request_or_params(
    cgi: CgiRequest,
) -> Result<Request<Body>, (BadCgiRequest, CgiParams)> {
    let CgiRequest { params, body } = cgi;
    match http_request_from(&params, body) {
        Ok(mut request) => {
            RequestContext::of_mut(request.extensions_mut()).params = Some(params);
            Ok(request)
        }
        Err(error) => Err((error, params)),
    }
}

fn http_request_from(
    params: &CgiParams,
    body: RequestBody,
) -> Result<Request<Body>, BadCgiRequest> {
    // One pass over the params: the few nene reads are kept, the HTTP_*
    // ones become headers.
    let http_headers = params
        .iter()
        .filter(|(name, _)| name.starts_with(b"HTTP_"))
        .count();
    let mut headers = HeaderMap::with_capacity(http_headers + 2);
    let mut known = KnownParams::default();
    let mut name_buf = Vec::with_capacity(64);
    for (name, value) in params.iter() {
        let header_name = if let Some(http_name) = name.strip_prefix(b"HTTP_") {
            name_buf.clear();
            name_buf.extend(http_name.iter().map(|&b| if b == b'_' { b'-' } else { b }));
            match HeaderName::from_bytes(&name_buf) {
                Ok(header_name) => header_name,
                Err(_) => continue,
            }
        } else if name == b"CONTENT_TYPE" {
            CONTENT_TYPE
        } else if name == b"CONTENT_LENGTH" {
            CONTENT_LENGTH
        } else {
            known.take(name, value);
            continue;
        };
        if value.is_empty() && (header_name == CONTENT_TYPE || header_name == CONTENT_LENGTH) {
            continue;
        }
        // Caddy's "length unknown": no header; the body has its own size.
        if header_name == CONTENT_LENGTH && value == b"-1" {
            continue;
        }
        // A value with bytes HTTP forbids (CR, LF, NUL, …) is dropped, not
        // passed on: it can only be an injection attempt.
        let Ok(header_value) = HeaderValue::from_maybe_shared(params.share(value)) else {
            tracing::debug!("dropping request header {header_name} with an invalid value");
            continue;
        };
        headers
            .try_append(header_name, header_value)
            .map_err(|_| BadCgiRequest::TooManyHeaders)?;
    }
    if let Some(index) = known.single_count.iter().position(|&count| count > 1) {
        return Err(BadCgiRequest::RepeatedParam(SINGLE_NAMES[index]));
    }
    let method = known
        .get(Known::Method)
        .ok_or(BadCgiRequest::MissingMethod)
        .and_then(|m| Method::from_bytes(m).map_err(|_| BadCgiRequest::BadMethod))?;
    let uri = routed(request_uri(params, &known)?)?;
    let version = match known.get(Known::Protocol) {
        Some(b"HTTP/1.0") => Version::HTTP_10,
        Some(b"HTTP/2.0") => Version::HTTP_2,
        Some(b"HTTP/3.0") => Version::HTTP_3,
        _ => Version::HTTP_11,
    };

    let mut request = Request::new(request_body(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    let peer = Peer::from_cgi(|name| known.get_str(name));
    RequestContext::of_mut(request.extensions_mut()).peer = Some(peer);
    Ok(request)
}

/// The body as the application reads it: bytes in memory, or the
/// temporary file streamed in chunks (the file is closed, and so deleted,
/// when the body is dropped, read or not).
fn request_body(body: RequestBody) -> Body {
    match body {
        // No body (every GET): axum's empty body, which is not boxed on the
        // heap (a `Full` of nothing is: one allocation a request).
        RequestBody::Memory(bytes) if bytes.is_empty() => Body::empty(),
        RequestBody::Memory(bytes) => Body::from(bytes),
        RequestBody::File { file, .. } => {
            let file = tokio::fs::File::from_std(file);
            // 64 KiB reads: a record's worth, and what nginx's own
            // temp-file reads use.
            Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024))
        }
    }
}

/// `uri` with its path made canonical (see `routing_path.rs`); the query
/// is kept as it came.
pub(crate) fn routed(uri: Uri) -> Result<Uri, BadCgiRequest> {
    if is_canonical(uri.path()) {
        return Ok(uri);
    }
    let path = canonical_path(uri.path())?;
    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    Uri::try_from(target).map_err(|_| BadCgiRequest::BadUri)
}

/// REQUEST_URI as nginx sends it (path and query, still percent-encoded), or
/// for peers that do not send it, SCRIPT_NAME + PATH_INFO + QUERY_STRING.
fn request_uri(params: &CgiParams, known: &KnownParams) -> Result<Uri, BadCgiRequest> {
    let raw: Bytes = match known.get(Known::RequestUri) {
        Some(uri) if !uri.is_empty() => params.share(uri),
        _ => {
            let mut uri = Vec::new();
            for part in [Known::ScriptName, Known::PathInfo] {
                uri.extend_from_slice(known.get(part).unwrap_or(b""));
            }
            if uri.is_empty() {
                uri.push(b'/');
            }
            if let Some(query) = known.get(Known::QueryString).filter(|q| !q.is_empty()) {
                uri.push(b'?');
                uri.extend_from_slice(query);
            }
            Bytes::from(uri)
        }
    };
    if let Ok(uri) = Uri::from_maybe_shared(raw.clone()) {
        return Ok(uri);
    }
    // nginx passes the request line's target as the client sent it; bytes the
    // `http` crate refuses (spaces, control bytes, …) are percent-encoded
    // rather than failing the request.
    let mut encoded = String::with_capacity(raw.len() * 3);
    for &byte in raw.iter() {
        if byte.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Uri::try_from(encoded).map_err(|_| BadCgiRequest::BadUri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_info::RequestInfo;

    fn cgi(pairs: &[(&str, &[u8])]) -> CgiRequest {
        CgiRequest {
            params: CgiParams::new(
                pairs
                    .iter()
                    .map(|(k, v)| (Bytes::from(k.to_string()), Bytes::copy_from_slice(v)))
                    .collect(),
            ),
            body: Bytes::from_static(b"hello").into(),
        }
    }

    #[test]
    fn params_become_method_uri_headers_and_extension() {
        let request = build_http_request(cgi(&[
            ("REQUEST_METHOD", b"POST"),
            ("REQUEST_URI", b"/a/b?x=1"),
            ("SERVER_PROTOCOL", b"HTTP/1.0"),
            ("CONTENT_TYPE", b"text/plain"),
            ("CONTENT_LENGTH", b"5"),
            ("HTTP_X_FORWARDED_FOR", b"10.0.0.1"),
            ("HTTP_COOKIE", b"a=1"),
            ("REMOTE_ADDR", b"127.0.0.1"),
            ("HTTPS", b"on"),
            ("SCRIPT_NAME", b"/index.php"),
            ("PATH_INFO", b"/a/b"),
        ]))
        .unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().path(), "/a/b");
        assert_eq!(request.uri().query(), Some("x=1"));
        assert_eq!(request.version(), Version::HTTP_10);
        assert_eq!(request.headers()["content-type"], "text/plain");
        assert_eq!(request.headers()["content-length"], "5");
        assert_eq!(request.headers()["x-forwarded-for"], "10.0.0.1");
        assert_eq!(request.headers()["cookie"], "a=1");
        assert!(request.headers().get("remote-addr").is_none());
        let context = RequestContext::of(request.extensions()).unwrap();
        let params = context.params.as_ref().unwrap();
        assert_eq!(params.get_str("REMOTE_ADDR"), Some("127.0.0.1"));
        let peer = context.peer.unwrap();
        assert_eq!(peer.client_ip, Some("127.0.0.1".parse().unwrap()));
        assert!(peer.https);
    }

    #[tokio::test]
    async fn a_handler_asking_for_request_info_gets_the_peer_and_the_names() {
        let request = build_http_request(cgi(&[
            ("REQUEST_METHOD", b"GET"),
            ("REQUEST_URI", b"/index.php/user/edit"),
            ("REMOTE_ADDR", b"10.0.0.7"),
            ("SERVER_NAME", b"shop.example"),
            ("SCRIPT_NAME", b"/index.php"),
            ("PATH_INFO", b"/user/edit"),
            ("SCRIPT_NAME", b"/app.php"),
        ]))
        .unwrap();
        let (mut parts, _) = request.into_parts();
        let info = <RequestInfo as axum::extract::FromRequestParts<()>>::from_request_parts(
            &mut parts,
            &(),
        )
        .await
        .unwrap();
        assert_eq!(info.client_ip, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(info.server_name, "shop.example");
        // The last one wins, as with nginx's `fastcgi_param` overrides.
        assert_eq!(info.script_name, "/app.php");
        assert_eq!(info.path_info.as_deref(), Some("/user/edit"));
    }

    #[test]
    fn header_values_with_control_bytes_are_dropped() {
        let request = build_http_request(cgi(&[
            ("REQUEST_METHOD", b"GET"),
            ("REQUEST_URI", b"/"),
            ("HTTP_X_EVIL", b"a\r\nSet-Cookie: x=1"),
            ("HTTP_X_FINE", b"\xff\xfe not utf-8 but allowed"),
        ]))
        .unwrap();
        assert!(request.headers().get("x-evil").is_none());
        assert!(request.headers().get("x-fine").is_some());
    }

    #[test]
    fn odd_request_targets_are_percent_encoded() {
        let request = build_http_request(cgi(&[
            ("REQUEST_METHOD", b"GET"),
            ("REQUEST_URI", b"/a b\x01/\xc3\xa9?q=1 2"),
        ]))
        .unwrap();
        assert_eq!(request.uri().path(), "/a%20b%01/%C3%A9");
        assert_eq!(request.uri().query(), Some("q=1%202"));
    }

    #[test]
    fn without_request_uri_the_script_name_and_query_are_used() {
        let request = build_http_request(cgi(&[
            ("REQUEST_METHOD", b"GET"),
            ("SCRIPT_NAME", b"/health"),
            ("QUERY_STRING", b"a=b"),
        ]))
        .unwrap();
        assert_eq!(request.uri(), "/health?a=b");
    }

    #[test]
    fn a_repeated_client_address_is_refused() {
        assert!(matches!(
            build_http_request(cgi(&[
                ("REQUEST_METHOD", b"GET"),
                ("REMOTE_ADDR", b"192.0.2.1"),
                ("REMOTE_ADDR", b"127.0.0.1"),
            ])),
            Err(BadCgiRequest::RepeatedParam("REMOTE_ADDR"))
        ));
    }

    #[test]
    fn a_missing_or_bad_method_is_an_error() {
        assert!(matches!(
            build_http_request(cgi(&[("REQUEST_URI", b"/")])),
            Err(BadCgiRequest::MissingMethod)
        ));
        assert!(matches!(
            build_http_request(cgi(&[("REQUEST_METHOD", b"G T")])),
            Err(BadCgiRequest::BadMethod)
        ));
    }
}
