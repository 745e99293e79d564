//! The trace types when nene is built without the `otel` feature: nothing
//! is ever traced, and asking for traces stops start-up with a message
//! naming the feature.

use std::net::IpAddr;

use http::{HeaderMap, Method, StatusCode, Uri};

use super::TraceSettings;

/// Never built: no request is traced.
pub(crate) enum RequestSpan {}

impl RequestSpan {
    /// No span: traces are not compiled in.
    pub(crate) fn start(
        _method: &Method,
        _uri: &Uri,
        _headers: &HeaderMap,
        _client: Option<IpAddr>,
    ) -> Option<RequestSpan> {
        None
    }

    pub(crate) fn within<R>(_trace: Option<&RequestSpan>, work: impl FnOnce() -> R) -> R {
        work()
    }

    pub(crate) fn trace_id(&self) -> String {
        match *self {}
    }

    pub(crate) fn finish(self, _route: Option<&str>, _status: StatusCode) {}
}

/// A span that is never recorded.
#[derive(Default)]
pub(crate) struct TraceSpan;

impl TraceSpan {
    pub(crate) fn under_current(_name: &'static str) -> TraceSpan {
        TraceSpan
    }

    pub(crate) fn child(&self, _name: &'static str) -> TraceSpan {
        TraceSpan
    }

    pub(crate) fn backend(&self, _system: &'static str, _operation: &'static str) -> TraceSpan {
        TraceSpan
    }

    pub(crate) fn backend_under_current(
        _system: &'static str,
        _operation: &'static str,
    ) -> TraceSpan {
        TraceSpan
    }

    pub(crate) fn set_bool(&self, _key: &'static str, _value: bool) {}

    pub(crate) fn set_text(&self, _key: &'static str, _value: impl FnOnce() -> String) {}

    pub(crate) fn fail(&mut self, _error: &dyn std::fmt::Display) {}

    pub(crate) fn within<R>(&self, work: impl FnOnce() -> R) -> R {
        work()
    }

    pub(crate) fn end(self) {}
}

/// Never built: nothing to export to.
pub(crate) enum TracePipeline {}

impl TracePipeline {
    /// `None` unless the settings ask for traces, which this build cannot give.
    pub(crate) fn start(settings: &TraceSettings) -> Result<Option<TracePipeline>, String> {
        if settings.enabled() {
            return Err(
                "otel.traces_exporter (OTEL_TRACES_EXPORTER) = otlp needs nene built with the `otel` feature"
                    .to_string(),
            );
        }
        Ok(None)
    }

    /// `nene check`: the same refusal as at start-up.
    pub(crate) fn check(settings: &TraceSettings) -> Result<(), String> {
        Self::start(settings).map(|_| ())
    }

    pub(crate) fn summary(&self) -> &str {
        match *self {}
    }

    pub(crate) fn application_spans(&self) -> tracing_subscriber::layer::Identity {
        match *self {}
    }

    pub(crate) async fn shutdown(self, _within: std::time::Duration) {}
}

/// Spans exported and dropped: none, traces are not compiled in.
pub(crate) fn span_counts() -> Option<(u64, u64)> {
    None
}
