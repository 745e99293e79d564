//! What the FastCGI layer costs per request: decoding a request as nginx
//! sends it down to name-value pairs, encoding a small response, and one
//! request answered end to end by `serve_connection` over an in-memory pipe.
//!
//! Run with `cargo bench --bench protocol`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nene::fastcgi::{
    CgiRequest, CgiResponse, ConnectionGate, RecordCodec, RecordType, Responder, ResponseBody,
    encode_name_value, encode_record, encode_stream, parse_name_values, serve_connection,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

const REQUEST_ID: u16 = 1;
const FLAG_KEEP_CONN: u8 = 1;

/// The params nginx's stock `fastcgi_params` sends (plus SCRIPT_FILENAME),
/// followed by the HTTP_* headers of a typical browser request.
const NGINX_PARAMS: &[(&str, &str)] = &[
    ("SCRIPT_FILENAME", "/srv/www/index.php"),
    ("QUERY_STRING", "page=2&sort=desc"),
    ("REQUEST_METHOD", "GET"),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""),
    ("SCRIPT_NAME", "/products/list"),
    ("REQUEST_URI", "/products/list?page=2&sort=desc"),
    ("DOCUMENT_URI", "/products/list"),
    ("DOCUMENT_ROOT", "/srv/www"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "https"),
    ("HTTPS", "on"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/1.26.3"),
    ("REMOTE_ADDR", "203.0.113.54"),
    ("REMOTE_PORT", "53124"),
    ("SERVER_ADDR", "192.0.2.10"),
    ("SERVER_PORT", "443"),
    ("SERVER_NAME", "shop.example.com"),
    ("REDIRECT_STATUS", "200"),
    ("HTTP_HOST", "shop.example.com"),
    (
        "HTTP_USER_AGENT",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "HTTP_ACCEPT",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("HTTP_ACCEPT_LANGUAGE", "en-GB,en;q=0.7,de;q=0.3"),
    ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"),
    (
        "HTTP_REFERER",
        "https://shop.example.com/products/list?page=1",
    ),
    (
        "HTTP_COOKIE",
        "session=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08; \
         theme=dark; consent=analytics%3Dfalse%26ads%3Dfalse; _pk_id.1.1fff=4c1c8f2a3e.1718000000.",
    ),
    ("HTTP_CONNECTION", "keep-alive"),
    ("HTTP_UPGRADE_INSECURE_REQUESTS", "1"),
    ("HTTP_SEC_FETCH_DEST", "document"),
    ("HTTP_SEC_FETCH_MODE", "navigate"),
    ("HTTP_SEC_FETCH_SITE", "same-origin"),
];

/// A whole GET request on the wire: BEGIN_REQUEST, the params in one PARAMS
/// record (as nginx sends them), an empty PARAMS, an empty STDIN.
fn nginx_request(flags: u8) -> Bytes {
    let mut params = BytesMut::new();
    for (name, value) in NGINX_PARAMS {
        encode_name_value(&mut params, name.as_bytes(), value.as_bytes());
    }
    let mut wire = BytesMut::new();
    let role_responder = 1u16.to_be_bytes();
    let begin = [role_responder[0], role_responder[1], flags, 0, 0, 0, 0, 0];
    encode_record(&mut wire, RecordType::BEGIN_REQUEST, REQUEST_ID, &begin);
    encode_record(&mut wire, RecordType::PARAMS, REQUEST_ID, &params);
    encode_record(&mut wire, RecordType::PARAMS, REQUEST_ID, &[]);
    encode_record(&mut wire, RecordType::STDIN, REQUEST_ID, &[]);
    wire.freeze()
}

/// Cuts `buf` into records and assembles the request the way a connection
/// does: params gathered until the empty PARAMS, then parsed; body until the
/// empty STDIN.
fn decode_request(mut buf: BytesMut) -> (Vec<(Bytes, Bytes)>, Bytes) {
    let mut params = BytesMut::new();
    let mut pairs = Vec::new();
    let mut body = BytesMut::new();
    while let Some(record) = RecordCodec.decode(&mut buf).expect("a valid stream") {
        match record.record_type {
            RecordType::BEGIN_REQUEST => assert_eq!(record.content.len(), 8),
            RecordType::PARAMS if record.content.is_empty() => {
                pairs =
                    parse_name_values(&std::mem::take(&mut params).freeze()).expect("valid params");
            }
            RecordType::PARAMS => params.extend_from_slice(&record.content),
            RecordType::STDIN if record.content.is_empty() => break,
            RecordType::STDIN => body.extend_from_slice(&record.content),
            other => panic!("unexpected {other} record"),
        }
    }
    (pairs, body.freeze())
}

/// A small response: about 100 bytes of CGI head and a 15-byte body.
fn small_response() -> (Bytes, Bytes) {
    let head = Bytes::from_static(
        b"Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
          Content-Length: 15\r\nCache-Control: no-store\r\n\r\n",
    );
    (head, Bytes::from_static(b"<p>Hello!</p>\r\n"))
}

/// Encodes a response the way a connection does: head and body as STDOUT,
/// the empty STDOUT that ends the stream, and END_REQUEST.
fn encode_response(dst: &mut BytesMut, head: &[u8], body: &[u8]) {
    encode_stream(dst, RecordType::STDOUT, REQUEST_ID, head);
    encode_stream(dst, RecordType::STDOUT, REQUEST_ID, body);
    encode_record(dst, RecordType::STDOUT, REQUEST_ID, &[]);
    let end_request = [0u8; 8]; // app status 0, REQUEST_COMPLETE
    encode_record(dst, RecordType::END_REQUEST, REQUEST_ID, &end_request);
}

fn bench_decode(c: &mut Criterion) {
    let wire = nginx_request(0);
    let (pairs, _) = decode_request(BytesMut::from(&wire[..]));
    assert_eq!(pairs.len(), NGINX_PARAMS.len());

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("nginx_get_request_to_name_values", |b| {
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |buf| black_box(decode_request(buf)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let (head, body) = small_response();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    c.bench_function("encode/small_response_records", |b| {
        b.iter(|| {
            buf.clear();
            encode_response(&mut buf, black_box(&head), black_box(&body));
            black_box(buf.len())
        })
    });
}

#[derive(Clone)]
struct Hello;

impl Responder for Hello {
    type Future = std::future::Ready<CgiResponse>;

    fn respond(&self, _request: CgiRequest) -> Self::Future {
        let (head, body) = small_response();
        std::future::ready(CgiResponse {
            head,
            body: ResponseBody::Full(body),
        })
    }
}

fn gate() -> ConnectionGate {
    ConnectionGate::new(
        CancellationToken::new(),
        nene::config::Settings::defaults().server.limits,
    )
}

/// Reads records from `peer` until the END_REQUEST of `REQUEST_ID`, and
/// returns how many response bytes came.
async fn read_until_end_request(peer: &mut DuplexStream, buf: &mut BytesMut) -> usize {
    let mut received = 0;
    loop {
        while let Some(record) = RecordCodec.decode(buf).expect("a valid response") {
            received += record.content.len();
            if record.record_type == RecordType::END_REQUEST {
                return received;
            }
        }
        let n = peer.read_buf(buf).await.expect("read the response");
        assert!(n > 0, "the server closed before END_REQUEST");
    }
}

fn bench_serve_connection(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let mut group = c.benchmark_group("serve_connection");

    // A connection per request, as with nginx without `fastcgi_keep_conn`.
    let request = nginx_request(0);
    group.bench_function("one_request_on_a_new_connection", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let (mut peer, server_side) = tokio::io::duplex(64 * 1024);
                let client = async {
                    peer.write_all(&request).await.expect("send the request");
                    let mut response = Vec::with_capacity(512);
                    peer.read_to_end(&mut response)
                        .await
                        .expect("read the response");
                    response.len()
                };
                let (served, received) =
                    tokio::join!(serve_connection(server_side, Hello, gate()), client);
                served.expect("served without a protocol error");
                black_box(received)
            })
        })
    });

    // One kept connection answering request after request, as with
    // `fastcgi_keep_conn on` and an upstream keepalive pool.
    let request = nginx_request(FLAG_KEEP_CONN);
    let (mut peer, server_side) = tokio::io::duplex(64 * 1024);
    let server = runtime.spawn(serve_connection(server_side, Hello, gate()));
    let mut buf = BytesMut::with_capacity(8 * 1024);
    group.bench_function("one_request_on_a_kept_connection", |b| {
        b.iter(|| {
            runtime.block_on(async {
                peer.write_all(&request).await.expect("send the request");
                black_box(read_until_end_request(&mut peer, &mut buf).await)
            })
        })
    });
    drop(peer);
    runtime
        .block_on(server)
        .expect("the connection task")
        .expect("served without a protocol error");
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode, bench_serve_connection);
criterion_main!(benches);
