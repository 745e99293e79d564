//! The fuzz input is everything a peer sends on one connection, followed by
//! the peer closing its write side. `serve_connection` must end (answer,
//! time out or fail with a protocol error) without panicking, and what it
//! writes back must be well-formed records that answer only requests the
//! peer actually began.
//!
//! Time is paused, so receive and idle timeouts pass as soon as nothing else
//! can make progress.

#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nene::fastcgi::{
    CgiRequest, CgiResponse, ConnectionGate, ConnectionLimits, RecordCodec, RecordType, Responder,
    serve_connection, simple_response,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct AlwaysOk;

impl Responder for AlwaysOk {
    type Future = std::future::Ready<CgiResponse>;

    fn respond(&self, _request: CgiRequest) -> Self::Future {
        std::future::ready(simple_response(200, "OK", "ok"))
    }
}

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_params_bytes: 4096,
        max_body_bytes: 4096,
        receive_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_requests_per_connection: 4,
        max_connections: 16,
        // Small, so that bodies also take the path to a temporary file.
        client_body_buffer_size: 1024,
        max_params: 64,
        ..nene::config::Settings::defaults().server.limits
    }
}

/// Every record in `bytes`, stopping at the first one that does not decode,
/// and whether the whole stream decoded.
fn records(bytes: &[u8]) -> (Vec<nene::fastcgi::Record>, bool) {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match RecordCodec.decode(&mut buf) {
            Ok(Some(record)) => out.push(record),
            Ok(None) => return (out, buf.is_empty()),
            Err(_) => return (out, false),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");

    let output = runtime.block_on(async {
        let (peer, server_side) = tokio::io::duplex(16 * 1024);
        let gate = ConnectionGate::new(CancellationToken::new(), limits());
        let (mut peer_read, mut peer_write) = tokio::io::split(peer);
        let send = async {
            // The server may close first (protocol error): a broken pipe here is fine.
            let _ = peer_write.write_all(data).await;
            let _ = peer_write.shutdown().await;
        };
        let receive = async {
            let mut output = Vec::new();
            let _ = peer_read.read_to_end(&mut output).await;
            output
        };
        let serve = async {
            // A protocol error is an expected outcome for most inputs.
            let _ = serve_connection(server_side, AlwaysOk, gate).await;
        };
        let ((), (), output) = tokio::join!(serve, send, receive);
        output
    });

    let (answers, complete) = records(&output);
    assert!(complete, "the server wrote a malformed record stream");

    // Every request id the server answers must have been begun by the peer,
    // at most once per BEGIN_REQUEST.
    let mut begun: HashMap<u16, usize> = HashMap::new();
    for record in records(data).0 {
        if record.record_type == RecordType::BEGIN_REQUEST && record.request_id != 0 {
            *begun.entry(record.request_id).or_default() += 1;
        }
    }
    let mut ended: HashMap<u16, usize> = HashMap::new();
    for record in &answers {
        let id = record.request_id;
        match record.record_type {
            RecordType::GET_VALUES_RESULT | RecordType::UNKNOWN_TYPE => assert_eq!(id, 0),
            RecordType::STDOUT => assert!(begun.contains_key(&id), "STDOUT for unknown id {id}"),
            RecordType::END_REQUEST => {
                assert_eq!(record.content.len(), 8);
                let count = ended.entry(id).or_default();
                *count += 1;
                assert!(
                    *count <= begun.get(&id).copied().unwrap_or(0),
                    "request {id} ended more often than it was begun"
                );
            }
            other => panic!("the server sent a {other} record"),
        }
    }
});
