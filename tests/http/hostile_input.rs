//! A corpus of hostile input, sent straight over FastCGI (what nginx would
//! refuse to forward) and through nginx: invalid UTF-8 anywhere, CR/LF that
//! a handler might echo into a header, session cookies of every bad shape.
//! The answer is always defined (served or 400), never a panic; the
//! connection stays usable; nothing reaches the response head or the
//! session storage that the client made up.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;

use nene_test_support::browser::Browser;
use nene_test_support::fcgi_client::{FcgiClient, request_from_pairs, request_params};
use nene_test_support::in_process::InProcess;
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx, nene_behind_nginx};

/// A FastCGI param: name and value bytes.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// The params of `GET uri` with `overrides` replacing or adding pairs.
fn hostile_params(uri: &str, overrides: &[Pair]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs: BTreeMap<Vec<u8>, Vec<u8>> = request_params("GET", uri).into_iter().collect();
    for (name, value) in overrides {
        pairs.insert(name.to_vec(), value.to_vec());
    }
    pairs.into_iter().collect()
}

/// Sends one request with exactly `pairs` on a kept connection and reads
/// its response.
async fn send_kept(
    client: &mut FcgiClient,
    id: u16,
    pairs: &[(Vec<u8>, Vec<u8>)],
) -> nene_test_support::fcgi_client::Response {
    client.send(&request_from_pairs(id, pairs, b"", true)).await;
    client.response(id).await
}

/// The lines of a CGI head, for "no such header" checks.
fn head_lines(response: &nene_test_support::fcgi_client::Response) -> Vec<String> {
    String::from_utf8_lossy(response.head())
        .split("\r\n")
        .map(str::to_string)
        .collect()
}

/// Asserts that no line of `response`'s head carries the injected `evil`
/// (`case` names the input).
fn assert_no_evil_in_head(response: &nene_test_support::fcgi_client::Response, case: &str) {
    for line in head_lines(response) {
        assert!(
            !line.to_ascii_lowercase().contains("evil"),
            "{case}: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_anywhere_gets_a_defined_answer_and_the_connection_stays_usable() {
    let nene = Nene::start(&[]);
    let cases: Vec<(&str, Vec<Pair>)> = vec![
        ("REQUEST_URI", vec![(b"REQUEST_URI", b"/health\xff\xfe")]),
        ("DOCUMENT_URI", vec![(b"DOCUMENT_URI", b"/\xc3\x28")]),
        (
            "QUERY_STRING",
            vec![
                (b"REQUEST_URI", b"/health?a=\xff"),
                (b"QUERY_STRING", b"a=\xff"),
            ],
        ),
        (
            "query of a session route",
            vec![
                (b"REQUEST_URI", b"/session/counter?\xff=\xfe"),
                (b"QUERY_STRING", b"\xff=\xfe"),
            ],
        ),
        (
            "HTTP_USER_AGENT",
            vec![(b"HTTP_USER_AGENT", b"\xff\xfe\xfd")],
        ),
        ("HTTP_HOST", vec![(b"HTTP_HOST", b"\xffexample")]),
        (
            "HTTP_COOKIE",
            vec![(b"HTTP_COOKIE", b"NENESESSID=\xff\xfe")],
        ),
        (
            "HTTP_X_FORWARDED_PROTO",
            vec![(b"HTTP_X_FORWARDED_PROTO", b"http\xffs")],
        ),
        ("a param name", vec![(b"HTTP_\xff\xfe", b"x")]),
        ("REMOTE_ADDR", vec![(b"REMOTE_ADDR", b"127.0.0.\xff")]),
        ("REQUEST_METHOD", vec![(b"REQUEST_METHOD", b"G\xffT")]),
        ("HTTPS", vec![(b"HTTPS", b"\xff")]),
        ("CONTENT_TYPE", vec![(b"CONTENT_TYPE", b"text/\xff")]),
    ];
    let mut client = FcgiClient::connect(&nene.addr).await;
    let mut id = 1;
    for (what, overrides) in &cases {
        let uri = if what.contains("session") {
            "/session/counter"
        } else {
            "/health"
        };
        let response = send_kept(&mut client, id, &hostile_params(uri, overrides)).await;
        let status = response.status();
        assert!(
            [200, 400, 404].contains(&status),
            "{what}: status {status}: {}",
            response.body_text()
        );
        id += 1;
        // The same connection still serves a clean request.
        let clean = send_kept(&mut client, id, &request_params("GET", "/health")).await;
        assert_eq!(clean.status(), 200, "after {what}");
        id += 1;
    }
    let log = nene.log_text();
    assert!(!log.contains("panic"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cr_lf_in_input_never_reaches_the_response_head() {
    // A handler that copies a request header into its response.
    let (server, _dir) = InProcess::start_front_controller(&[]).await;
    let mut client = FcgiClient::connect(&server.addr).await;
    let injections: [&[u8]; 4] = [
        b"a\r\nSet-Cookie: evil=1",
        b"a\nSet-Cookie: evil=1",
        b"a\rSet-Cookie: evil=1",
        b"a\r\n\r\n<script>evil</script>",
    ];
    for (n, value) in injections.iter().enumerate() {
        let id = n as u16 + 1;
        let pairs = hostile_params("/echo-header", &[(b"HTTP_X_ECHO", value)]);
        let response = send_kept(&mut client, id, &pairs).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.body_text(), "echoed", "injection {n}");
        assert_no_evil_in_head(&response, &format!("injection {n}"));
    }
    // A harmless value is still echoed (the route works).
    let pairs = hostile_params("/echo-header", &[(b"HTTP_X_ECHO", b"fine")]);
    let response = send_kept(&mut client, 9, &pairs).await;
    let lines = head_lines(&response);
    assert!(
        lines
            .iter()
            .any(|line| line.eq_ignore_ascii_case("x-echo: fine")),
        "{lines:?}"
    );

    // The real front controller: CR/LF in the path (raw and encoded), the
    // query and a form value end up in bodies or nowhere, never in the head.
    let nene = Nene::start(&[]);
    let mut client = FcgiClient::connect(&nene.addr).await;
    let uris: [&[u8]; 4] = [
        b"/nope\r\nSet-Cookie: evil=1",
        b"/nope%0d%0aSet-Cookie:%20evil=1",
        b"/session/counter?x=%0d%0aSet-Cookie:%20evil=1",
        b"/session/whoami?\r\nSet-Cookie: evil=1",
    ];
    for (n, uri) in uris.iter().enumerate() {
        let id = n as u16 + 1;
        let response = send_kept(
            &mut client,
            id,
            &hostile_params("/", &[(b"REQUEST_URI", uri), (b"DOCUMENT_URI", uri)]),
        )
        .await;
        assert!([200, 400, 404].contains(&response.status()), "uri {n}");
        assert_no_evil_in_head(&response, &format!("uri {n}"));
    }
    // A login whose user name carries a header: the JSON body escapes it.
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = nginx.browser();
    let page = browser
        .post_form("/session/login", "user=ann%0d%0aSet-Cookie:%20evil%3D1")
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.json()["user"], "ann\r\nSet-Cookie: evil=1");
    for value in page.set_cookies() {
        assert!(!value.contains("evil"), "{value}");
    }
    assert!(page.headers.get("set-cookie").is_some());
    assert!(!nene.log_text().contains("panic"));
}

/// Session cookies nobody issued, in every bad shape. `raw` ones only go
/// straight over FastCGI (HTTP clients and nginx refuse them).
fn bad_cookies() -> Vec<(&'static str, Vec<u8>, bool)> {
    let fifty_bad: String = (0..50)
        .map(|i| format!("NENESESSID=bad{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    vec![
        ("empty", b"NENESESSID=".to_vec(), false),
        ("NUL", b"NENESESSID=abc\x00def".to_vec(), true),
        (
            "NUL, percent-encoded",
            b"NENESESSID=abc%00def".to_vec(),
            false,
        ),
        ("CR/LF", b"NENESESSID=abc\r\nX-Injected: 1".to_vec(), true),
        (
            "CR/LF, percent-encoded",
            b"NENESESSID=abc%0d%0aX-Injected:%201".to_vec(),
            false,
        ),
        (
            "4 KiB",
            format!("NENESESSID={}", "a".repeat(4096)).into_bytes(),
            false,
        ),
        (
            "unicode",
            "NENESESSID=ééééééééééééééééééééééééééééééé"
                .as_bytes()
                .to_vec(),
            true,
        ),
        ("invalid UTF-8", b"NENESESSID=\xff\xfe\xfd".to_vec(), true),
        ("50 with the same name", fifty_bad.into_bytes(), false),
        ("quoted wildcard", b"NENESESSID=\"*\"".to_vec(), false),
        (
            "path traversal",
            b"NENESESSID=..%2F..%2Fetc%2Fpasswd".to_vec(),
            false,
        ),
    ]
}

/// Whether `id` has the default format (32 characters, 5 bits each).
fn is_issued_format(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
}

/// The id a Set-Cookie head line carries.
fn issued_id(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_string())
        .unwrap_or_default()
}

/// Sends every bad cookie to `nene` (directly and, when sendable, through
/// `nginx`); returns the ids nene issued in answer.
async fn send_bad_cookies(nene: &Nene, nginx: &Nginx) -> Vec<String> {
    let mut issued = Vec::new();
    for (what, cookie, raw) in bad_cookies() {
        // Straight over FastCGI.
        let mut client = FcgiClient::connect(&nene.addr).await;
        let pairs = hostile_params("/session/counter", &[(b"HTTP_COOKIE", &cookie)]);
        let response = send_kept(&mut client, 1, &pairs).await;
        assert_eq!(response.status(), 200, "{what}: {}", response.body_text());
        assert_eq!(response.body_text(), r#"{"count":1}"#, "{what}");
        let lines = head_lines(&response);
        let set_cookie = lines
            .iter()
            .find(|line| {
                line.to_ascii_lowercase()
                    .starts_with("set-cookie: nenesessid=")
            })
            .unwrap_or_else(|| panic!("{what}: no fresh id in {lines:?}"));
        let id = issued_id(set_cookie);
        assert!(is_issued_format(&id), "{what}: issued {id:?}");
        let head = String::from_utf8_lossy(response.head()).to_string();
        assert!(
            !head.contains("X-Injected") && !head.contains("bad1"),
            "{what}: {head}"
        );
        issued.push(id);
        if raw {
            continue;
        }
        // Through nginx, as a browser would send it.
        let mut browser = nginx.browser();
        let page = browser
            .get_with_cookie_header("/session/counter", &cookie)
            .await;
        assert_eq!(page.status, 200, "{what} through nginx");
        assert_eq!(page.json()["count"], 1, "{what} through nginx");
        let id = browser.session_id().expect("a fresh id through nginx");
        assert!(is_issued_format(&id), "{what}: issued {id:?} through nginx");
        for value in page.set_cookies() {
            assert!(
                !value.contains("X-Injected") && !value.contains("bad1"),
                "{value}"
            );
        }
        issued.push(id);
    }
    issued
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_session_cookies_are_never_stored_or_echoed_with_file_sessions() {
    let (nene, nginx) = nene_behind_nginx(&[]);
    let issued = send_bad_cookies(&nene, &nginx).await;
    let mut stored: Vec<String> = std::fs::read_dir(nene.dir().join("sessions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    stored.sort();
    let mut expected: Vec<String> = issued.iter().map(|id| format!("sess_{id}")).collect();
    expected.sort();
    assert_eq!(stored, expected, "only the ids nene issued are stored");
    assert!(!nene.log_text().contains("panic"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_session_cookies_are_never_stored_or_echoed_with_redis_sessions() {
    let redis = RedisServer::start();
    let (nene, nginx) = nene_behind_nginx(&[("NENE_SESSION_DSN", &redis.url())]);
    let issued = send_bad_cookies(&nene, &nginx).await;
    let stored = redis
        .db(0)
        .keys("*")
        .into_iter()
        .filter(|key| !key.ends_with(".lock"))
        .collect::<Vec<_>>();
    let mut expected: Vec<String> = issued.iter().map(|id| format!("sess_{id}")).collect();
    expected.sort();
    assert_eq!(stored, expected, "only the ids nene issued are stored");
    assert!(!nene.log_text().contains("panic"));
}

#[tokio::test(flavor = "multi_thread")]
async fn of_many_same_named_cookies_the_first_well_formed_one_among_the_first_16_is_used() {
    let (_nene, nginx) = nene_behind_nginx(&[]);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let id = browser.session_id().unwrap();
    let with_valid_at = |position: usize| {
        (0..50)
            .map(|i| {
                if i == position {
                    format!("NENESESSID={id}")
                } else {
                    format!("NENESESSID=bad{i}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    // Junk ahead of the real id does not log the user out...
    let mut other = Browser::new(&nginx.url(""));
    let page = other
        .get_with_cookie_header("/session/counter", with_valid_at(10).as_bytes())
        .await;
    assert_eq!(page.json()["count"], 2);
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
    // ...but only the first 16 cookies of the name are looked at.
    let page = other
        .get_with_cookie_header("/session/counter", with_valid_at(30).as_bytes())
        .await;
    assert_eq!(page.json()["count"], 1);
    assert!(!page.set_cookies().join(" ").contains(&id));
    // Two stored sessions: the first cookie wins, as in PHP.
    let mut second = Browser::new(&nginx.url(""));
    for _ in 0..5 {
        second.get("/session/counter").await;
    }
    let second_id = second.session_id().unwrap();
    let page = other
        .get_with_cookie_header(
            "/session/counter",
            format!("NENESESSID={second_id}; NENESESSID={id}").as_bytes(),
        )
        .await;
    assert_eq!(page.json()["count"], 6);
}

/// 2,000 requests over a connection's cap cost a few dozen kilobytes to
/// send; they are each refused, but the log gets one line a second with a
/// count, not 2,000 lines.
#[tokio::test(flavor = "multi_thread")]
async fn requests_over_the_connection_cap_are_logged_rate_limited() {
    use nene_test_support::fcgi_client::{RESPONDER, begin};
    let nene = Nene::start(&[("NENE_SERVER__MAX_REQUESTS_PER_CONNECTION", "1")]);
    let mut client = FcgiClient::connect(&nene.addr).await;
    let mut flood = begin(1, RESPONDER, true);
    for id in 2..=2001 {
        flood.extend(begin(id, RESPONDER, true));
    }
    client.send(&flood).await;
    for _ in 2..=2001 {
        let record = client
            .read_record_within(std::time::Duration::from_secs(5))
            .await
            .expect("an END_REQUEST for each refused request");
        assert_eq!(record.kind, nene_test_support::fcgi_client::END_REQUEST);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client.send(&begin(2002, RESPONDER, true)).await;
    client
        .read_record_within(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = nene.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("refused:")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[1].contains("(and 1999 more since the previous line)"),
        "{log}"
    );
}

/// Ids of exactly the valid length (32) with one character outside the
/// alphabet. A session is planted in the store under each such name (where
/// the store can hold it): if the id reached the backend, the counter would
/// continue from it.
fn exact_length_bad_ids() -> Vec<(&'static str, Vec<u8>)> {
    let valid = *b"abcdefghijklmnopqrstuv0123456789";
    [
        ("CR", b'\r'),
        ("LF", b'\n'),
        ("*", b'*'),
        ("/", b'/'),
        ("NUL", 0u8),
    ]
    .into_iter()
    .map(|(what, bad)| {
        let mut id = valid.to_vec();
        id[20] = bad;
        (what, id)
    })
    .collect()
}

/// Sends each exact-length bad id straight over FastCGI: a fresh session
/// (count 1) every time, never the planted one.
async fn send_exact_length_bad_ids(nene: &Nene) {
    for (what, id) in exact_length_bad_ids() {
        let mut cookie = b"NENESESSID=".to_vec();
        cookie.extend_from_slice(&id);
        let mut client = FcgiClient::connect(&nene.addr).await;
        let pairs = hostile_params("/session/counter", &[(b"HTTP_COOKIE", &cookie)]);
        let response = send_kept(&mut client, 1, &pairs).await;
        assert_eq!(response.status(), 200, "{what}: {}", response.body_text());
        assert_eq!(
            response.body_text(),
            r#"{"count":1}"#,
            "{what}: the planted session was read"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_length_ids_with_one_bad_character_never_reach_the_file_store() {
    let nene = Nene::start(&[]);
    // The store exists once nene has answered one session request.
    nene_test_support::fcgi_client::get(&nene.addr, "/session/counter").await;
    let sessions = nene.dir().join("sessions");
    for (_, id) in exact_length_bad_ids() {
        if id.contains(&b'/') || id.contains(&0) {
            continue; // no file can have that name
        }
        let mut name = b"sess_".to_vec();
        name.extend_from_slice(&id);
        let path = sessions.join(std::ffi::OsStr::from_bytes(&name));
        std::fs::write(&path, br#"{"count":41}"#).unwrap();
    }
    send_exact_length_bad_ids(&nene).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_length_ids_with_one_bad_character_never_reach_redis() {
    let redis = RedisServer::start();
    let nene = Nene::start(&[("NENE_SESSION_DSN", &redis.url())]);
    let mut db = redis.db(0);
    for (_, id) in exact_length_bad_ids() {
        let key = format!("sess_{}", String::from_utf8_lossy(&id));
        db.set(&key, br#"{"count":41}"#);
    }
    send_exact_length_bad_ids(&nene).await;
}
