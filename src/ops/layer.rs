//! The operations layer, outermost around the front controller: answers the
//! ping and status paths itself (before the application, without touching
//! sessions), bounds every other request by `request_terminate_timeout`
//! (504), counts it, and writes the slow log and the access log.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode};
use tower::{Layer, Service};

use crate::config::Constants;
use crate::request_context::RequestContext;
use crate::session::SessionTimings;

use super::Ops;
use super::access_format::{AccessRecord, split_target};
use super::metrics::ActiveRequest;
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
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let ops = self.ops.clone();
        let constants = self.constants.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let started = Instant::now();
            let active = ActiveRequest::new(&ops.metrics);
            let method = request.method().clone();
            // A handle on the URI's bytes, not a copy of its path and query.
            let uri = request.uri().clone();
            let (path, query) = (uri.path(), uri.query());
            let logs_access = !ops.access_log.is_off();
            let context = RequestContext::of(request.extensions());
            let params = context
                .filter(|_| logs_access)
                .and_then(|context| context.params.clone());
            let client_ip = context
                .and_then(|context| context.info.as_ref())
                .and_then(|info| info.client_ip);
            let request_headers = if logs_access && ops.access_needs_request_headers {
                request.headers().clone()
            } else {
                HeaderMap::new()
            };
            let timings = Arc::new(SessionTimings::default());

            let response = if ops.settings.ping_path.as_deref() == Some(path) {
                ping(&ops, &method)
            } else if ops.settings.status_path.as_deref() == Some(path) {
                status(&ops, client_ip, query)
            } else {
                let context = RequestContext::of_mut(request.extensions_mut());
                context.timings = Some(timings.clone());
                context.constants = Some(constants);
                let call = inner.call(request);
                let outcome = match ops.settings.request_terminate_timeout {
                    Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| limit),
                    None => Ok(call.await),
                };
                match outcome {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(limit) => {
                        ops.count_timed_out();
                        tracing::warn!(
                            "{method} {path}: no answer within request_terminate_timeout ({limit:?}); the handler was stopped"
                        );
                        (StatusCode::GATEWAY_TIMEOUT, "request timed out\n").into_response()
                    }
                }
            };
            let elapsed = started.elapsed();
            drop(active);
            if let Some(threshold) = ops.settings.request_slowlog_timeout
                && elapsed >= threshold
            {
                ops.count_slow();
                ops.slow_log
                    .write_line(&slow_line(&method, path, elapsed, &timings));
            }
            if logs_access {
                // The target as the client sent it (`REQUEST_URI`), not the
                // routing path the application saw (decision 0013); the
                // same rule as for refused requests.
                let sent = params
                    .as_ref()
                    .and_then(|params| params.get("REQUEST_URI"))
                    .filter(|target| !target.is_empty())
                    .map(String::from_utf8_lossy);
                let (path, query) = match sent.as_deref() {
                    Some(target) => split_target(target),
                    None => (path, query),
                };
                let line = ops.access_format.render(&AccessRecord {
                    method: method.as_str(),
                    path,
                    query,
                    status: response.status().as_u16(),
                    duration: elapsed,
                    params: params.as_ref(),
                    request_headers: &request_headers,
                    response_headers: response.headers(),
                });
                ops.access_log.write_line(&line);
            }
            Ok(response)
        })
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

fn slow_line(method: &Method, path: &str, elapsed: Duration, timings: &SessionTimings) -> String {
    let read = timings.read();
    let write = timings.write();
    let handler = elapsed.saturating_sub(read).saturating_sub(write);
    format!(
        "slow request: {method} {path} took {:.1} ms (session read {:.1} ms, handler {:.1} ms, session write {:.1} ms)",
        elapsed.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3,
        handler.as_secs_f64() * 1e3,
        write.as_secs_f64() * 1e3,
    )
    .replace(['\r', '\n'], " ")
}
