//! A small FastCGI client for tests, written independently of nene's own
//! codec: it speaks what nginx never sends (GET_VALUES, other roles, aborts,
//! interleaving, garbage) and reads back whole records.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

pub const RESPONDER: u16 = 1;
pub const AUTHORIZER: u16 = 2;
pub const FILTER: u16 = 3;

/// One record as bytes on the wire.
pub fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    assert!(content.len() <= 65535);
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
    out
}

pub fn begin(id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
    let mut body = role.to_be_bytes().to_vec();
    body.push(u8::from(keep_conn));
    body.extend_from_slice(&[0; 5]);
    record(BEGIN_REQUEST, id, &body)
}

/// Name-value pairs encoded per the spec (1- or 4-byte lengths).
pub fn name_values(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        for len in [name.len(), value.len()] {
            if len < 128 {
                out.push(len as u8);
            } else {
                out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
            }
        }
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}

/// PARAMS records (split at 65535 bytes) followed by the empty PARAMS record.
pub fn params(id: u16, pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let encoded = name_values(pairs);
    let mut out = Vec::new();
    for chunk in encoded.chunks(65535) {
        out.extend(record(PARAMS, id, chunk));
    }
    out.extend(record(PARAMS, id, &[]));
    out
}

/// STDIN records holding `body`, then the empty STDIN record.
pub fn stdin(id: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(65535) {
        out.extend(record(STDIN, id, chunk));
    }
    out.extend(record(STDIN, id, &[]));
    out
}

/// The params nginx would send for `method path`.
pub fn request_params(method: &str, uri: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    [
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", uri),
        ("DOCUMENT_URI", path),
        ("QUERY_STRING", query),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("HTTP_HOST", "localhost"),
    ]
    .iter()
    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

/// A whole request (BEGIN, PARAMS, STDIN) as bytes.
pub fn request(id: u16, method: &str, uri: &str, body: &[u8], keep_conn: bool) -> Vec<u8> {
    let mut pairs = request_params(method, uri);
    if !body.is_empty() {
        pairs.push((
            b"CONTENT_LENGTH".to_vec(),
            body.len().to_string().into_bytes(),
        ));
    }
    request_from_pairs(id, &pairs, body, keep_conn)
}

/// A whole request (BEGIN, PARAMS, STDIN) with exactly `pairs` as params.
pub fn request_from_pairs(
    id: u16,
    pairs: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
    keep_conn: bool,
) -> Vec<u8> {
    let mut out = head_from_pairs(id, pairs, keep_conn);
    out.extend(stdin(id, body));
    out
}

/// The head of a request (BEGIN, PARAMS) with exactly `pairs` as params,
/// its body (STDIN) still to come.
pub fn head_from_pairs(id: u16, pairs: &[(Vec<u8>, Vec<u8>)], keep_conn: bool) -> Vec<u8> {
    let borrowed: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let mut out = begin(id, RESPONDER, keep_conn);
    out.extend(params(id, &borrowed));
    out
}

#[derive(Debug, Clone)]
pub struct Record {
    pub kind: u8,
    pub id: u16,
    pub content: Vec<u8>,
}

/// A response as the client saw it.
#[derive(Debug, Default, Clone)]
pub struct Response {
    /// Every STDOUT byte: the CGI head and the body.
    pub stdout: Vec<u8>,
    /// Content length of every non-empty STDOUT record.
    pub stdout_record_lengths: Vec<usize>,
    pub app_status: u32,
    pub protocol_status: u8,
}

impl Response {
    /// The `Status:` line's code; 200 without one, as CGI defines it.
    pub fn status(&self) -> u16 {
        let head = String::from_utf8_lossy(self.head());
        match head.lines().find(|l| l.starts_with("Status: ")) {
            Some(line) => line[8..11].parse().unwrap(),
            None => 200,
        }
    }

    pub fn head(&self) -> &[u8] {
        let end = find(&self.stdout, b"\r\n\r\n").expect("a CGI head ending in a blank line");
        &self.stdout[..end + 4]
    }

    pub fn body(&self) -> &[u8] {
        &self.stdout[self.head().len()..]
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body()).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A client connection.
pub struct FcgiClient {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl FcgiClient {
    pub async fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect to nene");
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send to nene");
    }

    /// The next record, or None when the server closed the connection
    /// (waits at most `within`; a timeout panics).
    pub async fn read_record_within(&mut self, within: Duration) -> Option<Record> {
        tokio::time::timeout(within, self.read_record())
            .await
            .expect("nene did not answer in time")
    }

    pub async fn read_record(&mut self) -> Option<Record> {
        loop {
            if self.buffer.len() >= 8 {
                let len = u16::from_be_bytes([self.buffer[4], self.buffer[5]]) as usize;
                let padding = self.buffer[6] as usize;
                if self.buffer.len() >= 8 + len + padding {
                    assert_eq!(self.buffer[0], 1, "nene sent a record with a bad version");
                    let record = Record {
                        kind: self.buffer[1],
                        id: u16::from_be_bytes([self.buffer[2], self.buffer[3]]),
                        content: self.buffer[8..8 + len].to_vec(),
                    };
                    self.buffer.drain(..8 + len + padding);
                    return Some(record);
                }
            }
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    assert!(self.buffer.is_empty(), "nene closed mid-record");
                    return None;
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads records until every id in `ids` has its END_REQUEST.
    pub async fn responses(&mut self, ids: &[u16]) -> HashMap<u16, Response> {
        let mut responses: HashMap<u16, Response> = HashMap::new();
        let mut open: Vec<u16> = ids.to_vec();
        while !open.is_empty() {
            let record = self
                .read_record_within(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("connection closed before END_REQUEST of {open:?}"));
            let response = responses.entry(record.id).or_default();
            match record.kind {
                STDOUT if !record.content.is_empty() => {
                    response.stdout_record_lengths.push(record.content.len());
                    response.stdout.extend_from_slice(&record.content);
                }
                END_REQUEST => {
                    response.app_status =
                        u32::from_be_bytes(record.content[..4].try_into().unwrap());
                    response.protocol_status = record.content[4];
                    open.retain(|id| *id != record.id);
                }
                _ => {}
            }
        }
        responses
    }

    pub async fn response(&mut self, id: u16) -> Response {
        self.responses(&[id]).await.remove(&id).unwrap()
    }

    /// True when the server has closed the connection (EOF within `within`).
    pub async fn is_closed_within(&mut self, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(within, self.stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => panic!("unexpected bytes from nene"),
            Err(_) => false,
        }
    }
}

/// One request on a fresh connection, for "the server still answers" checks.
pub async fn get(addr: &str, uri: &str) -> Response {
    let mut client = FcgiClient::connect(addr).await;
    client.send(&request(1, "GET", uri, b"", false)).await;
    client.response(1).await
}

/// One request with exactly these params (and no body) on a fresh
/// connection: for what nginx or an HTTP client would refuse to send.
pub async fn request_with_params(addr: &str, pairs: &[(&[u8], &[u8])]) -> Response {
    let mut client = FcgiClient::connect(addr).await;
    let mut bytes = begin(1, RESPONDER, false);
    bytes.extend(params(1, pairs));
    bytes.extend(stdin(1, b""));
    client.send(&bytes).await;
    client.response(1).await
}
