//! Traces as an operator turns them on, with the standard `OTEL_*`
//! variables, received by a real OTLP receiver (gRPC and HTTP/protobuf)
//! from requests through nginx: one server span per request in the
//! caller's trace, named by its route, with the handler, session and
//! backend spans under it, no session id or data in any of it; the sampler
//! as the variables say; and a collector that is down or slow costs
//! dropped spans (counted on the status page), never an answer.

use std::time::Duration;

use nene_test_support::otlp_receiver::{OtlpProtocol, OtlpReceiver, ReceivedSpan};
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx, run_nene};

/// The caller's trace, as a load balancer would send it (sampled).
const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn traceparent(sampled: bool) -> String {
    let flags = if sampled { "01" } else { "00" };
    format!("00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}")
}

/// nene sending traces to `receiver`, behind nginx; spans are sent within
/// 50 ms of ending.
fn traced_nene(
    receiver: &OtlpReceiver,
    protocol: OtlpProtocol,
    env: &[(&str, &str)],
) -> (Nene, Nginx) {
    let endpoint = receiver.endpoint();
    let mut all = vec![
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.env_value()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "shop"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ];
    all.extend_from_slice(env);
    let nene = Nene::start(&all);
    let nginx = Nginx::start(&nene.upstream, true);
    (nene, nginx)
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

fn in_trace(spans: &[ReceivedSpan], trace: &str) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .cloned()
        .collect()
}

/// The status page's `name` counter (text format).
async fn status_counter(browser: &mut nene_test_support::browser::Browser, name: &str) -> u64 {
    let text = browser.get("/status").await.body;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name:?} in:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_continues_the_callers_trace_with_its_session_and_backend_spans() {
    let receiver = OtlpReceiver::start(OtlpProtocol::HttpProtobuf);
    let redis = RedisServer::start();
    let (nene, nginx) = traced_nene(
        &receiver,
        OtlpProtocol::HttpProtobuf,
        &[
            ("NENE_SESSION_DSN", &redis.url()),
            ("NENE_ACCESS__FORMAT", "access %s %X"),
        ],
    );
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.status, 200);
    let session_id = browser.session_id().expect("a session cookie");
    let page =
        (browser.get_with_header("/session/counter", "traceparent", &traceparent(true))).await;
    assert_eq!(page.body, r#"{"count":2}"#);

    let spans = receiver.wait_for(Duration::from_secs(10), |spans| {
        spans
            .iter()
            .any(|s| s.trace_id == CALLER_TRACE && s.name == "session write")
            && spans
                .iter()
                .any(|s| s.trace_id == CALLER_TRACE && s.kind == "server")
    });
    let trace = in_trace(&spans, CALLER_TRACE);
    // The server span: a child of the caller's, named by the route.
    let server = named(&trace, "GET /session/counter");
    assert_eq!(server.kind, "server");
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(server.attribute("http.route"), Some("/session/counter"));
    assert_eq!(server.attribute("http.request.method"), Some("GET"));
    assert_eq!(server.attribute("http.response.status_code"), Some("200"));
    assert_eq!(server.attribute("client.address"), Some("127.0.0.1"));
    assert_eq!(server.service_name.as_deref(), Some("shop"));
    // The phases, each under its parent, inside the server span's time.
    let handler = named(&trace, "handler");
    assert_eq!(handler.parent_span_id, server.span_id);
    let read = named(&trace, "session read");
    assert_eq!(read.parent_span_id, handler.span_id);
    let wait = named(&trace, "session lock wait");
    assert_eq!(wait.parent_span_id, read.span_id);
    assert_eq!(wait.attribute("nene.session.lock.waited"), Some("false"));
    let lock_and_read = named(&trace, "redis lock_and_read");
    assert_eq!(lock_and_read.parent_span_id, read.span_id);
    assert_eq!(lock_and_read.kind, "client");
    assert_eq!(lock_and_read.attribute("db.system.name"), Some("redis"));
    let write = named(&trace, "session write");
    assert_eq!(write.parent_span_id, server.span_id);
    let store = named(&trace, "redis store");
    assert_eq!(store.parent_span_id, write.span_id);
    // The session is named as the logs name it: a tag, the same on the
    // read and the write, that is no part of the id.
    let tag = read.attribute("nene.session.tag").expect("a session tag");
    assert_eq!(tag.len(), 8, "{tag}");
    assert!(tag.chars().all(|c| c.is_ascii_hexdigit()), "{tag}");
    assert!(!session_id.contains(tag), "{tag}");
    assert_eq!(store.attribute("nene.session.tag"), Some(tag));
    for span in &trace {
        assert!(span.start_unix_nanos >= server.start_unix_nanos, "{span:?}");
        assert!(span.end_unix_nanos <= server.end_unix_nanos, "{span:?}");
        assert_eq!(span.status_code, "unset", "{span:?}");
        // Neither the session id nor the session's data, anywhere.
        for value in span.attributes.values().chain([&span.name]) {
            assert!(!value.contains(&session_id), "{span:?}");
            assert!(!value.contains("\"count\""), "{span:?}");
        }
    }
    assert_eq!(trace.len(), 7, "{trace:#?}");
    // The access log names the trace, to find a logged request in the
    // collector.
    nene.assert_logged(&format!("access 200 {CALLER_TRACE}"));
    // The first request (no traceparent) is a trace of its own: the
    // default sampler takes every request.
    let own: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id != CALLER_TRACE && s.kind == "server")
        .collect();
    assert_eq!(own.len(), 1, "{spans:#?}");
    assert_eq!(own[0].parent_span_id, "");

    // The status page counts what went out (and is not traced itself).
    let exported = status_counter(&mut browser, "trace spans exported").await;
    assert!(exported >= 8, "{exported}");
    assert_eq!(status_counter(&mut browser, "trace spans dropped").await, 0);
    assert!(receiver.spans().iter().all(|s| !s.name.contains("status")));
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_export_carries_the_same_spans() {
    let receiver = OtlpReceiver::start(OtlpProtocol::Grpc);
    let (_nene, nginx) = traced_nene(&receiver, OtlpProtocol::Grpc, &[]);
    let mut browser = nginx.browser();
    let page =
        (browser.get_with_header("/session/counter", "traceparent", &traceparent(true))).await;
    assert_eq!(page.status, 200);
    let spans = receiver.wait_for(Duration::from_secs(10), |spans| {
        spans.iter().any(|s| s.kind == "server") && spans.iter().any(|s| s.name == "session write")
    });
    let server = named(&spans, "GET /session/counter");
    assert_eq!(server.trace_id, CALLER_TRACE);
    assert_eq!(named(&spans, "handler").parent_span_id, server.span_id);
    // The files backend's write, under the session write.
    assert_eq!(
        named(&spans, "files store").parent_span_id,
        named(&spans, "session write").span_id
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sampler_follows_the_standard_variables() {
    let receiver = OtlpReceiver::start(OtlpProtocol::HttpProtobuf);
    let (_nene, nginx) = traced_nene(
        &receiver,
        OtlpProtocol::HttpProtobuf,
        &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
    );
    let mut browser = nginx.browser();
    // Without a caller: not sampled. A caller that did not sample: neither.
    assert_eq!(browser.get("/session/counter").await.status, 200);
    let unsampled = traceparent(false);
    assert_eq!(
        browser
            .get_with_header("/session/counter", "traceparent", &unsampled)
            .await
            .status,
        200
    );
    // A caller that sampled: traced, and a span of a request with an
    // unknown route is named by the method alone, its 404 recorded.
    let sampled = traceparent(true);
    assert_eq!(
        browser
            .get_with_header("/no/such/page", "traceparent", &sampled)
            .await
            .status,
        404
    );
    let spans = receiver.wait_for(Duration::from_secs(10), |spans| {
        spans.iter().any(|s| s.kind == "server")
    });
    // Give stray spans of the unsampled requests time to arrive, if any were sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let servers: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.kind == "server")
        .collect();
    assert_eq!(servers.len(), 1, "{spans:#?}");
    assert_eq!(servers[0].name, "GET");
    assert_eq!(
        servers[0].attribute("http.response.status_code"),
        Some("404")
    );
    assert_eq!(servers[0].attribute("http.route"), None);
    assert_eq!(
        servers[0].status_code, "unset",
        "a 404 is the client's, not an error"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_costs_spans_not_answers() {
    let mut receiver = OtlpReceiver::start(OtlpProtocol::HttpProtobuf);
    let (_nene, nginx) = traced_nene(&receiver, OtlpProtocol::HttpProtobuf, &[]);
    receiver.stop();
    let mut browser = nginx.browser();
    for expected in 1..=20 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.body, format!(r#"{{"count":{expected}}}"#));
    }
    // Every span of those requests is counted as dropped once the exports
    // fail (a refused connection fails at once; after each failure the
    // export task pauses, 1 s, then 2, 4 …, while spans wait in the queue).
    let mut dropped = 0;
    for _ in 0..200 {
        dropped = status_counter(&mut browser, "trace spans dropped").await;
        if dropped >= 20 * 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped >= 20 * 4, "{dropped}");
    assert_eq!(
        status_counter(&mut browser, "trace spans exported").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_collector_fills_the_queue_and_requests_do_not_wait_for_it() {
    let receiver = OtlpReceiver::start_slow(OtlpProtocol::HttpProtobuf, Duration::from_secs(5));
    let (_nene, nginx) = traced_nene(
        &receiver,
        OtlpProtocol::HttpProtobuf,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
        ],
    );
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.status, 200);
    // The first export is under way and will not be answered for seconds…
    let waited = std::time::Instant::now();
    while receiver.exports() == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "no export arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // …and 30 more requests are all answered while it hangs: their spans
    // do not fit the queue of 8 and are dropped, counted.
    for expected in 2..=31 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.body, format!(r#"{{"count":{expected}}}"#));
    }
    assert!(
        receiver.spans().is_empty(),
        "the collector has answered already"
    );
    let dropped = status_counter(&mut browser, "trace spans dropped").await;
    assert!(dropped >= 30 * 4 - 8, "{dropped}");
}

#[test]
fn an_endpoint_the_exporter_cannot_use_stops_start_up_with_its_password_masked() {
    let output = run_nene(
        &["check"],
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://nene:hunter2@collector example:4318",
            ),
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("otel.exporter_otlp_endpoint"), "{stderr}");
    assert!(stderr.contains("***"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn an_exporter_nene_does_not_know_stops_start_up_naming_the_choices() {
    let output = run_nene(&["check"], &[("OTEL_TRACES_EXPORTER", "zipkin")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OTEL_TRACES_EXPORTER"), "{stderr}");
    assert!(stderr.contains("none, otlp"), "{stderr}");
}
