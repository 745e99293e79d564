//! FastCGI behaviour nginx never exercises, driven by a raw client: management
//! records, roles, aborts, multiplexing, keep-conn, streaming, panics, every
//! bound, and malformed input. After each hostile case the server still answers.

use std::time::Duration;

use nene::fastcgi::ConnectionLimits;
use nene_test_support::fcgi_client::*;
use nene_test_support::in_process::{BIG_BODY_LEN, InProcess};

async fn server() -> InProcess {
    server_with(|_| {}).await
}

/// A server with the default limits as `change` leaves them.
async fn server_with(change: impl FnOnce(&mut ConnectionLimits)) -> InProcess {
    let mut limits = nene::config::Settings::defaults().server.limits;
    change(&mut limits);
    InProcess::start(limits).await
}

/// A server with the default limits and a client connected to it (the
/// server stops when dropped: keep it bound).
async fn server_and_client() -> (InProcess, FcgiClient) {
    server_and_client_with(|_| {}).await
}

/// A server with the default limits as `change` leaves them, and a client
/// connected to it.
async fn server_and_client_with(
    change: impl FnOnce(&mut ConnectionLimits),
) -> (InProcess, FcgiClient) {
    let server = server_with(change).await;
    let client = FcgiClient::connect(&server.addr).await;
    (server, client)
}

/// Sends request `id` with exactly `pairs` as params (BEGIN, PARAMS and an
/// empty STDIN, each its own write) and returns the response.
async fn send_with_params(client: &mut FcgiClient, id: u16, pairs: &[(&[u8], &[u8])]) -> Response {
    client.send(&begin(id, RESPONDER, true)).await;
    client.send(&params(id, pairs)).await;
    client.send(&stdin(id, b"")).await;
    client.response(id).await
}

/// Sends `GET /hello` as request `id` on `client`'s kept connection and
/// asserts that it is answered.
async fn assert_answers_hello(client: &mut FcgiClient, id: u16) {
    client.send(&request(id, "GET", "/hello", b"", true)).await;
    assert_eq!(client.response(id).await.body_text(), "hello");
}

async fn assert_still_serving(addr: &str) {
    let response = get(addr, "/hello").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body_text(), "hello");
}

fn get_values_result(record: &Record) -> Vec<(String, String)> {
    assert_eq!(record.kind, GET_VALUES_RESULT);
    let mut pairs = Vec::new();
    let mut data = &record.content[..];
    while !data.is_empty() {
        let (name_len, value_len) = (data[0] as usize, data[1] as usize);
        let name = String::from_utf8(data[2..2 + name_len].to_vec()).unwrap();
        let value =
            String::from_utf8(data[2 + name_len..2 + name_len + value_len].to_vec()).unwrap();
        pairs.push((name, value));
        data = &data[2 + name_len + value_len..];
    }
    pairs
}

#[tokio::test]
async fn get_values_reports_the_configured_limits_and_multiplexing() {
    let (_server, mut client) = server_and_client_with(|limits| {
        limits.max_connections = 7;
        limits.max_requests_per_connection = 3;
    })
    .await;
    let query = name_values(&[
        (b"FCGI_MAX_CONNS", b""),
        (b"FCGI_MAX_REQS", b""),
        (b"FCGI_MPXS_CONNS", b""),
        (b"SOMETHING_ELSE", b""),
    ]);
    client.send(&record(GET_VALUES, 0, &query)).await;
    let answer = client
        .read_record_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        get_values_result(&answer),
        vec![
            ("FCGI_MAX_CONNS".to_string(), "7".to_string()),
            ("FCGI_MAX_REQS".to_string(), "21".to_string()),
            ("FCGI_MPXS_CONNS".to_string(), "1".to_string()),
        ]
    );
}

/// One GET_VALUES record can name a variable 4,369 times (65,535 bytes):
/// each is answered once, the answer fits one record, nothing panics.
#[tokio::test]
async fn a_get_values_flood_gets_one_answer_per_name() {
    let (server, mut client) = server_and_client().await;
    let pair: &[(&[u8], &[u8])] = &[(b"FCGI_MAX_REQS", b"")];
    let one = name_values(pair);
    let flood = one.repeat(65_535 / one.len());
    assert!(flood.len() > 65_000 && flood.len() <= 65_535);
    client.send(&record(GET_VALUES, 0, &flood)).await;
    let answer = client
        .read_record_within(Duration::from_secs(5))
        .await
        .expect("an answer, not a dropped connection");
    let pairs = get_values_result(&answer);
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    assert_eq!(pairs[0].0, "FCGI_MAX_REQS");
    assert_still_serving(&server.addr).await;
}

#[tokio::test]
async fn an_unknown_management_record_gets_unknown_type_and_the_connection_stays_usable() {
    let (_server, mut client) = server_and_client().await;
    client.send(&record(42, 0, b"whatever")).await;
    let answer = client
        .read_record_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.kind, UNKNOWN_TYPE);
    assert_eq!(answer.content, vec![42, 0, 0, 0, 0, 0, 0, 0]);
    assert_answers_hello(&mut client, 1).await;
}

#[tokio::test]
async fn authorizer_and_filter_roles_get_unknown_role_and_the_connection_stays_usable() {
    let (_server, mut client) = server_and_client().await;
    for (id, role) in [(1, AUTHORIZER), (2, FILTER), (3, 77)] {
        client.send(&begin(id, role, true)).await;
        client
            .send(&params(id, &[(b"REQUEST_METHOD", b"GET")]))
            .await;
        let response = client.response(id).await;
        assert_eq!(
            response.protocol_status, 3,
            "role {role}: FCGI_UNKNOWN_ROLE"
        );
        assert!(response.stdout.is_empty());
    }
    client.send(&request(4, "GET", "/hello", b"", true)).await;
    let response = client.response(4).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.protocol_status, 0);
}

#[tokio::test]
async fn an_abort_ends_a_request_still_arriving_and_one_already_running() {
    let (_server, mut client) = server_and_client().await;
    // Still arriving: params sent, body not.
    client.send(&begin(1, RESPONDER, true)).await;
    client
        .send(&params(
            1,
            &[(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/hello")],
        ))
        .await;
    client.send(&record(ABORT_REQUEST, 1, &[])).await;
    let aborted = client.response(1).await;
    assert!(
        aborted.stdout.is_empty(),
        "an aborted request gets no output"
    );
    assert_eq!(aborted.protocol_status, 0);
    // Running: the handler sleeps 500 ms; the abort ends it at once.
    client.send(&request(2, "GET", "/slow", b"", true)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    client.send(&record(ABORT_REQUEST, 2, &[])).await;
    let aborted = client.response(2).await;
    assert!(aborted.stdout.is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the handler was not dropped"
    );
    assert_answers_hello(&mut client, 3).await;
}

#[tokio::test]
async fn interleaved_requests_on_one_connection_each_get_their_own_response() {
    let (_server, mut client) = server_and_client().await;
    let body_a = vec![b'a'; 70_000];
    let body_b = vec![b'b'; 10];
    let params_a = request_params("POST", "/echo");
    let mut params_a: Vec<(&[u8], &[u8])> =
        params_a.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    let len_a = body_a.len().to_string();
    params_a.push((b"CONTENT_LENGTH", len_a.as_bytes()));
    let mut bytes = begin(1, RESPONDER, true);
    bytes.extend(begin(2, RESPONDER, true));
    bytes.extend(request(3, "GET", "/slow", b"", true));
    bytes.extend(record(STDIN, 1, &body_a[..30_000]));
    bytes.extend(params(
        2,
        &[
            (b"REQUEST_METHOD", b"POST"),
            (b"REQUEST_URI", b"/echo"),
            (b"CONTENT_LENGTH", b"10"),
        ],
    ));
    bytes.extend(params(1, &params_a));
    bytes.extend(stdin(2, &body_b));
    bytes.extend(stdin(1, &body_a[30_000..]));
    bytes.extend(request(4, "GET", "/big", b"", true));
    client.send(&bytes).await;
    let responses = client.responses(&[1, 2, 3, 4]).await;
    assert_eq!(responses[&1].body_text(), "70000 bytes from 127.0.0.1");
    assert_eq!(responses[&2].body_text(), "10 bytes from ");
    assert_eq!(responses[&3].body_text(), "slow");
    assert_eq!(responses[&4].body().len(), BIG_BODY_LEN);
}

#[tokio::test]
async fn a_second_begin_for_an_active_request_id_closes_the_connection() {
    let (server, mut client) = server_and_client().await;
    client.send(&begin(1, RESPONDER, true)).await;
    client.send(&begin(1, RESPONDER, true)).await;
    assert!(client.is_closed_within(Duration::from_secs(5)).await);
    assert_still_serving(&server.addr).await;
}

#[tokio::test]
async fn requests_beyond_the_per_connection_cap_get_overloaded() {
    let (_server, mut client) =
        server_and_client_with(|limits| limits.max_requests_per_connection = 2).await;
    let mut bytes = begin(1, RESPONDER, true);
    bytes.extend(begin(2, RESPONDER, true));
    bytes.extend(begin(3, RESPONDER, true));
    client.send(&bytes).await;
    let refused = client.response(3).await;
    assert_eq!(refused.protocol_status, 2, "FCGI_OVERLOADED");
}

#[tokio::test]
async fn without_keep_conn_the_connection_closes_after_the_response() {
    let (server, mut client) = server_and_client().await;
    client.send(&request(1, "GET", "/hello", b"", false)).await;
    assert_eq!(client.response(1).await.body_text(), "hello");
    assert!(client.is_closed_within(Duration::from_secs(5)).await);

    let mut kept = FcgiClient::connect(&server.addr).await;
    assert_answers_hello(&mut kept, 1).await;
    assert!(!kept.is_closed_within(Duration::from_millis(200)).await);
    assert_answers_hello(&mut kept, 1).await;
}

#[tokio::test]
async fn bodies_longer_than_one_record_are_streamed_in_records_of_at_most_65535_bytes() {
    let server = server().await;
    let response = get(&server.addr, "/big").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), vec![b'a'; BIG_BODY_LEN].as_slice());
    assert!(response.stdout_record_lengths.len() >= 4);
    assert!(
        response
            .stdout_record_lengths
            .iter()
            .all(|&len| len <= 65535)
    );
    let head = String::from_utf8_lossy(response.head()).to_string();
    assert!(
        head.contains(&format!("Content-Length: {BIG_BODY_LEN}")),
        "{head}"
    );

    let streamed = get(&server.addr, "/stream").await;
    assert_eq!(streamed.body_text(), "chunk0;chunk1;chunk2;chunk3;chunk4;");
}

#[tokio::test]
async fn a_panicking_handler_gets_500_and_the_connection_serves_the_next_request() {
    let (_server, mut client) = server_and_client().await;
    client.send(&request(1, "GET", "/panic", b"", true)).await;
    assert_eq!(client.response(1).await.status(), 500);
    assert_answers_hello(&mut client, 2).await;
}

#[tokio::test]
async fn a_request_without_a_valid_method_gets_400() {
    let (_server, mut client) = server_and_client().await;
    let pairs: &[(&[u8], &[u8])] = &[(b"REQUEST_METHOD", b"G\x00T"), (b"REQUEST_URI", b"/hello")];
    assert_eq!(send_with_params(&mut client, 1, pairs).await.status(), 400);
}

/// The names in a CGI head, `Status` (CGI's own field) left out.
fn header_names(response: &Response) -> Vec<String> {
    String::from_utf8_lossy(response.head())
        .lines()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_string()))
        .filter(|name| name != "Status")
        .collect()
}

/// A refusal written by the protocol layer and an application's answer
/// spell header names alike, as PHP-FPM's answers do: each word capitalised
/// (`Content-Type`, `Set-Cookie`), which log parsers and WAF rules written
/// against a PHP site match case-sensitively.
#[tokio::test]
async fn refusals_and_answers_spell_header_names_as_php_fpm_does() {
    let (_server, mut client) = server_and_client().await;
    let huge = vec![b'x'; 1024 * 1024];
    let refusal = send_with_params(
        &mut client,
        1,
        &[(b"REQUEST_METHOD", b"GET"), (b"HTTP_X_HUGE", &huge)],
    )
    .await;
    assert_eq!(refusal.status(), 431);
    client.send(&request(2, "GET", "/hello", b"", true)).await;
    let answer = client.response(2).await;
    assert_eq!(answer.status(), 200);
    for response in [&refusal, &answer] {
        let names = header_names(response);
        assert!(names.iter().any(|name| name == "Content-Type"), "{names:?}");
        for name in &names {
            let words_capitalised = name
                .split('-')
                .all(|word| word.starts_with(|c: char| c.is_ascii_uppercase()));
            assert!(
                words_capitalised,
                "{name}: {}",
                String::from_utf8_lossy(response.head())
            );
        }
    }
}

#[tokio::test]
async fn params_over_the_bound_get_431_and_the_connection_stays_usable() {
    let (_server, mut client) = server_and_client().await;
    // One 1 MiB param (default bound 64 KiB).
    let huge = vec![b'x'; 1024 * 1024];
    let pairs: &[(&[u8], &[u8])] = &[(b"REQUEST_METHOD", b"GET"), (b"HTTP_X_HUGE", &huge)];
    assert_eq!(send_with_params(&mut client, 1, pairs).await.status(), 431);
    // 10,000 tiny params add up past the bound too.
    let names: Vec<String> = (0..10_000).map(|i| format!("HTTP_X_{i}")).collect();
    let pairs: Vec<(&[u8], &[u8])> = names.iter().map(|n| (n.as_bytes(), &b"v"[..])).collect();
    assert_eq!(send_with_params(&mut client, 2, &pairs).await.status(), 431);
    assert_answers_hello(&mut client, 3).await;
}

#[tokio::test]
async fn bodies_over_the_bound_or_with_a_lying_content_length_are_refused() {
    let (_server, mut client) = server_and_client_with(|limits| limits.max_body_bytes = 1000).await;
    let send_with_length = |id: u16, declared: &str, body: &[u8]| {
        let mut bytes = begin(id, RESPONDER, true);
        bytes.extend(params(
            id,
            &[
                (b"REQUEST_METHOD", b"POST"),
                (b"REQUEST_URI", b"/echo"),
                (b"CONTENT_LENGTH", declared.as_bytes()),
            ],
        ));
        bytes.extend(stdin(id, body));
        bytes
    };
    let refused: [(&str, &str, &[u8], u16); 6] = [
        ("honest but too big", "5000", &[b'x'; 5000], 413),
        ("declares little, sends too much", "10", &[b'x'; 5000], 413),
        ("declares too much, sends little", "100000000", b"tiny", 413),
        // Within the bound but lying either way.
        ("sends more than declared", "10", &[b'x'; 20], 400),
        ("sends less than declared", "20", &[b'x'; 10], 400),
        ("a length that is not a number", "ten", b"0123456789", 400),
    ];
    for (id, (case, declared, body, status)) in (1..).zip(refused) {
        client.send(&send_with_length(id, declared, body)).await;
        assert_eq!(client.response(id).await.status(), status, "{case}");
    }
    // Exactly at the bound.
    client
        .send(&send_with_length(7, "1000", &[b'x'; 1000]))
        .await;
    let fits = client.response(7).await;
    assert_eq!(fits.status(), 200);
    assert_eq!(fits.body_text(), "1000 bytes from ");
}

#[tokio::test]
async fn a_stalled_client_is_cut_at_the_receive_deadline_without_holding_up_others() {
    let server = server_with(|limits| limits.receive_timeout = Duration::from_millis(600)).await;
    // One client stalls after BEGIN and half its params, another after three
    // bytes of a record header.
    let mut stalled = FcgiClient::connect(&server.addr).await;
    stalled.send(&begin(1, RESPONDER, true)).await;
    stalled
        .send(&record(
            PARAMS,
            1,
            &name_values(&[(b"REQUEST_METHOD", b"GET")]),
        ))
        .await;
    let mut slow_header = FcgiClient::connect(&server.addr).await;
    slow_header.send(&[1, 1, 0]).await;
    let started = std::time::Instant::now();
    // Others are served meanwhile.
    for _ in 0..5 {
        assert_still_serving(&server.addr).await;
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(stalled.is_closed_within(Duration::from_secs(3)).await);
    assert!(slow_header.is_closed_within(Duration::from_secs(3)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "cut too early"
    );
}

#[tokio::test]
async fn a_kept_connection_left_idle_is_closed_after_the_idle_timeout() {
    let (_server, mut client) =
        server_and_client_with(|limits| limits.idle_timeout = Duration::from_millis(300)).await;
    assert_answers_hello(&mut client, 1).await;
    assert!(!client.is_closed_within(Duration::from_millis(100)).await);
    assert!(client.is_closed_within(Duration::from_secs(3)).await);
}

/// Management records and refused requests are not activity: a peer that
/// sends a GET_VALUES now and then, or requests over the cap, still has
/// its idle connection (and its slot) closed at the idle timeout.
#[tokio::test]
async fn records_that_move_no_request_forward_do_not_keep_a_connection_alive() {
    let (_server, mut client) = server_and_client_with(|limits| {
        limits.idle_timeout = Duration::from_millis(600);
        limits.max_requests_per_connection = 1;
    })
    .await;
    let query = name_values(&[(b"FCGI_MPXS_CONNS", b"")]);
    let started = std::time::Instant::now();
    let mut closed = false;
    'probing: while started.elapsed() < Duration::from_secs(3) {
        client.send(&record(GET_VALUES, 0, &query)).await;
        client.send(&record(99, 0, b"ignored")).await;
        // Their two answers (GET_VALUES_RESULT, UNKNOWN_TYPE), or the end.
        for _ in 0..2 {
            if client
                .read_record_within(Duration::from_secs(2))
                .await
                .is_none()
            {
                closed = true;
                break 'probing;
            }
        }
        // A pause with nothing sent; the end of the connection may come now.
        if let Ok(end) =
            tokio::time::timeout(Duration::from_millis(200), client.read_record()).await
        {
            assert!(end.is_none(), "an answer nobody asked for");
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "kept open for {:?} by management records",
        started.elapsed()
    );
}

#[tokio::test]
async fn malformed_records_close_only_their_own_connection() {
    let server = server().await;
    let mut bad_name_value = begin(1, RESPONDER, true);
    bad_name_value.extend(record(PARAMS, 1, &[50, 0, b'a']));
    bad_name_value.extend(record(PARAMS, 1, &[]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "bad version",
            vec![2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
        ),
        (
            "BEGIN_REQUEST of the wrong length",
            record(BEGIN_REQUEST, 1, &[0, 1, 1]),
        ),
        ("name-value lengths that lie", bad_name_value),
        (
            "a record type a responder never receives",
            [begin(1, RESPONDER, true), record(STDOUT, 1, b"x")].concat(),
        ),
    ];
    let mut bystander = FcgiClient::connect(&server.addr).await;
    for (name, bytes) in cases {
        let mut client = FcgiClient::connect(&server.addr).await;
        client.send(&bytes).await;
        assert!(
            client.is_closed_within(Duration::from_secs(5)).await,
            "{name}: not closed"
        );
        assert_still_serving(&server.addr).await;
    }
    // A stream cut in the middle of a record.
    let mut client = FcgiClient::connect(&server.addr).await;
    client
        .send(&request(1, "GET", "/hello", b"", true)[..20])
        .await;
    drop(client);
    assert_still_serving(&server.addr).await;
    // A connection opened before all this is unaffected.
    assert_answers_hello(&mut bystander, 1).await;
}

#[tokio::test]
async fn records_for_unknown_request_ids_are_ignored() {
    let (_server, mut client) = server_and_client().await;
    client
        .send(&params(9, &[(b"REQUEST_METHOD", b"GET")]))
        .await;
    client.send(&stdin(9, b"data")).await;
    client.send(&record(ABORT_REQUEST, 9, &[])).await;
    assert_answers_hello(&mut client, 1).await;
}

#[tokio::test]
async fn draining_finishes_a_request_in_progress_then_stops() {
    let server = server().await;
    let addr = server.addr.clone();
    let mut client = FcgiClient::connect(&addr).await;
    client.send(&request(1, "GET", "/slow", b"", true)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = tokio::spawn(server.stop());
    assert_eq!(client.response(1).await.body_text(), "slow");
    stopping.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn a_peer_that_pipelines_steadily_is_never_cut_by_the_receive_deadline() {
    let (_server, mut client) =
        server_and_client_with(|limits| limits.receive_timeout = Duration::from_millis(300)).await;
    // 20 requests, 50 ms apart (1 s in all), each write carrying the end of
    // one request and the first bytes of the next: no request takes long,
    // though a partial record is always waiting.
    let requests: Vec<Vec<u8>> = (1..=20)
        .map(|id| request(id, "GET", "/hello", b"", true))
        .collect();
    let mut pending = Vec::new();
    for bytes in &requests {
        pending.extend_from_slice(&bytes[..5]);
        client.send(&pending).await;
        pending = bytes[5..].to_vec();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.send(&pending).await;
    let ids: Vec<u16> = (1..=20).collect();
    let responses = client.responses(&ids).await;
    assert!(responses.values().all(|r| r.body_text() == "hello"));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let server = server_with(|limits| limits.max_connections = 2).await;
    let mut first = FcgiClient::connect(&server.addr).await;
    let mut second = FcgiClient::connect(&server.addr).await;
    for client in [&mut first, &mut second] {
        assert_answers_hello(client, 1).await;
    }
    // The third connection is queued by the kernel, not served.
    let mut third = FcgiClient::connect(&server.addr).await;
    third.send(&request(1, "GET", "/hello", b"", true)).await;
    let waiting = tokio::time::timeout(Duration::from_millis(300), third.read_record()).await;
    assert!(
        waiting.is_err(),
        "a third connection was served beyond the cap"
    );
    drop(first);
    assert_eq!(third.response(1).await.body_text(), "hello");
}

/// `CONTENT_LENGTH=-1` is how Caddy's `php_fastcgi` says "length unknown"
/// for a chunked upload: the body is whatever STDIN carries up to its empty
/// record, bounded by `max_body_bytes` as it arrives (413, not 400).
#[tokio::test]
async fn a_content_length_of_minus_one_means_unknown_as_caddy_sends_it() {
    let server = server_with(|limits| limits.max_body_bytes = 1024).await;
    let send = |body: Vec<u8>| {
        let addr = server.addr.clone();
        async move {
            let mut pairs = request_params("POST", "/echo-body");
            pairs.push((b"CONTENT_LENGTH".to_vec(), b"-1".to_vec()));
            pairs.push((
                b"CONTENT_TYPE".to_vec(),
                b"application/x-www-form-urlencoded".to_vec(),
            ));
            let mut client = FcgiClient::connect(&addr).await;
            client
                .send(&request_from_pairs(1, &pairs, &body, false))
                .await;
            client.response(1).await
        }
    };
    let small = send(b"user=bob".to_vec()).await;
    assert_eq!(small.status(), 200, "{}", small.body_text());
    assert_eq!(small.body_text(), "user=bob");
    let head = String::from_utf8_lossy(small.head()).to_string();
    assert!(!head.contains("-1"), "{head}");
    let large = send(vec![b'x'; 2000]).await;
    assert_eq!(large.status(), 413, "{}", large.body_text());
    // Any other length that is not a number is still refused.
    let mut pairs = request_params("POST", "/echo-body");
    pairs.push((b"CONTENT_LENGTH".to_vec(), b"-2".to_vec()));
    let mut client = FcgiClient::connect(&server.addr).await;
    client
        .send(&request_from_pairs(1, &pairs, b"ab", false))
        .await;
    assert_eq!(client.response(1).await.status(), 400);
}
