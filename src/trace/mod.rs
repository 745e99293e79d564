//! Traces of requests for an OpenTelemetry collector (decision 0033): one
//! server span per sampled request, named by its route, with children for
//! the handler, the session's lock wait, read and write, and the session
//! backend's calls; a caller's `traceparent` continues its trace, and an
//! application's own `tracing` spans inside a handler join it.
//!
//! Spans are made from the OpenTelemetry context current on the thread:
//! the operations layer makes the request's span current while it polls the
//! application, the session layer the handler's or the write's, so a span
//! started anywhere inside (the session read a handler triggers) finds its
//! parent without being handed one.
//!
//! Compiled with the `otel` feature; without it every type here is empty
//! and its calls compile to nothing. With it and `otel.traces_exporter =
//! none` (the default), each place a span could start finds no tracer (a
//! load of a global that was never set) and goes on.

mod settings;

pub use settings::{OtlpProtocol, SamplerName, TraceSettings, TracesExporter};

#[cfg(feature = "otel")]
mod export_queue;
#[cfg(feature = "otel")]
mod pipeline;
#[cfg(feature = "otel")]
mod spans;

#[cfg(feature = "otel")]
pub(crate) use pipeline::{TracePipeline, span_counts};
#[cfg(feature = "otel")]
pub(crate) use spans::{RequestSpan, TraceSpan};

#[cfg(not(feature = "otel"))]
mod off;
#[cfg(not(feature = "otel"))]
pub(crate) use off::{RequestSpan, TracePipeline, TraceSpan, span_counts};
