//! The operations layer, outermost around the front controller: answers the
//! ping and status paths itself (before the application, without touching
//! sessions), bounds every other request by `request_terminate_timeout`
//! (504), counts it, and writes the slow log and the access log.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use tower::{Layer, Service};

use crate::config::Constants;
use crate::layer_notes;
use crate::request_context::RequestContext;
use crate::trace::RequestSpan;

use super::Ops;
use super::answer::{Answer, OpsFuture, Record};
use super::status::StatusSnapshot;

/// Wraps a service in the operations layer, which also hands every request
/// the application's constants (in its `RequestContext`).
#[derive(Clone)]
pub struct OpsLayer {
    ops: Arc<Ops>,
    constants: Constants,
}

impl OpsLayer {
    /// The layer around `ops`, built once at start-up.
    pub fn new(ops: Arc<Ops>, constants: Constants) -> Self {
        Self { ops, constants }
    }
}

impl<S> Layer<S> for OpsLayer {
    type Service = OpsService<S>;

    fn layer(&self, inner: S) -> OpsService<S> {
        OpsService {
            inner,
            ops: self.ops.clone(),
            constants: self.constants.clone(),
        }
    }
}

/// A service inside the operations layer.
#[derive(Clone)]
pub struct OpsService<S> {
    inner: S,
    ops: Arc<Ops>,
    constants: Constants,
}

impl<S> Service<Request<Body>> for OpsService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = OpsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let ops = &self.ops;
        let started = Instant::now();
        let method = request.method().clone();
        let uri = request.uri().clone();
        let (path, query) = (uri.path(), uri.query());
        let logs_access = !ops.access_log.is_off();
        let context = RequestContext::of(request.extensions());
        let params = context
            .filter(|_| logs_access)
            .and_then(|context| context.params.clone());
        let client_ip = context
            .and_then(|context| context.peer)
            .and_then(|peer| peer.client_ip);
        // Boxed: kept by few formats, while the record travels inside the
        // request's future, which is moved whole (96 bytes a copy).
        let request_headers = (logs_access && ops.access_needs_request_headers)
            .then(|| Box::new(request.headers().clone()));
        let mut notes = layer_notes::Notes::default();
        // Pings and status pages are not traced: monitors would fill the
        // collector with them.
        let mut trace = None;
        let answer = if ops.settings.ping_path.as_deref() == Some(path) {
            Answer::ready(ping(ops, &method))
        } else if ops.settings.status_path.as_deref() == Some(path) {
            Answer::ready(status(ops, client_ip, query))
        } else {
            let context = RequestContext::of_mut(request.extensions_mut());
            context.constants = Some(self.constants.clone());
            trace = RequestSpan::start(&method, &uri, request.headers(), client_ip);
            // The service that was polled ready handles this request.
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            layer_notes::take(); // notes no one took are not this request's
            let call = RequestSpan::within(trace.as_ref(), || inner.call(request));
            notes = layer_notes::take();
            Answer::application(call, ops.settings.request_terminate_timeout)
        };
        let record = Record {
            ops: ops.clone(),
            started,
            method,
            uri,
            params,
            request_headers,
            calls_application: !matches!(answer, Answer::Ready { .. }),
            route: notes.route,
            trace,
            // The session's share of the time matters only to the slow log.
            session: notes
                .session
                .filter(|_| ops.settings.request_slowlog_timeout.is_some()),
        };
        OpsFuture::new(answer, record)
    }
}

fn ping(ops: &Ops, method: &Method) -> Response {
    let body = if method == Method::HEAD {
        String::new()
    } else {
        format!("{}\n", ops.settings.ping_response)
    };
    (
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn status(ops: &Ops, client_ip: Option<IpAddr>, query: Option<&str>) -> Response {
    let allowed = client_ip.is_some_and(|addr| {
        ops.settings
            .status_allow
            .iter()
            .any(|net| net.contains(&addr))
    });
    if !allowed {
        return (StatusCode::FORBIDDEN, "Access denied.\n").into_response();
    }
    let snapshot = StatusSnapshot::take(&ops.metrics, &ops.server, &ops.sessions);
    let wants = |flag: &str| {
        query.is_some_and(|q| {
            q.split('&')
                .any(|part| part == flag || part.starts_with(&format!("{flag}=")))
        })
    };
    let (content_type, body) = if wants("json") {
        ("application/json", snapshot.json())
    } else if wants("html") {
        ("text/html; charset=utf-8", snapshot.html())
    } else if wants("openmetrics") || wants("prometheus") {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            snapshot.openmetrics(),
        )
    } else {
        ("text/plain; charset=utf-8", snapshot.text())
    };
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}
