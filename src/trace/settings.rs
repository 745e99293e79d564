//! What the `[otel]` settings say about traces: whether they are exported,
//! where to, how often a request is sampled and how many finished spans may
//! wait for the exporter. Each setting is also the OpenTelemetry SDK's
//! standard environment variable (`OTEL_TRACES_EXPORTER`, …), which wins,
//! so a site configures nene as it configures every other traced service.

use std::time::Duration;

use crate::choice::choice_from_str;

/// `otel.traces_exporter` (`OTEL_TRACES_EXPORTER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracesExporter {
    /// No traces (the default): nothing is built, a request pays nothing.
    None,
    /// OTLP to `otel.exporter_otlp_endpoint`.
    Otlp,
}

choice_from_str!(TracesExporter, "none, otlp", {
    "none" => TracesExporter::None,
    "otlp" => TracesExporter::Otlp,
});

/// `otel.exporter_otlp_protocol` (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (a collector's port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318, `/v1/traces`): the
    /// specification's default.
    HttpProtobuf,
}

choice_from_str!(OtlpProtocol, "grpc, http/protobuf", {
    "grpc" => OtlpProtocol::Grpc,
    "http/protobuf" => OtlpProtocol::HttpProtobuf,
});

impl OtlpProtocol {
    /// The collector's address when none is set, as the specification gives
    /// it per protocol.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "http://localhost:4317",
            OtlpProtocol::HttpProtobuf => "http://localhost:4318",
        }
    }
}

/// `otel.traces_sampler` (`OTEL_TRACES_SAMPLER`), the specification's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerName {
    /// Every request.
    AlwaysOn,
    /// No request.
    AlwaysOff,
    /// `traces_sampler_arg` of the requests, by trace id.
    TraceIdRatio,
    /// As the caller's `traceparent` says; every request without one.
    ParentBasedAlwaysOn,
    /// As the caller's `traceparent` says; no request without one.
    ParentBasedAlwaysOff,
    /// As the caller's `traceparent` says; `traces_sampler_arg` of the
    /// requests without one.
    ParentBasedTraceIdRatio,
}

choice_from_str!(SamplerName, "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio", {
    "always_on" => SamplerName::AlwaysOn,
    "always_off" => SamplerName::AlwaysOff,
    "traceidratio" => SamplerName::TraceIdRatio,
    "parentbased_always_on" => SamplerName::ParentBasedAlwaysOn,
    "parentbased_always_off" => SamplerName::ParentBasedAlwaysOff,
    "parentbased_traceidratio" => SamplerName::ParentBasedTraceIdRatio,
});

/// The `[otel]` section, read at start-up.
#[derive(Clone, Debug)]
pub struct TraceSettings {
    /// `otel.traces_exporter`.
    pub exporter: TracesExporter,
    /// `otel.exporter_otlp_endpoint`; `None` = the protocol's default.
    pub endpoint: Option<String>,
    /// `otel.exporter_otlp_protocol`.
    pub protocol: OtlpProtocol,
    /// `otel.service_name`: the `service.name` every span carries.
    pub service_name: String,
    /// `otel.traces_sampler`.
    pub sampler: SamplerName,
    /// `otel.traces_sampler_arg`: the ratio of the ratio samplers, 0 to 1.
    pub sampler_ratio: f64,
    /// `otel.bsp_max_queue_size`: finished spans that may wait for the
    /// exporter; more are dropped (and counted).
    pub max_queue_size: usize,
    /// `otel.bsp_max_export_batch_size`: spans per export.
    pub max_export_batch_size: usize,
    /// `otel.bsp_schedule_delay`: the longest a finished span waits for
    /// its batch to fill.
    pub schedule_delay: Duration,
    /// `otel.bsp_export_timeout`: an export that takes longer is given up
    /// (its spans counted as dropped).
    pub export_timeout: Duration,
}

impl TraceSettings {
    /// Whether traces are exported at all.
    pub fn enabled(&self) -> bool {
        self.exporter == TracesExporter::Otlp
    }

    /// The collector's address: the one set, or the protocol's default.
    pub fn endpoint(&self) -> &str {
        (self.endpoint.as_deref()).unwrap_or(self.protocol.default_endpoint())
    }
}
