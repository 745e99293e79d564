//! Operations as a PHP-FPM operator knows them: the status page in text,
//! JSON and OpenMetrics with counters that move, a status page closed to
//! strangers, a ping path that never touches the session backend, the
//! request timeout (504, connection still usable), the slow log with where
//! the time went, the access log, JSON logs and SIGHUP.

use std::time::Duration;

use nene_test_support::fcgi_client::{
    ABORT_REQUEST, END_REQUEST, FcgiClient, RESPONDER, STDIN, begin, params, record, request,
    request_params, request_with_params,
};
use nene_test_support::in_process::InProcess;
use nene_test_support::openmetrics;
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx, nene_behind_nginx};

fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name:?} in:\n{text}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name:?} is not a number in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_counts_requests_in_text_json_and_openmetrics() {
    let (_nene, nginx) = nene_behind_nginx(&[("NENE_SERVER__LISTEN_BACKLOG", "100")]);
    let mut browser = nginx.browser();
    let before = browser.get("/status").await;
    assert_eq!(before.status, 200);
    assert!(
        before.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    for name in [
        "pool",
        "start time",
        "start since",
        "accepted conn",
        "listen queue",
        "buffered bytes",
        "buffer budget refusals",
        "active requests",
        "max active requests",
        "slow requests",
        "session backend",
        "session backend errors",
        "session backend p50 ms",
        "locked sessions",
        "session lock waits",
        "session lock timeouts",
        "session lock hand-offs",
    ] {
        assert!(
            before.body.contains(&format!("{name}:")),
            "{name} missing:\n{}",
            before.body
        );
    }
    for _ in 0..5 {
        browser.get("/session/counter").await;
    }
    let after = browser.get("/status").await;
    assert!(
        field(&after.body, "requests") >= field(&before.body, "requests") + 6,
        "{}",
        after.body
    );
    assert!(field(&after.body, "accepted conn") >= 1);
    // The listener's own queue, as the kernel reports it.
    assert_eq!(
        field(&after.body, "listen queue len"),
        100,
        "{}",
        after.body
    );
    // server.max_buffered_bytes, 64M by default.
    assert_eq!(field(&after.body, "buffered bytes max"), 64 * 1024 * 1024);
    let backend = after
        .body
        .lines()
        .find_map(|l| l.strip_prefix("session backend:"));
    assert_eq!(backend.map(str::trim), Some("files"), "{}", after.body);

    let html = browser.get("/status?html").await;
    assert!(
        html.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        html.body
            .contains("<tr><th>session backend</th><td>files</td></tr>"),
        "{}",
        html.body
    );
    assert_eq!(
        html.body.matches("<tr>").count(),
        after.body.lines().count(),
        "one row per field of the text page:\n{}",
        html.body
    );

    let json = browser.get("/status?json").await.json();
    assert_eq!(json["pool"], "nene");
    assert!(json["requests"].as_u64().unwrap() >= field(&after.body, "requests"));
    assert!(json["session backend p99 ms"].as_f64().is_some(), "{json}");

    let metrics = browser.get("/status?openmetrics").await;
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(
        metrics.body.contains("# TYPE nene_requests counter"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("nene_requests_total "),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("nene_info{version="),
        "{}",
        metrics.body
    );
    assert!(metrics.body.ends_with("# EOF\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openmetrics_page_has_request_and_session_histograms_a_strict_parser_reads() {
    let (_nene, nginx) = nene_behind_nginx(&[]);
    let mut browser = nginx.browser();
    for _ in 0..5 {
        assert_eq!(browser.get("/session/counter").await.status, 200);
    }
    assert_eq!(browser.get("/no/such/page").await.status, 404);
    let text = browser.get("/status?openmetrics").await.body;
    let samples = openmetrics::parse(&text);

    let requests = "nene_request_duration_seconds";
    let counter = [("route", "/session/counter"), ("status", "2xx")];
    let count = |name: &str, labels: &[(&str, &str)]| {
        openmetrics::value(&samples, &format!("{name}_count"), labels)
    };
    assert_eq!(count(requests, &counter), 5.0, "{text}");
    // A path no action matches has no route.
    assert_eq!(count(requests, &[("route", ""), ("status", "4xx")]), 1.0);
    // The buckets of a series only grow, up to +Inf, which is the count.
    let buckets: Vec<(f64, f64)> = (samples.iter())
        .filter(|s| s.name == format!("{requests}_bucket"))
        .filter(|s| counter.iter().all(|(k, v)| s.labels[*k] == *v))
        .map(|s| (s.labels["le"].parse().unwrap(), s.value))
        .collect();
    assert!(buckets.len() > 10, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 5.0)));
    // Some requests were faster than the largest bound below +Inf.
    assert!(buckets.iter().any(|&(le, n)| le.is_finite() && n > 0.0));
    let sum = openmetrics::value(&samples, &format!("{requests}_sum"), &counter);
    assert!(sum > 0.0 && sum < 5.0 * 10.0, "{sum}");

    // Files sessions lock: every counter request queued for its lock,
    // started from the backend (all but the first, which had no cookie)
    // and committed.
    let backend = "nene_session_backend_seconds";
    assert_eq!(count(backend, &[("operation", "start")]), 4.0, "{text}");
    assert_eq!(count(backend, &[("operation", "commit")]), 5.0, "{text}");
    assert_eq!(count("nene_session_lock_wait_seconds", &[]), 4.0, "{text}");
}

/// An application that calls the dispatcher only after an await (a layer
/// of its own that routes later) labels the request with the route too.
#[tokio::test(flavor = "multi_thread")]
async fn a_route_picked_in_a_later_poll_still_labels_the_request() {
    use axum::routing::get;
    use nene::{Controller, Dispatcher, NotFoundPage};
    use tower::ServiceExt;

    let missing = std::path::Path::new("/nonexistent");
    let dispatcher = Dispatcher::builder(NotFoundPage::load(missing))
        .controller(
            "late",
            Controller::new().action("index", get(|| async { "late" })),
        )
        .build();
    let app = tower::service_fn(move |request| {
        let dispatcher = dispatcher.clone();
        async move {
            tokio::task::yield_now().await;
            dispatcher.oneshot(request).await
        }
    });
    let (nene, _dir) = InProcess::start_app(app, &[]).await;
    let get = |uri: &'static [u8]| {
        let addr = nene.addr.clone();
        async move {
            let pairs: [(&[u8], &[u8]); 3] = [
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", uri),
                (b"REMOTE_ADDR", b"127.0.0.1"),
            ];
            request_with_params(&addr, &pairs).await
        }
    };
    assert_eq!(get(b"/late").await.body_text(), "late");
    let text = get(b"/status?openmetrics").await.body_text();
    let samples = openmetrics::parse(&text);
    let labels = [("route", "/late/index"), ("status", "2xx")];
    let count = openmetrics::value(&samples, "nene_request_duration_seconds_count", &labels);
    assert_eq!(count, 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_not_in_status_allow_gets_403() {
    let (nene, nginx) = nene_behind_nginx(&[("NENE_PM__STATUS_ALLOW", "10.0.0.0/8")]);
    let mut browser = nginx.browser();
    let page = browser.get("/status").await;
    assert_eq!(page.status, 403);
    assert!(!page.body.contains("accepted conn"));
    // From an allowed address (nginx would pass the real client's).
    let allowed = request_with_params(
        &nene.addr,
        &[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/status"),
            (b"REMOTE_ADDR", b"10.1.2.3"),
        ],
    )
    .await;
    assert_eq!(allowed.status(), 200);
}

/// No usable client address is never an allowed one: with REMOTE_ADDR
/// absent, empty or not an IP (a Unix-socket peer's `unix:`), the status
/// page is refused even though loopback is allowed; loopback gets it.
#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_needs_a_client_address_to_allow() {
    let nene = Nene::start(&[]);
    let status_from = |remote: Option<&'static [u8]>| {
        let addr = nene.addr.clone();
        async move {
            let mut pairs: Vec<(&[u8], &[u8])> =
                vec![(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/status")];
            if let Some(remote) = remote {
                pairs.push((b"REMOTE_ADDR", remote));
            }
            request_with_params(&addr, &pairs).await
        }
    };
    for remote in [
        None,
        Some(&b""[..]),
        Some(&b"unix:"[..]),
        Some(&b"localhost"[..]),
    ] {
        let answer = status_from(remote).await;
        assert_eq!(answer.status(), 403, "REMOTE_ADDR {remote:?}");
        assert!(!answer.body_text().contains("accepted conn"));
    }
    assert_eq!(status_from(Some(b"127.0.0.1")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ping_path_answers_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let nene = Nene::start(&[
        ("NENE_SESSION_DSN", &redis.url()),
        ("NENE_PING__RESPONSE", "still here"),
    ]);
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = nginx.browser();
    redis.kill();
    let ping = browser.get("/ping").await;
    assert_eq!(ping.status, 200);
    assert_eq!(ping.body, "still here\n");
    assert!(ping.set_cookies().is_empty());
    assert_eq!(browser.get("/session/counter").await.status, 503);
}

#[tokio::test]
async fn a_handler_past_the_request_timeout_gets_504_and_the_connection_stays_usable() {
    let (server, _dir) =
        InProcess::start_front_controller(&[("NENE_SERVER__REQUEST_TERMINATE_TIMEOUT", "200ms")])
            .await;
    let mut client = FcgiClient::connect(&server.addr).await;
    let started = std::time::Instant::now();
    client.send(&request(1, "GET", "/slow", b"", true)).await;
    let response = client.response(1).await;
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "the handler was not cut"
    );
    client.send(&request(2, "GET", "/hello", b"", true)).await;
    assert_eq!(client.response(2).await.body_text(), "hello");
    client
        .send(&request(3, "GET", "/status?json", b"", true))
        .await;
    let status = client.response(3).await.body_text();
    assert!(status.contains("\"timed out requests\":1"), "{status}");
}

#[tokio::test]
async fn a_slow_request_is_in_the_slow_log_with_where_its_time_went() {
    let logs = tempfile::tempdir().unwrap();
    let slowlog = logs.path().join("slow.log");
    let slowlog_text = slowlog.display().to_string();
    let (server, _dir) = InProcess::start_front_controller(&[
        ("NENE_SERVER__REQUEST_SLOWLOG_TIMEOUT", "300ms"),
        ("NENE_SERVER__SLOWLOG", &slowlog_text),
    ])
    .await;
    let fast = nene_test_support::fcgi_client::get(&server.addr, "/hello").await;
    assert_eq!(fast.status(), 200);
    let slow = nene_test_support::fcgi_client::get(&server.addr, "/slow").await;
    assert_eq!(slow.body_text(), "slow");
    let log = nene_test_support::wait_for_log(&slowlog, "\n");
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.starts_with("slow request: GET /slow took "), "{log}");
    for part in ["session read", "handler", "session write"] {
        assert!(log.contains(part), "{part} missing: {log}");
    }
}

/// A request that waited for its session's lock shows that wait as its
/// session read in the slow log, and the holder's handler time as handler.
#[tokio::test(flavor = "multi_thread")]
async fn the_slow_log_shows_a_wait_for_the_session_lock_as_session_read() {
    use axum::routing::get;
    use nene::Session;

    let logs = tempfile::tempdir().unwrap();
    let slowlog = logs.path().join("slow.log");
    let slowlog_text = slowlog.display().to_string();
    let app = axum::Router::new().route(
        "/hold",
        get(|session: Session| async move {
            session.insert("held", true).await.unwrap();
            tokio::time::sleep(Duration::from_millis(600)).await;
            "held"
        }),
    );
    let (server, _dir) = InProcess::start_app(
        app,
        &[
            ("NENE_SERVER__REQUEST_SLOWLOG_TIMEOUT", "300ms"),
            ("NENE_SERVER__SLOWLOG", &slowlog_text),
        ],
    )
    .await;
    let addr = server.addr.clone();
    let hold = move |cookie: String| {
        let addr = addr.clone();
        async move {
            let pairs: [(&[u8], &[u8]); 3] = [
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/hold"),
                (b"HTTP_COOKIE", cookie.as_bytes()),
            ];
            request_with_params(&addr, &pairs).await
        }
    };
    let first = hold(String::new()).await;
    let head = String::from_utf8_lossy(first.head()).to_string();
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("Set-Cookie: "))
        .and_then(|value| value.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in:\n{head}"))
        .to_string();
    // The lock holder, and a request of the same session 100 ms later.
    let holder = tokio::spawn(hold(cookie.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiter = hold(cookie).await;
    assert_eq!(waiter.body_text(), "held");
    assert_eq!(holder.await.unwrap().body_text(), "held");

    let log = nene_test_support::wait_for_log(&slowlog, "\n");
    let read_ms = |line: &str| -> f64 {
        let after = line.split("session read ").nth(1).unwrap();
        after.split(" ms").next().unwrap().parse().unwrap()
    };
    let log = {
        // All three requests are slow; wait for the three lines.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let mut log = log;
        while log.lines().count() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            log = std::fs::read_to_string(&slowlog).unwrap();
        }
        log
    };
    let reads: Vec<f64> = log.lines().map(read_ms).collect();
    assert_eq!(reads.len(), 3, "{log}");
    // The waiter waited about 500 ms for the lock; the others not at all.
    let waited = reads.iter().filter(|&&ms| ms >= 300.0).count();
    let quick = reads.iter().filter(|&&ms| ms < 100.0).count();
    assert_eq!((waited, quick), (1, 2), "{log}");
}

#[tokio::test]
async fn the_access_log_follows_its_format_and_goes_to_a_file() {
    let logs = tempfile::tempdir().unwrap();
    let access = logs.path().join("access.log");
    let access_text = access.display().to_string();
    let (server, _dir) = InProcess::start_front_controller(&[
        ("NENE_ACCESS__LOG", &access_text),
        (
            "NENE_ACCESS__FORMAT",
            "%m %r%Q%q %s %{HTTP_HOST}e %{Content-Type}o",
        ),
    ])
    .await;
    let mut pairs = vec![
        (&b"REQUEST_METHOD"[..], &b"GET"[..]),
        (b"REQUEST_URI", b"/hello?x=1"),
        (b"QUERY_STRING", b"x=1"),
        (b"HTTP_HOST", b"shop.test"),
    ];
    request_with_params(&server.addr, &pairs).await;
    pairs[1] = (b"REQUEST_URI", b"/nope");
    request_with_params(&server.addr, &pairs).await;
    let log = nene_test_support::wait_for_log(&access, "/nope");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        vec![
            "GET /hello?x=1 200 shop.test text/plain; charset=utf-8",
            "GET /nope 404 shop.test -",
        ]
    );
}

/// Asserts that the status page, through `nginx`, counts `expected`
/// refused requests.
async fn assert_refused_requests(nginx: &Nginx, expected: u64) {
    let status = nginx.get("/status").await.text().await.unwrap();
    assert_eq!(field(&status, "refused requests"), expected, "{status}");
}

/// PHP-FPM logs every request; so does nene. A request refused before the
/// application — a body over `max_body_bytes` (413), headers over
/// `max_params_bytes` (431), a path that cannot be routed (400) — has its
/// one access-log line with method, path, client and status; an answered
/// request still has one line, not two. The status page counts refusals.
#[tokio::test(flavor = "multi_thread")]
async fn refused_requests_are_in_the_access_log_once_each() {
    let logs = tempfile::tempdir().unwrap();
    let access = logs.path().join("access.log");
    let access_text = access.display().to_string();
    let nene = Nene::start(&[
        ("NENE_ACCESS__LOG", &access_text),
        ("NENE_ACCESS__FORMAT", "%R %m %r%Q%q %s"),
        ("NENE_SERVER__MAX_BODY_BYTES", "1K"),
        ("NENE_SERVER__MAX_PARAMS_BYTES", "2K"),
    ]);
    let nginx = Nginx::start(&nene.upstream, true);
    let too_big = nginx.post("/health?case=body", vec![b'x'; 4096]).await;
    assert_eq!(too_big.status(), 413);
    let huge_header = nene_test_support::http_client()
        .get(nginx.url("/health?case=headers"))
        .header("X-Huge", "h".repeat(4000))
        .send()
        .await
        .unwrap();
    assert_eq!(huge_header.status(), 431);
    for (path, status) in [("/session%2Fcounter", 400), ("/health?case=ok", 200)] {
        assert_eq!(nginx.get(path).await.status(), status, "{path}");
    }

    let log = nene_test_support::wait_for_log(&access, "case=ok");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        vec![
            "127.0.0.1 POST /health?case=body 413",
            "127.0.0.1 GET /health?case=headers 431",
            "127.0.0.1 GET /session%2Fcounter 400",
            "127.0.0.1 GET /health?case=ok 200",
        ]
    );
    assert_refused_requests(&nginx, 3).await;

    // Every line shows the target as sent, answered or refused (decision
    // 0013): not the routing path the application saw.
    for target in ["/a/../health?case=dots", "/index.php/health?case=php"] {
        let answer = request_with_params(
            &nene.addr,
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"REMOTE_ADDR", b"127.0.0.1"),
                (b"REQUEST_URI", target.as_bytes()),
            ],
        )
        .await;
        assert_eq!(answer.status(), 200, "{target}");
    }
    // An upload its client abandoned has its line too, with nginx's 499:
    // stopped by FCGI_ABORT_REQUEST, or by the web server closing the
    // connection half way.
    for (case, abort) in [("aborted", true), ("closed", false)] {
        let mut fcgi = FcgiClient::connect(&nene.addr).await;
        let mut pairs = request_params("POST", &format!("/upload?case={case}"));
        pairs.push((b"CONTENT_LENGTH".to_vec(), b"100000".to_vec()));
        let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        fcgi.send(&begin(1, RESPONDER, true)).await;
        fcgi.send(&params(1, &pairs)).await;
        // A tenth of the body, and no end of it.
        fcgi.send(&record(STDIN, 1, &[b'x'; 10_000])).await;
        if abort {
            fcgi.send(&record(ABORT_REQUEST, 1, &[])).await;
            let ended = fcgi
                .read_record()
                .await
                .expect("END_REQUEST for the aborted request");
            assert_eq!(ended.kind, END_REQUEST);
        }
        drop(fcgi);
    }
    let log = nene_test_support::wait_for_log(&access, "case=closed");
    // After the four above and the status page.
    let lines: Vec<&str> = log.lines().skip(5).collect();
    assert_eq!(
        lines,
        vec![
            "127.0.0.1 GET /a/../health?case=dots 200",
            "127.0.0.1 GET /index.php/health?case=php 200",
            "127.0.0.1 POST /upload?case=aborted 499",
            "127.0.0.1 POST /upload?case=closed 499",
        ]
    );
    // Abandoned is not refused.
    assert_refused_requests(&nginx, 3).await;
}

#[test]
fn a_bad_access_format_stops_start_up() {
    let output = nene_test_support::run_nene(&["serve"], &[("NENE_ACCESS__FORMAT", "%m %Z")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("access.format") && stderr.contains("%Z"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reopens_the_access_log_after_logrotate_moved_it() {
    let logs = tempfile::tempdir().unwrap();
    let access = logs.path().join("access.log");
    let access_text = access.display().to_string();
    let nene = Nene::start(&[("NENE_ACCESS__LOG", &access_text)]);
    nene_test_support::fcgi_client::get(&nene.addr, "/health").await;
    nene_test_support::wait_for_log(&access, "/health");
    let rotated = logs.path().join("access.log.1");
    std::fs::rename(&access, &rotated).unwrap();
    nene.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(200)).await;
    nene_test_support::fcgi_client::get(&nene.addr, "/no/such/thing").await;
    let new = nene_test_support::wait_for_log(&access, "/no/such/thing");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("/health") && !old.contains("/no/such/thing"),
        "{old}"
    );
    assert!(new.contains("\"GET /no/such/thing\" 404"), "{new}");
    nene.assert_logged("SIGHUP: log files reopened");
}

/// Access lines wait in memory up to `FLUSH_INTERVAL`: a clean stop writes
/// them all, and a line is never split, under many connections at once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_loses_no_access_log_line_and_lines_never_interleave() {
    let logs = tempfile::tempdir().unwrap();
    let access = logs.path().join("access.log");
    let access_text = access.display().to_string();
    let mut nene = Nene::start(&[
        ("NENE_ACCESS__LOG", &access_text),
        ("NENE_ACCESS__FORMAT", "%m %r%Q%q %s"),
    ]);
    nene_test_support::raise_open_file_limit(600);
    let tasks: Vec<_> = (0..512)
        .map(|n| {
            let addr = nene.addr.clone();
            tokio::spawn(async move {
                let path = format!("/health?n={n}&pad={}", "p".repeat(n % 200));
                let answer = nene_test_support::fcgi_client::get(&addr, &path).await;
                assert_eq!(answer.status(), 200);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    nene.signal(libc::SIGTERM);
    let status = nene.wait_exit(Duration::from_secs(10)).expect("nene exits");
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&access).unwrap();
    let mut seen = vec![false; 512];
    for line in log.lines() {
        let n: usize = line
            .strip_prefix("GET /health?n=")
            .and_then(|rest| rest.split('&').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a mangled line: {line:?}"));
        let expected = format!("GET /health?n={n}&pad={} 200", "p".repeat(n % 200));
        assert_eq!(line, expected);
        assert!(!seen[n], "line {n} twice");
        seen[n] = true;
    }
    let missing: Vec<usize> = (0..512).filter(|n| !seen[*n]).collect();
    assert!(missing.is_empty(), "lines lost at SIGTERM: {missing:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_output_is_one_object_per_line() {
    let nene = Nene::start(&[("NENE_LOG__FORMAT", "json"), ("NENE_ACCESS__LOG", "off")]);
    nene_test_support::fcgi_client::get(&nene.addr, "/health").await;
    let log = nene.log_text();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_sets_how_many_threads_run_requests() {
    let cores = std::thread::available_parallelism().unwrap().get();
    for (setting, expected) in [("1", 1), ("3", 3), ("0", cores)] {
        let (_nene, nginx) = nene_behind_nginx(&[("NENE_SERVER__WORKER_THREADS", setting)]);
        let mut browser = nginx.browser();
        let status = browser.get("/status").await;
        assert_eq!(
            field(&status.body, "worker threads"),
            expected as u64,
            "worker_threads = {setting}"
        );
    }
}
