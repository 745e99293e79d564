//! Security properties an attacker would probe: session ids that cannot be
//! guessed, logs that never carry an id (nor a prefix of one) or a DSN
//! password, guessing that shows up in the log with the guesser's address,
//! and a FastCGI socket that not every local user can write to.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use nene::session::{MIN_ID_ENTROPY_BITS, SessionIdFormat};
use nene_test_support::Nene;
use nene_test_support::Nginx;
use nene_test_support::browser::{Browser, Page};
use nene_test_support::nene_behind_nginx;
use nene_test_support::redis_server::RedisServer;

/// The id format nene uses when nothing is configured.
fn default_format() -> (usize, u8) {
    let session = nene::config::Settings::defaults().session;
    (session.sid_length, session.sid_bits_per_character)
}

#[test]
fn ten_thousand_default_ids_are_distinct_and_every_position_is_near_uniform() {
    let (length, bits) = default_format();
    let format = SessionIdFormat::new(length, bits).unwrap();
    let alphabet = 1usize << bits;
    let ids: Vec<String> = (0..10_000)
        .map(|_| format.generate().as_str().to_string())
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "duplicate session ids");
    let expected = ids.len() as f64 / alphabet as f64;
    for position in 0..length {
        let mut counts: HashMap<u8, usize> = HashMap::new();
        for id in &ids {
            *counts.entry(id.as_bytes()[position]).or_default() += 1;
        }
        assert_eq!(
            counts.len(),
            alphabet,
            "position {position} takes only {} values",
            counts.len()
        );
        // Each count is binomial around `expected` (σ ≈ 17 for 32 symbols):
        // ±50 % is far outside chance, well inside what a biased generator
        // (a modulo bias, a stuck bit) would produce.
        for (symbol, count) in counts {
            let ratio = count as f64 / expected;
            assert!(
                (0.5..1.5).contains(&ratio),
                "position {position}: {:?} appears {count} times, expected about {expected}",
                symbol as char
            );
        }
    }
}

#[test]
fn the_default_id_format_has_at_least_128_bits_and_weaker_ones_are_refused() {
    let (length, bits) = default_format();
    assert!(length * usize::from(bits) >= MIN_ID_ENTROPY_BITS);
    assert_eq!(MIN_ID_ENTROPY_BITS, 128);
    for (length, bits) in [(31, 4), (25, 5), (21, 6), (22, 5)] {
        assert!(
            SessionIdFormat::new(length, bits).is_err(),
            "{length} x {bits} bits was accepted"
        );
    }
    for (length, bits) in [(32, 4), (26, 5), (22, 6)] {
        assert!(SessionIdFormat::new(length, bits).is_ok());
    }
    // And nene refuses to start with such a format.
    let output = nene_test_support::run_nene(
        &["check"],
        &[
            ("NENE_SESSION__SID_LENGTH", "24"),
            ("NENE_SESSION__SID_BITS_PER_CHARACTER", "4"),
        ],
    );
    assert_ne!(output.status.code(), Some(0));
}

/// A well-formed id nene never issued.
fn unknown_id() -> String {
    let (length, bits) = default_format();
    SessionIdFormat::new(length, bits)
        .unwrap()
        .generate()
        .as_str()
        .to_string()
}

/// Every session id the browsers were given or sent, for log checks.
fn assert_log_has_no_id(log: &str, ids: &HashSet<String>) {
    assert!(!ids.is_empty());
    for id in ids {
        assert!(
            !log.contains(id.as_str()),
            "the log carries the id {id}:\n{log}"
        );
        assert!(
            !log.contains(&id[..6]),
            "the log carries a prefix of the id {id}:\n{log}"
        );
    }
}

/// An id nene never issued and the page `GET /session/counter` with it as
/// the session cookie, which must answer 200.
async fn counter_with_an_unknown_id(browser: &mut Browser) -> (String, Page) {
    let id = unknown_id();
    let page = browser
        .get_with_cookie_header("/session/counter", format!("NENESESSID={id}").as_bytes())
        .await;
    assert_eq!(page.status, 200);
    (id, page)
}

/// Traffic that makes every kind of session log line nene has at debug
/// level: new sessions, regenerate, destroy, refused ids, a locked session.
async fn session_traffic(nginx: &Nginx) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut browser = nginx.browser();
    for _ in 0..3 {
        assert_eq!(browser.get("/session/counter").await.status, 200);
    }
    ids.insert(browser.session_id().unwrap());
    assert_eq!(
        browser.post_form("/session/login", "user=ann").await.status,
        200
    );
    ids.insert(browser.session_id().unwrap());
    // Concurrent requests on one session queue on its lock.
    let mut queued = Vec::new();
    for _ in 0..8 {
        let mut same = browser.clone();
        queued.push(tokio::spawn(async move {
            same.get("/session/counter").await.status
        }));
    }
    for request in queued {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(browser.post_form("/session/logout", "").await.status, 200);
    for _ in 0..3 {
        let (id, _) = counter_with_an_unknown_id(&mut browser).await;
        ids.insert(id);
    }
    ids.extend(browser.cookies.values().cloned());
    ids.retain(|id| id.len() >= 6);
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn no_session_id_reaches_a_debug_log_with_files_or_redis() {
    let redis = RedisServer::start();
    for dsn in [String::new(), redis.url()] {
        let nene = Nene::start(&[
            ("RUST_LOG", "debug"),
            ("NENE_SESSION_DSN", &dsn),
            ("NENE_SESSION__GC_PROBABILITY", "1"),
            ("NENE_SESSION__GC_DIVISOR", "1"),
        ]);
        let nginx = Nginx::start(&nene.upstream, true);
        let ids = session_traffic(&nginx).await;
        let log = nene.log_text();
        assert!(log.contains("refused a session id"), "{log}");
        assert_log_has_no_id(&log, &ids);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn guessed_ids_are_logged_rate_limited_with_the_client_address() {
    let (nene, nginx) = nene_behind_nginx(&[]);
    let mut browser = nginx.browser();
    let started = std::time::Instant::now();
    let mut guesses = HashSet::new();
    for _ in 0..100 {
        let (id, page) = counter_with_an_unknown_id(&mut browser).await;
        let issued = page.set_cookies().join(" ");
        assert!(!issued.contains(&id), "a guessed id was adopted");
        guesses.insert(id);
    }
    // One more after the rate limit's second: its line counts the others.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let id = unknown_id();
    let page = browser
        .get_with_cookie_header("/session/counter", format!("NENESESSID={id}").as_bytes())
        .await;
    assert_eq!(page.status, 200);
    guesses.insert(id);
    let seconds = started.elapsed().as_secs() as usize;
    let log = nene.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("refused a session id"))
        .collect();
    assert!(!lines.is_empty(), "no line about 100 guessed ids:\n{log}");
    assert!(
        lines.len() <= seconds + 2 && lines.len() >= 2,
        "{} lines for 100 guesses in {seconds} s:\n{log}",
        lines.len()
    );
    for line in &lines {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("127.0.0.1"), "{line}");
    }
    // Every guess is accounted for: a line each, or counted in a later one.
    let counted: usize = lines
        .iter()
        .map(|line| {
            1 + line
                .split("(and ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .map_or(0, |n| n.parse::<usize>().unwrap())
        })
        .sum();
    assert_eq!(counted, 101, "{log}");
    assert_log_has_no_id(&log, &guesses);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_redis_with_a_password_never_logs_the_password() {
    let mut redis = RedisServer::start_with(&["--requirepass", "s3cr3t-pa55word"]);
    let dsn = format!(
        "redis://:s3cr3t-pa55word@127.0.0.1:{}/0?timeout=500ms&connect_timeout=500ms",
        redis.port()
    );
    let (nene, nginx) = nene_behind_nginx(&[("NENE_SESSION_DSN", &dsn), ("RUST_LOG", "debug")]);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.status, 200);
    redis.kill();
    for _ in 0..3 {
        assert_eq!(browser.get("/session/counter").await.status, 503);
    }
    let log = nene.log_text();
    assert!(log.contains("session unavailable"), "{log}");
    assert!(!log.contains("s3cr3t-pa55word"), "{log}");
    assert!(!log.contains("s3cr3t"), "{log}");
}

#[test]
fn the_default_unix_socket_is_not_world_writable() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nene.sock");
    let nene = Nene::start_unix(&socket, &[]);
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    let mode = meta.permissions().mode() & 0o777;
    assert_eq!(mode & 0o002, 0, "the socket is world-writable: {mode:o}");
    assert_eq!(mode & 0o007, 0, "other users can use the socket: {mode:o}");
    drop(nene);
}

/// A response that hands out a session id must never be kept by a shared
/// cache: `Cache-Control: public` from a handler or from
/// `session.cache_limiter = public` becomes `private` on the response that
/// sets the cookie (later responses keep what was asked for).
#[tokio::test(flavor = "multi_thread")]
async fn a_response_setting_the_session_cookie_is_never_publicly_cacheable() {
    let (server, _dir) =
        nene_test_support::in_process::InProcess::start_front_controller(&[]).await;
    let page = nene_test_support::fcgi_client::get(&server.addr, "/public-page").await;
    // Spelled as PHP-FPM spells them: WAF rules and log parsers written
    // against a PHP site's answers match them case-sensitively.
    let head = String::from_utf8_lossy(page.head()).to_string();
    assert!(head.contains("Set-Cookie: NENESESSID="), "{head}");
    assert!(head.contains("Cache-Control: no-store"), "{head}");
    assert!(!head.to_lowercase().contains("public"), "{head}");

    let (_nene, nginx) = nene_behind_nginx(&[("NENE_SESSION__CACHE_LIMITER", "public")]);
    let mut browser = nginx.browser();
    let first = browser.get("/session/counter").await;
    assert!(!first.set_cookies().is_empty());
    let control = first.headers["cache-control"].to_str().unwrap().to_string();
    assert!(
        control.contains("private") && !control.contains("public"),
        "{control}"
    );
    let second = browser.get("/session/counter").await;
    assert!(second.set_cookies().is_empty());
    let control = second.headers["cache-control"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(control.starts_with("public"), "{control}");

    // Already private: left as the limiter wrote it.
    let private = Nene::start(&[("NENE_SESSION__CACHE_LIMITER", "private")]);
    let nginx = Nginx::start(&private.upstream, true);
    let first = Browser::new(&nginx.url("")).get("/session/counter").await;
    assert!(!first.set_cookies().is_empty());
    assert_eq!(first.headers["cache-control"], "private, max-age=10800");
}

/// Whoever reaches the FastCGI port can claim any REMOTE_ADDR, so only the
/// clients in `server.allowed_clients` (PHP-FPM's `listen.allowed_clients`;
/// loopback by default) are served: any other is closed at accept, with a
/// rate-limited warning.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_outside_allowed_clients_is_closed_at_accept() {
    use nene_test_support::fcgi_client::FcgiClient;
    let nene = Nene::start(&[("NENE_SERVER__ALLOWED_CLIENTS", "192.0.2.0/24")]);
    // Closed before a byte is read: the client sees the end, never an answer.
    let mut client = FcgiClient::connect(&nene.addr).await;
    assert!(
        client
            .read_record_within(std::time::Duration::from_secs(5))
            .await
            .is_none(),
        "a refused client got an answer"
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    nene.assert_logged("refused a connection from 127.0.0.1: not in server.allowed_clients");

    let default = Nene::start(&[]);
    let answer = nene_test_support::fcgi_client::get(&default.addr, "/health").await;
    assert_eq!(answer.status(), 200);
}

/// Two REMOTE_ADDR params (the last used to win): a client that adds its
/// own after nginx's cannot pass for loopback on the status page.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_remote_addr_is_a_bad_request() {
    let nene = Nene::start(&[]);
    let pairs: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", b"/status"),
        (b"REMOTE_ADDR", b"192.0.2.7"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
    ];
    let answer = nene_test_support::fcgi_client::request_with_params(&nene.addr, &pairs).await;
    assert_eq!(answer.status(), 400);
    assert!(!answer.body_text().contains("pool:"));
    let once = nene_test_support::fcgi_client::request_with_params(&nene.addr, &pairs[..3]).await;
    assert_eq!(
        once.status(),
        403,
        "192.0.2.7 is not allowed the status page"
    );
}
