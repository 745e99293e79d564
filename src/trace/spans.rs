//! The spans nene makes for a request, with the `otel` feature: the
//! request's server span (started by the operations layer, continuing a
//! caller's `traceparent`, renamed by its route when it ends) and the
//! phases inside it. A request the sampler leaves out gets no span at all,
//! so it costs the sampler's decision and nothing more.

use std::borrow::Cow;
use std::cell::Cell;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, ContextGuard, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::pipeline::tracer;

/// W3C Trace Context's header, named once (a name parsed from text per
/// request cost about 300 instructions in the lookup).
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The server span of one sampled request.
pub(crate) struct RequestSpan {
    context: Context,
    method: Method,
}

impl RequestSpan {
    /// The request's span, when traces are on and the sampler takes it:
    /// a child of the caller's span when `headers` carry a valid
    /// `traceparent` (nginx passes it on as `HTTP_TRACEPARENT`).
    pub(crate) fn start(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Option<RequestSpan> {
        let tracer = tracer()?;
        let caller = if headers.contains_key(&TRACEPARENT) {
            TraceContextPropagator::new().extract(&HeaderExtractor(headers))
        } else {
            Context::new()
        };
        // Named by the method until the route is known (the semantic
        // conventions' name for a request without a route).
        let span = tracer
            .span_builder(method_name(method))
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &caller);
        if !span.span_context().is_sampled() {
            return None;
        }
        let context = caller.with_span(span);
        let span = context.span();
        span.set_attribute(KeyValue::new(
            "http.request.method",
            method.as_str().to_string(),
        ));
        span.set_attribute(KeyValue::new("url.path", uri.path().to_string()));
        if let Some(client) = client {
            span.set_attribute(KeyValue::new("client.address", client.to_string()));
        }
        Some(RequestSpan {
            context,
            method: method.clone(),
        })
    }

    /// `work` with `trace`'s span current on this thread (as it is, when
    /// the request is not traced).
    pub(crate) fn within<R>(trace: Option<&RequestSpan>, work: impl FnOnce() -> R) -> R {
        let _attached = trace.map(|trace| Attached::new(&trace.context));
        work()
    }

    /// The trace's id, as `traceparent` writes it (32 hex digits).
    pub(crate) fn trace_id(&self) -> String {
        self.context.span().span_context().trace_id().to_string()
    }

    /// Ends the span, named `GET /{controller}/{action}` when the
    /// dispatcher picked a route.
    pub(crate) fn finish(self, route: Option<&str>, status: StatusCode) {
        let span = self.context.span();
        if let Some(route) = route {
            span.update_name(format!("{} {route}", self.method));
            span.set_attribute(KeyValue::new("http.route", route.to_string()));
        }
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        // A server span is an error for a 5xx only: a 4xx is the client's.
        if status.is_server_error() {
            span.set_status(Status::error(status.to_string()));
        }
        span.end();
    }
}

/// `method` as a span name, without an allocation for the usual ones (the
/// sampler sees the name before it drops an unsampled request's span).
fn method_name(method: &Method) -> Cow<'static, str> {
    const KNOWN: [&str; 7] = ["GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"];
    match KNOWN.iter().find(|known| **known == method.as_str()) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(method.as_str().to_string()),
    }
}

/// One phase of a sampled request (the handler, the session's read or
/// write, a backend call); empty when the request is not traced. Ends when
/// dropped.
#[derive(Default)]
pub(crate) struct TraceSpan {
    context: Option<Context>,
}

impl TraceSpan {
    /// A child of the span current on this thread, if that span is sampled.
    pub(crate) fn under_current(name: &'static str) -> TraceSpan {
        match current_sampled() {
            Some(current) => TraceSpan::start(&current, Cow::Borrowed(name)),
            None => TraceSpan::default(),
        }
    }

    /// [`TraceSpan::backend`] under the span current on this thread.
    pub(crate) fn backend_under_current(
        system: &'static str,
        operation: &'static str,
    ) -> TraceSpan {
        match current_sampled() {
            Some(current) => TraceSpan::backend_call(&current, system, operation),
            None => TraceSpan::default(),
        }
    }

    /// A child of this phase.
    pub(crate) fn child(&self, name: &'static str) -> TraceSpan {
        match &self.context {
            Some(parent) => TraceSpan::start(parent, Cow::Borrowed(name)),
            None => TraceSpan::default(),
        }
    }

    /// A child of this phase for one call to the session backend,
    /// `{system} {operation}` (`redis lock_and_read`), with the semantic
    /// conventions' database attributes. Never the session id or data.
    pub(crate) fn backend(&self, system: &'static str, operation: &'static str) -> TraceSpan {
        match &self.context {
            Some(parent) => TraceSpan::backend_call(parent, system, operation),
            None => TraceSpan::default(),
        }
    }

    fn backend_call(parent: &Context, system: &'static str, operation: &'static str) -> TraceSpan {
        let phase = TraceSpan::start_kind(
            parent,
            Cow::Owned(format!("{system} {operation}")),
            SpanKind::Client,
        );
        if let Some(context) = &phase.context {
            let span = context.span();
            span.set_attribute(KeyValue::new("db.system.name", system));
            span.set_attribute(KeyValue::new("db.operation.name", operation));
        }
        phase
    }

    fn start(parent: &Context, name: Cow<'static, str>) -> TraceSpan {
        TraceSpan::start_kind(parent, name, SpanKind::Internal)
    }

    fn start_kind(parent: &Context, name: Cow<'static, str>, kind: SpanKind) -> TraceSpan {
        let Some(tracer) = tracer() else {
            return TraceSpan::default();
        };
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(tracer, parent);
        TraceSpan {
            context: Some(parent.with_span(span)),
        }
    }

    /// Records a boolean attribute.
    pub(crate) fn set_bool(&self, key: &'static str, value: bool) {
        if let Some(context) = &self.context {
            context.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Records a text attribute, made only when the span is recorded.
    pub(crate) fn set_text(&self, key: &'static str, value: impl FnOnce() -> String) {
        if let Some(context) = &self.context {
            context.span().set_attribute(KeyValue::new(key, value()));
        }
    }

    /// Marks the phase failed with `error`'s message (nene's error texts
    /// name no session id and no password).
    pub(crate) fn fail(&mut self, error: &dyn std::fmt::Display) {
        if let Some(context) = &self.context {
            context.span().set_status(Status::error(error.to_string()));
        }
    }

    /// `work` with this span current on this thread (as it is, when the
    /// request is not traced).
    pub(crate) fn within<R>(&self, work: impl FnOnce() -> R) -> R {
        let _attached = self.context.as_ref().map(Attached::new);
        work()
    }

    /// Ends the phase now (dropping it does too).
    pub(crate) fn end(self) {}
}

impl Drop for TraceSpan {
    fn drop(&mut self) {
        if let Some(context) = &self.context {
            context.span().end();
        }
    }
}

/// The context current on this thread, if traces are on and its span is
/// sampled.
fn current_sampled() -> Option<Context> {
    tracer()?;
    let current = Context::current();
    current
        .span()
        .span_context()
        .is_sampled()
        .then_some(current)
}

thread_local! {
    /// How many traced spans are current on this thread: an application's
    /// `tracing` spans are exported only inside a traced request.
    static TRACED_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether the thread is inside a traced request (the filter of the layer
/// that turns an application's `tracing` spans into OpenTelemetry spans).
pub(crate) fn inside_traced_request() -> bool {
    TRACED_DEPTH.get() > 0
}

/// A span made current for one call or poll; the previous one is current
/// again when this is dropped.
struct Attached {
    _guard: ContextGuard,
}

impl Attached {
    fn new(context: &Context) -> Attached {
        TRACED_DEPTH.set(TRACED_DEPTH.get() + 1);
        Attached {
            _guard: context.clone().attach(),
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        TRACED_DEPTH.set(TRACED_DEPTH.get() - 1);
    }
}
