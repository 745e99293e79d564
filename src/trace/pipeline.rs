//! Building the trace pipeline at start-up from `[otel]`: the OTLP exporter
//! (gRPC or HTTP/protobuf), the export queue, the sampler and the tracer
//! every request's spans come from; and the `tracing` layer that turns an
//! application's own spans inside a traced request into children of its
//! span.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanExporter};

use super::export_queue::{ExportQueue, ExportTask, QueueLimits, SpanCounters};
use super::settings::{OtlpProtocol, SamplerName, TraceSettings};

/// The tracer, once the pipeline is built; `None` = traces are off.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();
/// The export queue's counts, for the status page.
static COUNTERS: OnceLock<Arc<SpanCounters>> = OnceLock::new();

/// The tracer requests take their spans from, when traces are on.
pub(super) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Spans exported and spans dropped (queue full, export failed or too
/// slow) since start-up; `None` when traces are off.
pub(crate) fn span_counts() -> Option<(u64, u64)> {
    COUNTERS.get().map(|counters| {
        (
            counters.exported.load(Ordering::Relaxed),
            counters.dropped.load(Ordering::Relaxed),
        )
    })
}

/// The running pipeline; [`TracePipeline::shutdown`] exports what is left.
pub(crate) struct TracePipeline {
    provider: SdkTracerProvider,
    task: ExportTask,
    /// Protocol, endpoint and sampler, for the start-up log line.
    summary: String,
}

impl TracePipeline {
    /// The pipeline `settings` ask for, or `None` when traces are off. An
    /// endpoint the exporter cannot use is an error naming it. Call inside
    /// the Tokio runtime (the export task runs on it), once per process.
    pub(crate) fn start(settings: &TraceSettings) -> Result<Option<TracePipeline>, String> {
        if !settings.enabled() {
            return Ok(None);
        }
        let mut exporter = exporter(settings)?;
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build();
        let counters = Arc::new(SpanCounters::default());
        let limits = QueueLimits {
            max_queue_size: settings.max_queue_size,
            max_export_batch_size: settings.max_export_batch_size,
            schedule_delay: settings.schedule_delay,
            export_timeout: settings.export_timeout,
        };
        exporter.set_resource(&resource);
        let (queue, task) = ExportQueue::start(exporter, limits, counters.clone());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue)
            .with_sampler(sampler(settings))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("nene");
        if TRACER.set(tracer).is_err() || COUNTERS.set(counters).is_err() {
            return Err("the trace pipeline was started twice".to_string());
        }
        let summary = format!(
            "OTLP ({}) to {}, sampler {:?} ({})",
            match settings.protocol {
                OtlpProtocol::Grpc => "grpc",
                OtlpProtocol::HttpProtobuf => "http/protobuf",
            },
            crate::session::redact_dsn(settings.endpoint()),
            settings.sampler,
            settings.sampler_ratio
        );
        Ok(Some(TracePipeline {
            provider,
            task,
            summary,
        }))
    }

    /// The `tracing` layer that exports an application's spans made inside
    /// a traced request, as children of the phase current there (the
    /// handler's). Outside one, it takes no span, so an untraced request
    /// pays nothing for it.
    pub(crate) fn application_spans<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::filter::dynamic_filter_fn;
        // A dynamic filter: a `filter_fn` is asked once per call site and
        // its first answer kept, so whichever request first reached a span
        // (traced or not) decided for all later ones.
        let only_in_traced_requests = dynamic_filter_fn(|metadata, _| {
            metadata.is_span() && super::spans::inside_traced_request()
        })
        .with_callsite_filter(|metadata| {
            if metadata.is_span() {
                tracing::subscriber::Interest::sometimes()
            } else {
                tracing::subscriber::Interest::never()
            }
        });
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("application"))
            .with_filter(only_in_traced_requests)
    }

    /// What `nene check` says of `settings`: whether the exporter they ask
    /// for can be built (nothing is sent).
    pub(crate) fn check(settings: &TraceSettings) -> Result<(), String> {
        if settings.enabled() {
            exporter(settings)?;
        }
        Ok(())
    }

    /// Protocol, endpoint (a password in it masked) and sampler.
    pub(crate) fn summary(&self) -> &str {
        &self.summary
    }

    /// Exports what is queued (waiting at most `within`) and stops.
    pub(crate) async fn shutdown(self, within: Duration) {
        self.task.finish(within).await;
        let _ = self.provider.shutdown();
    }
}

/// The OTLP exporter for `settings`' protocol and endpoint. The standard
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `…_HEADERS` and `…_TIMEOUT`
/// variables are read by the exporter itself.
fn exporter(settings: &TraceSettings) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let specific = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .ok()
        .filter(|url| !url.is_empty());
    let base = settings.endpoint().trim_end_matches('/');
    let built = match settings.protocol {
        OtlpProtocol::Grpc => {
            let builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            match specific {
                Some(_) => builder,
                None => builder.with_endpoint(base),
            }
            .build()
        }
        OtlpProtocol::HttpProtobuf => {
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary);
            // The generic endpoint is the collector's root; traces go to
            // its `/v1/traces` (as the specification reads
            // OTEL_EXPORTER_OTLP_ENDPOINT).
            match specific {
                Some(_) => builder,
                None => builder.with_endpoint(format!("{base}/v1/traces")),
            }
            .build()
        }
    };
    built.map_err(|error| {
        // The exporter's message quotes the URL: its password is masked too.
        let shown = crate::session::redact_dsn(base);
        let why = error.to_string().replace(base, &shown);
        format!("otel.exporter_otlp_endpoint {shown:?}: {why}")
    })
}

/// The specification's sampler of `settings`.
fn sampler(settings: &TraceSettings) -> Sampler {
    let ratio = Sampler::TraceIdRatioBased(settings.sampler_ratio);
    match settings.sampler {
        SamplerName::AlwaysOn => Sampler::AlwaysOn,
        SamplerName::AlwaysOff => Sampler::AlwaysOff,
        SamplerName::TraceIdRatio => ratio,
        SamplerName::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerName::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerName::ParentBasedTraceIdRatio => Sampler::ParentBased(Box::new(ratio)),
    }
}
