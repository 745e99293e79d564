//! The request bounds at their edges: a body or params of exactly the bound
//! are served, one byte more is refused, whether the length was declared
//! (CONTENT_LENGTH), left out, or declared wrong. (Every other test sends a
//! CONTENT_LENGTH, and the declared-length check answers before the bytes
//! are counted: without these, the byte count could be off by one unseen.)

use nene::fastcgi::ConnectionLimits;
use nene_test_support::fcgi_client::{FcgiClient, name_values, request_from_pairs, request_params};
use nene_test_support::in_process::InProcess;

const MAX_BODY: usize = 1000;
const MAX_PARAMS: usize = 2048;

async fn server() -> InProcess {
    InProcess::start(ConnectionLimits {
        max_body_bytes: MAX_BODY,
        max_params_bytes: MAX_PARAMS,
        ..nene::config::Settings::defaults().server.limits
    })
    .await
}

/// POST /echo with `body` and CONTENT_LENGTH `declared` (none if `None`);
/// the status.
async fn post(addr: &str, body_len: usize, declared: Option<usize>) -> u16 {
    let mut pairs = request_params("POST", "/echo");
    if let Some(length) = declared {
        pairs.push((b"CONTENT_LENGTH".to_vec(), length.to_string().into_bytes()));
    }
    let mut client = FcgiClient::connect(addr).await;
    client
        .send(&request_from_pairs(1, &pairs, &vec![b'b'; body_len], false))
        .await;
    client.response(1).await.status()
}

#[tokio::test]
async fn a_body_of_exactly_the_bound_is_served_and_one_byte_more_is_413() {
    let server = server().await;
    let addr = &server.addr;
    // Declared and true.
    assert_eq!(post(addr, MAX_BODY, Some(MAX_BODY)).await, 200);
    assert_eq!(post(addr, MAX_BODY + 1, Some(MAX_BODY + 1)).await, 413);
    // Not declared: only the bytes counted can refuse it.
    assert_eq!(post(addr, MAX_BODY, None).await, 200);
    assert_eq!(post(addr, MAX_BODY + 1, None).await, 413);
    // Declared wrong: the larger of the two decides.
    assert_eq!(post(addr, MAX_BODY + 1, Some(10)).await, 413);
    assert_eq!(post(addr, MAX_BODY + 1, Some(MAX_BODY)).await, 413);
    assert_eq!(post(addr, MAX_BODY, Some(MAX_BODY + 1)).await, 413);
    // Within the bound but not what was declared.
    assert_eq!(post(addr, MAX_BODY, Some(MAX_BODY - 1)).await, 400);
}

/// GET /hello with params padded to exactly `total` encoded bytes; the status.
async fn get_with_params_of(addr: &str, total: usize) -> u16 {
    let mut pairs = request_params("GET", "/hello");
    let base = name_values(
        &pairs
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect::<Vec<_>>(),
    )
    .len();
    // HTTP_X_PAD with a value of n bytes encodes as 1 + 4 + 10 + n bytes
    // (one length byte for the name, four for a value of 128 or more).
    let name = b"HTTP_X_PAD".to_vec();
    let value_len = total - base - 1 - 4 - name.len();
    assert!(value_len >= 128);
    pairs.push((name, vec![b'p'; value_len]));
    let encoded: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    assert_eq!(name_values(&encoded).len(), total);
    let mut client = FcgiClient::connect(addr).await;
    client
        .send(&request_from_pairs(1, &pairs, b"", false))
        .await;
    client.response(1).await.status()
}

#[tokio::test]
async fn params_of_exactly_the_bound_are_served_and_one_byte_more_is_431() {
    let server = server().await;
    assert_eq!(get_with_params_of(&server.addr, MAX_PARAMS).await, 200);
    assert_eq!(get_with_params_of(&server.addr, MAX_PARAMS + 1).await, 431);
}
