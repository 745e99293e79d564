//! A test OTLP trace receiver: the collector's end of what nene's
//! `opentelemetry-otlp` exporter sends, over gRPC (`TraceService/Export`)
//! or HTTP/protobuf (`POST /v1/traces`), on a free loopback port. It keeps
//! every span it receives, flattened into [`ReceivedSpan`] so that tests
//! compare text, not protobuf. It can play a slow collector
//! ([`OtlpReceiver::start_slow`]) and a collector that went away
//! ([`OtlpReceiver::stop`]).
//!
//! By hand: start one in a scratch test, export
//! `OTEL_EXPORTER_OTLP_PROTOCOL=receiver_protocol.env_value()` and
//! `OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint()` to nene, make requests,
//! then `receiver.wait_for(…)`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode as SpanStatusCode};
use prost::Message;

use crate::free_port;

/// How often [`OtlpReceiver::wait_for`] looks at the spans again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The two OTLP transports nene's exporter speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The value of `OTEL_EXPORTER_OTLP_PROTOCOL` that selects it.
    pub fn env_value(&self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// One span as received, its ids and enums rendered as text.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// Lower-case hex, 32 characters.
    pub trace_id: String,
    /// Lower-case hex, 16 characters.
    pub span_id: String,
    /// Lower-case hex; empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// `"server"`, `"internal"`, `"client"`, `"producer"`, `"consumer"` or
    /// `"unspecified"`.
    pub kind: String,
    /// Every value as text: strings as they are, numbers and booleans via
    /// `to_string`, arrays as `[a, b]`, bytes as hex.
    pub attributes: BTreeMap<String, String>,
    /// The resource's `service.name`.
    pub service_name: Option<String>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// `"unset"`, `"ok"` or `"error"`.
    pub status_code: String,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// What both transports share: what arrived, and how long to hold each
/// export before answering it.
struct Collector {
    spans: Mutex<Vec<ReceivedSpan>>,
    exports: AtomicUsize,
    delay: Duration,
}

impl Collector {
    /// Counts the export as soon as it arrives, then plays the slow
    /// collector, then keeps its spans: a test sees an export in flight
    /// before its spans.
    async fn receive(&self, request: ExportTraceServiceRequest) {
        self.exports.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let spans = flatten(request);
        self.spans
            .lock()
            .expect("a test thread panicked while holding the spans")
            .extend(spans);
    }
}

/// The server's thread and the way to stop it.
struct ServerThread {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// A running receiver; stops its server when dropped.
pub struct OtlpReceiver {
    port: u16,
    collector: Arc<Collector>,
    /// `None` once stopped.
    server: Option<ServerThread>,
}

impl OtlpReceiver {
    /// Starts on a free loopback port; runs on its own thread with its own
    /// tokio runtime, so sync and async tests can both use it. The port
    /// listens when this returns.
    pub fn start(protocol: OtlpProtocol) -> Self {
        Self::start_slow(protocol, Duration::ZERO)
    }

    /// The same, but each export is answered only after `delay` (a slow
    /// collector). The export counts in [`exports`](Self::exports) as soon
    /// as it arrives; its spans show in [`spans`](Self::spans) after `delay`.
    pub fn start_slow(protocol: OtlpProtocol, delay: Duration) -> Self {
        let port = free_port();
        // Bound here, not on the server's thread, so that an exporter
        // started right after this returns finds the port listening.
        let listener =
            TcpListener::bind(("127.0.0.1", port)).expect("bind the OTLP receiver's port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener for tokio");
        let collector = Arc::new(Collector {
            spans: Mutex::new(Vec::new()),
            exports: AtomicUsize::new(0),
            delay,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("otlp-receiver-{port}"))
            .spawn({
                let collector = collector.clone();
                move || serve(listener, protocol, collector, stopped)
            })
            .expect("spawn the OTLP receiver's thread");
        OtlpReceiver {
            port,
            collector,
            server: Some(ServerThread { stop, thread }),
        }
    }

    /// `http://127.0.0.1:PORT`, the value for `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// with either protocol: for HTTP/protobuf the exporter appends
    /// `/v1/traces` to that variable's value itself. (Not for
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, which the HTTP exporter takes
    /// as the full URL: it would need `/v1/traces` added.)
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every span received so far, in the order they arrived.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.collector
            .spans
            .lock()
            .expect("a server task panicked while holding the spans")
            .clone()
    }

    /// Polls until `done(&spans)` holds or `timeout` passes, and returns the
    /// spans then. Panics with the spans received so far when it times out.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the OTLP receiver on port {} did not get the expected spans within {timeout:?} \
                     ({} export requests); received so far: {spans:#?}",
                    self.port,
                    self.exports(),
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// How many export requests arrived (answered or not yet).
    pub fn exports(&self) -> usize {
        self.collector.exports.load(Ordering::SeqCst)
    }

    /// Stops the server at once, cutting the connections open to it (an
    /// export in flight gets no answer); the port refuses connections when
    /// this returns. For "collector down" tests. Spans received before stay
    /// readable.
    pub fn stop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        // An error means the thread already ended, which is what we want.
        let _ = server.stop.send(());
        if server.thread.join().is_err() && !std::thread::panicking() {
            panic!("the OTLP receiver's thread on port {} panicked", self.port);
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server's thread: serves until told to stop, then drops its runtime,
/// which closes the listener and aborts every connection task (no graceful
/// wait for exporters that keep their connection open).
fn serve(
    listener: TcpListener,
    protocol: OtlpProtocol,
    collector: Arc<Collector>,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the OTLP receiver");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .expect("hand the OTLP receiver's listener to tokio");
        let server = async {
            let outcome = match protocol {
                OtlpProtocol::Grpc => serve_grpc(listener, collector).await,
                OtlpProtocol::HttpProtobuf => serve_http(listener, collector).await,
            };
            if let Err(error) = outcome {
                eprintln!("the OTLP receiver's {protocol:?} server failed: {error}");
            }
        };
        tokio::select! {
            () = server => {}
            // Sent by `stop`, or the receiver was dropped without it.
            _ = stopped => {}
        }
    });
    drop(runtime);
}

async fn serve_grpc(
    listener: tokio::net::TcpListener,
    collector: Arc<Collector>,
) -> Result<(), Box<dyn std::error::Error>> {
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(GrpcTraceService { collector }))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}

struct GrpcTraceService {
    collector: Arc<Collector>,
}

#[tonic::async_trait]
impl TraceService for GrpcTraceService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.collector.receive(request.into_inner()).await;
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    collector: Arc<Collector>,
) -> Result<(), Box<dyn std::error::Error>> {
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(export_http))
        .with_state(collector);
    axum::serve(listener, app).await?;
    Ok(())
}

/// `POST /v1/traces`: a protobuf `ExportTraceServiceRequest` in, a protobuf
/// `ExportTraceServiceResponse` out, as the OTLP/HTTP specification has it.
async fn export_http(State(collector): State<Arc<Collector>>, body: Bytes) -> Response {
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("not an ExportTraceServiceRequest: {error}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    collector.receive(request).await;
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

/// Every span of an export, each with its resource's service name.
fn flatten(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service_name = resource_spans.resource.as_ref().and_then(|resource| {
            resource
                .attributes
                .iter()
                .find(|attribute| attribute.key == "service.name")
                .map(|attribute| render_value(attribute.value.as_ref()))
        });
        let spans = resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope_spans| scope_spans.spans);
        for span in spans {
            received.push(ReceivedSpan {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                kind: match SpanKind::try_from(span.kind) {
                    Ok(kind) => enum_text(kind.as_str_name(), "SPAN_KIND_"),
                    Err(_) => format!("unknown ({})", span.kind),
                },
                attributes: render_attributes(&span.attributes),
                service_name: service_name.clone(),
                start_unix_nanos: span.start_time_unix_nano,
                end_unix_nanos: span.end_time_unix_nano,
                status_code: match span.status.map(|status| status.code) {
                    None => "unset".to_string(),
                    Some(code) => match SpanStatusCode::try_from(code) {
                        Ok(code) => enum_text(code.as_str_name(), "STATUS_CODE_"),
                        Err(_) => format!("unknown ({code})"),
                    },
                },
                name: span.name,
            });
        }
    }
    received
}

/// `SPAN_KIND_SERVER` → `server`.
fn enum_text(proto_name: &str, prefix: &str) -> String {
    proto_name
        .strip_prefix(prefix)
        .unwrap_or(proto_name)
        .to_ascii_lowercase()
}

fn render_attributes(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|attribute| {
            let value = render_value(attribute.value.as_ref());
            (attribute.key.clone(), value)
        })
        .collect()
}

fn render_value(value: Option<&AnyValue>) -> String {
    let Some(value) = value.and_then(|value| value.value.as_ref()) else {
        return String::new();
    };
    match value {
        any_value::Value::StringValue(text) => text.clone(),
        any_value::Value::BoolValue(flag) => flag.to_string(),
        any_value::Value::IntValue(number) => number.to_string(),
        any_value::Value::DoubleValue(number) => number.to_string(),
        any_value::Value::BytesValue(bytes) => hex(bytes),
        any_value::Value::ArrayValue(array) => {
            let items: Vec<String> = array
                .values
                .iter()
                .map(|item| render_value(Some(item)))
                .collect();
            format!("[{}]", items.join(", "))
        }
        any_value::Value::KvlistValue(list) => {
            let pairs: Vec<String> = list
                .values
                .iter()
                .map(|pair| format!("{}: {}", pair.key, render_value(pair.value.as_ref())))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
    }
}

/// Lower-case hex, the way trace and span ids are written everywhere else
/// (W3C `traceparent`, nene's logs).
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    const TRACE_ID: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN_ID: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    fn text_attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    /// One root server span of service `nene-test`, as nene would export it.
    fn one_span_request() -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: TRACE_ID.to_vec(),
            span_id: SPAN_ID.to_vec(),
            name: "GET /hello".to_string(),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            attributes: vec![
                text_attribute(
                    "http.request.method",
                    any_value::Value::StringValue("GET".to_string()),
                ),
                text_attribute("http.response.status_code", any_value::Value::IntValue(200)),
            ],
            status: Some(Status {
                message: String::new(),
                code: SpanStatusCode::Error as i32,
            }),
            ..Span::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text_attribute(
                        "service.name",
                        any_value::Value::StringValue("nene-test".to_string()),
                    )],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn assert_the_one_span(receiver: &OtlpReceiver) {
        let spans = receiver.spans();
        assert_eq!(spans.len(), 1, "{spans:#?}");
        let span = &spans[0];
        assert_eq!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.span_id, "00f067aa0ba902b7");
        assert_eq!(span.parent_span_id, "");
        assert_eq!(span.name, "GET /hello");
        assert_eq!(span.kind, "server");
        assert_eq!(span.attribute("http.request.method"), Some("GET"));
        assert_eq!(span.attribute("http.response.status_code"), Some("200"));
        assert_eq!(span.service_name.as_deref(), Some("nene-test"));
        assert_eq!((span.start_unix_nanos, span.end_unix_nanos), (1_000, 2_000));
        assert_eq!(span.status_code, "error");
        assert_eq!(receiver.exports(), 1);
    }

    async fn export_over_http(endpoint: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{endpoint}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(one_span_request().encode_to_vec())
            .send()
            .await
            .expect("POST /v1/traces")
    }

    #[tokio::test]
    async fn grpc_export_is_received() {
        let receiver = OtlpReceiver::start(OtlpProtocol::Grpc);
        let mut client = TraceServiceClient::connect(receiver.endpoint())
            .await
            .expect("connect to the gRPC receiver");
        client
            .export(one_span_request())
            .await
            .expect("a successful export");
        // Stored before the answer: no waiting needed.
        assert_the_one_span(&receiver);
    }

    #[tokio::test]
    async fn http_protobuf_export_is_received() {
        let receiver = OtlpReceiver::start(OtlpProtocol::HttpProtobuf);
        let response = export_over_http(&receiver.endpoint()).await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            "application/x-protobuf"
        );
        let body = response.bytes().await.expect("the response body");
        ExportTraceServiceResponse::decode(body).expect("a protobuf ExportTraceServiceResponse");
        assert_the_one_span(&receiver);
    }

    #[tokio::test]
    async fn slow_receiver_counts_the_export_before_answering() {
        let delay = Duration::from_millis(300);
        let receiver = OtlpReceiver::start_slow(OtlpProtocol::HttpProtobuf, delay);
        let endpoint = receiver.endpoint();
        let started = Instant::now();
        let export = tokio::spawn(async move { export_over_http(&endpoint).await.status() });
        while receiver.exports() == 0 {
            assert!(
                started.elapsed() < delay,
                "the export was not counted on arrival"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(receiver.spans().is_empty());
        assert_eq!(
            export.await.expect("the export task"),
            reqwest::StatusCode::OK
        );
        assert!(started.elapsed() >= delay);
        assert_the_one_span(&receiver);
    }

    #[test]
    fn stopped_receiver_refuses_connections() {
        let mut receiver = OtlpReceiver::start(OtlpProtocol::Grpc);
        assert!(std::net::TcpStream::connect(("127.0.0.1", receiver.port())).is_ok());
        receiver.stop();
        assert!(std::net::TcpStream::connect(("127.0.0.1", receiver.port())).is_err());
        let spans = receiver.wait_for(Duration::from_millis(50), |spans| spans.is_empty());
        assert!(spans.is_empty());
    }
}
