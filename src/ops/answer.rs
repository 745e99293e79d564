//! One request's way through the operations layer once it is called: the
//! answer (the application's under `request_terminate_timeout`, or the ping
//! or status page at once), then what is written down about it (the slow
//! log, the access log, the counters). A future of its own rather than an
//! `async` block: its type can be named, so the layer hands it out without
//! a heap allocation per request (benches/README.md, "Allocations on the
//! request path").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri};
use nene_fastcgi::CgiParams;
use pin_project_lite::pin_project;
use tokio::time::Timeout;

use super::Ops;

/// The request headers of a line whose format names none: one empty map
/// for every line, not one made and dropped per line.
static NO_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);
use super::access_format::{AccessRecord, split_target};
use crate::layer_notes;
use crate::session::Session;
use crate::trace::RequestSpan;

pin_project! {
    /// The operations layer's future for one request.
    pub struct OpsFuture<F> {
        #[pin]
        answer: Answer<F>,
        // `None` once the request has been written down.
        record: Option<Record>,
    }
}

pin_project! {
    /// Where the answer comes from.
    #[project = AnswerProjection]
    pub(super) enum Answer<F> {
        /// The layer answered itself (ping, status page); taken when polled.
        Ready { response: Option<Response> },
        /// The application, with no time limit.
        Application { #[pin] call: F },
        /// The application, stopped after `limit`.
        Bounded { #[pin] call: Timeout<F>, limit: Duration },
    }
}

/// What the logs need of the request once it is answered. The request is
/// counted as active from [`OpsFuture::new`] until this is dropped
/// (answered, or abandoned when the client goes away).
pub(super) struct Record {
    pub(super) ops: Arc<Ops>,
    pub(super) started: Instant,
    pub(super) method: Method,
    /// A handle on the URI's bytes, not a copy of its path and query.
    pub(super) uri: Uri,
    /// The request's FastCGI params, when the access log is on.
    pub(super) params: Option<CgiParams>,
    /// Kept only when the access format names request headers.
    pub(super) request_headers: Option<Box<HeaderMap>>,
    /// The route the dispatcher noted, once it has (layer_notes.rs).
    pub(super) route: Option<Arc<str>>,
    /// Only with the slow log on: the request's session, whose timings
    /// split the request's time.
    pub(super) session: Option<Session>,
    /// The request's span, when it is traced.
    pub(super) trace: Option<RequestSpan>,
    /// Whether the application has been called yet: a note is looked for
    /// only then (answers of the layer itself have no route).
    pub(super) calls_application: bool,
}

impl<F> OpsFuture<F> {
    pub(super) fn new(answer: Answer<F>, record: Record) -> Self {
        record.ops.metrics.request_started();
        Self {
            answer,
            record: Some(record),
        }
    }
}

impl<F: Future> Answer<F> {
    /// The layer's own answer.
    pub(super) fn ready(response: Response) -> Self {
        Answer::Ready {
            response: Some(response),
        }
    }

    /// The application's answer to `call`, within `limit` when there is one.
    pub(super) fn application(call: F, limit: Option<Duration>) -> Self {
        match limit {
            Some(limit) => Answer::Bounded {
                call: tokio::time::timeout(limit, call),
                limit,
            },
            None => Answer::Application { call },
        }
    }
}

impl<F> Future for OpsFuture<F>
where
    F: Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let record = this
            .record
            .as_mut()
            .expect("an OpsFuture polled after it completed");
        // An application that routes in a poll rather than in its call (an
        // extra layer of the application's that calls later) notes then.
        let looks_for_route = record.route.is_none() && record.calls_application;
        if looks_for_route {
            layer_notes::take();
        }
        let answer = this.answer;
        let polled = RequestSpan::within(record.trace.as_ref(), || answer.poll_answer(cx));
        if looks_for_route {
            record.route = layer_notes::take().route;
        }
        let answered = ready!(polled);
        let record = this.record.take().expect("taken only here");
        Poll::Ready(Ok(record.write_down(answered)))
    }
}

impl<F> Answer<F>
where
    F: Future<Output = Result<Response, std::convert::Infallible>>,
{
    /// The answer, or the time limit that cut the application.
    fn poll_answer(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Response, Duration>> {
        Poll::Ready(match self.project() {
            AnswerProjection::Ready { response } => Ok(response
                .take()
                .expect("an OpsFuture polled after it completed")),
            AnswerProjection::Application { call } => Ok(into_ok(ready!(call.poll(cx)))),
            AnswerProjection::Bounded { call, limit } => match ready!(call.poll(cx)) {
                Ok(answer) => Ok(into_ok(answer)),
                Err(_) => Err(*limit),
            },
        })
    }
}

fn into_ok(answer: Result<Response, std::convert::Infallible>) -> Response {
    match answer {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

impl Record {
    /// The response for `answered` (a 504 when the time limit cut the
    /// application), after the slow log and the access log have it.
    fn write_down(mut self, answered: Result<Response, Duration>) -> Response {
        let ops = &self.ops;
        let (path, query) = (self.uri.path(), self.uri.query());
        let method = &self.method;
        let response = answered.unwrap_or_else(|limit| {
            ops.count_timed_out();
            tracing::warn!(
                "{method} {path}: no answer within request_terminate_timeout ({limit:?}); the handler was stopped"
            );
            (StatusCode::GATEWAY_TIMEOUT, "request timed out\n").into_response()
        });
        let elapsed = self.started.elapsed();
        let trace_id = self.trace.as_ref().map(RequestSpan::trace_id);
        if let Some(trace) = self.trace.take() {
            trace.finish(self.route.as_deref(), response.status());
        }
        (ops.metrics.durations).record(self.route.as_ref(), response.status(), elapsed);
        if let Some(threshold) = ops.settings.request_slowlog_timeout
            && elapsed >= threshold
        {
            ops.count_slow();
            ops.slow_log
                .write_line(&slow_line(method, path, elapsed, self.session.as_ref()));
        }
        if !ops.access_log.is_off() {
            // The target as the client sent it (`REQUEST_URI`), not the
            // routing path the application saw (decision 0013); the same
            // rule as for refused requests.
            let sent = (self.params.as_ref())
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
                params: self.params.as_ref(),
                request_headers: self.request_headers.as_deref().unwrap_or(&NO_HEADERS),
                response_headers: response.headers(),
                trace_id: trace_id.as_deref(),
            });
            ops.access_log.write_line(&line);
        }
        response
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.ops.metrics.request_ended();
    }
}

fn slow_line(method: &Method, path: &str, elapsed: Duration, session: Option<&Session>) -> String {
    let (read, write) = session.map_or((Duration::ZERO, Duration::ZERO), |session| {
        (session.timings().read(), session.timings().write())
    });
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
