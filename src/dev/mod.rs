//! `nene dev`: the development web server, as `php -S` is PHP's. Plain
//! HTTP/1.1 (hyper, with nene's own accept loop: `accept.rs`) in place of
//! nginx + FastCGI;
//! everything behind the transport is the production path. Like the
//! repository's nginx block (`try_files $uri @nene`), a request for a file
//! under htdocs gets the file (tower-http's `ServeDir`: content type, `HEAD`,
//! `If-Modified-Since`, no directory listing, no `..` escape; never a
//! dotfile but `/.well-known/`, never a file a symlink leads to outside
//! htdocs: 404), anything else
//! goes to the front controller with the CGI values nginx would have sent:
//! the client address, `SCRIPT_NAME`, no `HTTPS`. The body is read whole and
//! bounded by `server.max_body_bytes` (413 above it) and
//! `server.receive_timeout` (408) before the application runs, as the
//! FastCGI server does; connections are capped and timed (`accept.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::{ServiceExt, service_fn};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::services::ServeDir;

mod accept;

use crate::application::Application;
use crate::config::Settings;
use crate::fastcgi::CgiParams;
use crate::request_context::RequestContext;
use crate::request_info::Peer;

/// Why `nene dev` refuses an address.
#[derive(Debug, thiserror::Error)]
pub enum DevAddressError {
    /// `php -S 0.0.0.0:8000` users learn it the hard way: a development
    /// server on a public interface serves anyone on the network.
    #[error(
        "--http {0}: the development server listens on loopback only (127.0.0.1, ::1); it is not hardened for the network. Add --public to listen on {0} anyway, or put nginx in front of `nene serve` in production"
    )]
    NotLoopback(SocketAddr),
}

/// Checks the `--http` address: loopback, or anything with `public`.
pub fn check_dev_address(addr: SocketAddr, public: bool) -> Result<(), DevAddressError> {
    if addr.ip().is_loopback() || public {
        Ok(())
    } else {
        Err(DevAddressError::NotLoopback(addr))
    }
}

/// Serves `front` (the application inside nene's front controller) and
/// htdocs over HTTP on `listener` until `shutdown` resolves.
pub async fn serve_http<A: Application>(
    listener: TcpListener,
    front: A,
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let document_root = std::path::absolute(&settings.htdocs)?;
    let max_body = settings.server.limits.max_body_bytes;
    let receive_timeout = settings.server.limits.receive_timeout;
    let root = document_root.clone();
    let to_front_controller = service_fn(move |request: Request<Body>| {
        let front = front.clone();
        let root = root.clone();
        async move {
            let request =
                match as_nginx_would_send(request, local, &root, max_body, receive_timeout).await {
                    Ok(request) => request,
                    Err(refusal) => return Ok::<_, Infallible>(refusal),
                };
            front.oneshot(request).await
        }
    });
    let static_first = ServeDir::new(&document_root)
        .append_index_html_on_directories(false)
        .call_fallback_on_method_not_allowed(true)
        .fallback(to_front_controller);
    // ServeDir follows symlinks and serves dotfiles; a development checkout
    // keeps `.env` and `.git/` close by, and a link can point anywhere.
    let real_root = tokio::fs::canonicalize(&document_root).await?;
    let root = document_root.clone();
    let guarded = service_fn(move |request: Request<Body>| {
        let static_first = static_first.clone();
        let root = root.clone();
        let real_root = real_root.clone();
        async move {
            let path = percent_encoding::percent_decode_str(request.uri().path())
                .decode_utf8_lossy()
                .into_owned();
            if is_hidden(&path) || !resolves_inside(&root, &real_root, &path).await {
                return Ok::<_, Infallible>((StatusCode::NOT_FOUND, "not found\n").into_response());
            }
            static_first
                .oneshot(request)
                .await
                .map(IntoResponse::into_response)
        }
    });
    // A handler that panics answers 500, as under FastCGI, instead of
    // dropping the connection (the panic hook has logged it already).
    let router = Router::new()
        .fallback_service(guarded)
        .layer(CatchPanicLayer::custom(|_panic| {
            (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error\n",
            )
                .into_response()
        }));
    tracing::warn!(
        "nene {} development server on http://{local}/ (htdocs {}) — put nginx (or another web server) in front of `nene serve` in production",
        env!("CARGO_PKG_VERSION"),
        document_root.display()
    );
    // As the FastCGI server drains: requests in flight get
    // `server.drain_timeout` after the signal, then nene stops anyway (a
    // handler that never returns must not keep the process alive).
    let stopping = CancellationToken::new();
    let trigger = stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let bounds = accept::Bounds {
        max_connections: settings.server.limits.max_connections,
        receive_timeout: settings.server.limits.receive_timeout,
        drain_timeout: settings.server.drain_timeout,
    };
    accept::serve(listener, router, bounds, stopping).await;
    Ok(())
}

/// The request with its body read whole and the values the repository's
/// nginx block passes as CGI params, or the answer that refuses it.
async fn as_nginx_would_send(
    request: Request<Body>,
    local: SocketAddr,
    document_root: &Path,
    max_body: usize,
    receive_timeout: std::time::Duration,
) -> Result<Request<Body>, Response> {
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body as u64) {
        return Err(too_large());
    }
    // A body dripped slower than the whole request may take is cut off,
    // as the FastCGI server cuts off a peer (`server.receive_timeout`).
    let body =
        match tokio::time::timeout(receive_timeout, axum::body::to_bytes(body, max_body)).await {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => return Err(too_large()),
            Err(_) => {
                return Err((
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive within server.receive_timeout\n",
                )
                    .into_response());
            }
        };
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let path = parts.uri.path();
    let decoded_path = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    let request_uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let mut pairs: Vec<(&str, String)> = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        (
            "SERVER_SOFTWARE",
            format!("nene-dev/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("REQUEST_METHOD", parts.method.to_string()),
        ("REQUEST_URI", request_uri),
        ("DOCUMENT_URI", decoded_path.clone()),
        ("SCRIPT_NAME", decoded_path),
        ("DOCUMENT_ROOT", document_root.display().to_string()),
        (
            "QUERY_STRING",
            parts.uri.query().unwrap_or_default().to_string(),
        ),
        ("CONTENT_TYPE", header(CONTENT_TYPE)),
        ("CONTENT_LENGTH", header(CONTENT_LENGTH)),
        ("SERVER_PROTOCOL", format!("{:?}", parts.version)),
        ("REQUEST_SCHEME", "http".into()),
        ("SERVER_ADDR", local.ip().to_canonical().to_string()),
        ("SERVER_PORT", local.port().to_string()),
        // As `php -S` does: the address it listens on (the Host header is
        // the client's to choose).
        ("SERVER_NAME", local.ip().to_canonical().to_string()),
    ];
    // `to_canonical`: nginx prints an IPv4 client of a dual-stack socket as
    // `1.2.3.4`, not `::ffff:1.2.3.4`.
    if let Some(client) = client {
        pairs.push(("REMOTE_ADDR", client.ip().to_canonical().to_string()));
        pairs.push(("REMOTE_PORT", client.port().to_string()));
    }
    let params = CgiParams::new(
        pairs
            .into_iter()
            .map(|(name, value)| (Bytes::from_static(name.as_bytes()), Bytes::from(value)))
            .collect(),
    );
    let context = RequestContext::of_mut(&mut parts.extensions);
    context.peer = Some(Peer::from_cgi(|name| params.get_str(name)));
    context.params = Some(params);
    // The path the application routes on, as under FastCGI.
    parts.uri = match crate::server::routed(parts.uri) {
        Ok(uri) => uri,
        Err(refused) => {
            return Err((StatusCode::BAD_REQUEST, format!("{refused}\n")).into_response());
        }
    };
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// Whether the decoded `path` names a dotfile or lies under a dot
/// directory (`/.env`, `/.git/config`, `/%2egit/config`), which the
/// development server never serves; `/.well-known/` (RFC 8615) is the
/// exception.
fn is_hidden(path: &str) -> bool {
    if path.starts_with("/.well-known/") {
        return false;
    }
    // `.` and `..` are dot segments, which the routing path resolves
    // (decision 0013), not names.
    path.split('/')
        .any(|segment| segment.starts_with('.') && segment != "." && segment != "..")
}

/// Whether the file the decoded `path` names under `root` is, once every
/// symlink is followed, still inside `real_root` (htdocs, resolved). A
/// path that names nothing is "inside": the front controller answers it.
async fn resolves_inside(root: &Path, real_root: &Path, path: &str) -> bool {
    let candidate = root.join(path.trim_start_matches('/'));
    match tokio::fs::canonicalize(&candidate).await {
        Ok(real) => real.starts_with(real_root),
        Err(_) => true,
    }
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body over server.max_body_bytes\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_public() {
        assert!(check_dev_address("127.0.0.1:8080".parse().unwrap(), false).is_ok());
        assert!(check_dev_address("[::1]:8080".parse().unwrap(), false).is_ok());
        let error = check_dev_address("0.0.0.0:8080".parse().unwrap(), false).unwrap_err();
        assert!(error.to_string().contains("--public"), "{error}");
        assert!(check_dev_address("0.0.0.0:8080".parse().unwrap(), true).is_ok());
    }
}
