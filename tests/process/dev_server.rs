//! `nene dev`, the development web server, as a new user meets it on a
//! machine without nginx: the example application, static files with their
//! content types, sessions with a cookie jar, no path escape, no directory
//! listing — and the same answers as nginx + `nene serve` give.

use std::io::{Read, Write};
use std::net::TcpStream;

use axum::Router;
use axum::routing::get;
use nene::RequestInfo;
use nene_test_support::browser::Browser;
use nene_test_support::in_process::InProcess;
use nene_test_support::{Nene, Nginx, free_port, htdocs, run_nene, wait_for_log};
use serde_json::json;

/// A copy of the repository's htdocs with a subdirectory, to see that a
/// directory is never listed.
fn htdocs_with_assets() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["404.html", "robots.txt"] {
        std::fs::copy(htdocs().join(file), dir.path().join(file)).unwrap();
    }
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app.css"), "body { color: teal }\n").unwrap();
    dir
}

/// One request written by hand, so the path reaches the server exactly as
/// given (clients normalise `/../`); returns the status and the body.
fn raw_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[tokio::test]
async fn serves_the_example_app_static_files_and_sessions_without_nginx() {
    let docroot = htdocs_with_assets();
    let nene = Nene::start_dev(docroot.path(), &[]);
    let base = format!("http://{}", nene.addr);
    let mut browser = Browser::new(&base);

    let index = browser.get("/").await;
    assert_eq!(index.status, 200);
    assert!(
        index.body.contains("<h1>nene example</h1>"),
        "{}",
        index.body
    );
    assert_eq!(browser.get("/health").await.json(), json!({"status": "ok"}));
    for expected in 1..=3 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.json(), json!({ "count": expected }));
    }

    let client = nene_test_support::http_client();
    let robots = client
        .get(format!("{base}/robots.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(robots.status(), 200);
    assert_eq!(robots.headers()["content-type"], "text/plain");
    let last_modified = robots.headers()["last-modified"].clone();
    let on_disk = std::fs::read_to_string(docroot.path().join("robots.txt")).unwrap();
    assert_eq!(robots.text().await.unwrap(), on_disk);
    let css = client
        .get(format!("{base}/assets/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css");

    let head = client
        .head(format!("{base}/robots.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], on_disk.len().to_string());
    assert!(head.bytes().await.unwrap().is_empty());
    let unchanged = client
        .get(format!("{base}/robots.txt"))
        .header("if-modified-since", last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);

    // A directory is not listed: it goes to the front controller, which has
    // no such route.
    let (status, body) = raw_get(&nene.addr, "/assets/");
    assert_eq!(status, 404);
    assert!(!body.contains("app.css"), "{body}");
    // Nothing outside htdocs, however the path is spelt.
    for escape in [
        "/../Cargo.toml",
        "/assets/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
    ] {
        let (status, body) = raw_get(&nene.addr, escape);
        assert_ne!(status, 200, "{escape}");
        assert!(!body.contains("[package]"), "{escape} served {body}");
    }

    let log = nene.log_text();
    assert!(
        log.contains(&format!("http://{}/", nene.addr)) && log.contains("development server"),
        "{log}"
    );
    assert!(log.contains("put nginx"), "{log}");
}

#[test]
fn a_non_loopback_address_is_refused_without_public() {
    let addr = format!("0.0.0.0:{}", free_port());
    let output = run_nene(&["dev", "--http", &addr], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&addr) && stderr.contains("loopback") && stderr.contains("--public"),
        "{stderr}"
    );
}

/// What a visit looks like from outside: each answer's status, content
/// type, body and cookie attributes (not the session id, which differs).
async fn visit(base: &str) -> Vec<String> {
    let mut browser = Browser::new(base);
    let mut seen = Vec::new();
    let mut record = |what: &str, page: nene_test_support::browser::Page| {
        let content_type = page
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let cookies: Vec<String> = page
            .set_cookies()
            .iter()
            .map(|c| c.split_once(';').map_or("", |(_, attrs)| attrs))
            // A removal cookie's Expires is the current second.
            .map(|attrs| attrs.split("; Expires=").next().unwrap().to_string())
            .collect();
        seen.push(format!(
            "{what} -> {} {content_type:?} {} {cookies:?}",
            page.status, page.body
        ));
    };
    for path in ["/", "/health", "/robots.txt", "/nowhere", "/session/login"] {
        record(path, browser.get(path).await);
    }
    for _ in 0..3 {
        record("counter", browser.get("/session/counter").await);
    }
    record(
        "login",
        browser.post_form("/session/login", "user=ann").await,
    );
    record("whoami", browser.get("/session/whoami").await);
    record("logout", browser.post_form("/session/logout", "").await);
    record("whoami", browser.get("/session/whoami").await);
    record("status", browser.get("/status?json").await.status_only());
    seen
}

#[tokio::test]
async fn dev_and_nginx_with_serve_answer_alike() {
    let served = Nene::start(&[]);
    let nginx = Nginx::start(&served.upstream, true);
    let dev = Nene::start_dev(&htdocs(), &[]);

    let through_nginx = visit(&nginx.url("")).await;
    let through_dev = visit(&format!("http://{}", dev.addr)).await;
    assert_eq!(through_dev, through_nginx);
    assert!(
        through_dev
            .iter()
            .any(|line| line.starts_with("counter -> 200"))
    );
}

#[tokio::test]
async fn an_application_sees_the_same_request_info_through_dev_and_nginx() {
    async fn info(info: RequestInfo) -> String {
        format!(
            "client {:?} https {} script {} path_info {:?} server ip {:?}",
            info.client_ip,
            info.https,
            info.script_name,
            info.path_info,
            info.server_addr.map(|addr| addr.ip())
        )
    }
    let app = Router::new().route("/where/am-i", get(info));
    let (fastcgi, _dir) = InProcess::start_app(app.clone(), &[]).await;
    let nginx = Nginx::start(&fastcgi.addr, true);
    let (dev, _dev_dir) = InProcess::start_dev_app(app, &[]).await;
    let client = nene_test_support::http_client();
    let ask = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };

    let through_nginx = ask(nginx.url("/where/am-i")).await;
    let through_dev = ask(format!("http://{}/where/am-i", dev.addr)).await;
    assert_eq!(
        through_nginx,
        "client Some(127.0.0.1) https false script /where/am-i path_info None server ip Some(127.0.0.1)"
    );
    assert_eq!(through_dev, through_nginx);
}

#[tokio::test]
async fn a_body_over_the_bound_is_413_before_the_application_runs() {
    let nene = Nene::start_dev(&htdocs(), &[("NENE_SERVER__MAX_BODY_BYTES", "1K")]);
    let client = nene_test_support::http_client();
    let url = format!("http://{}/health", nene.addr);
    let fits = client
        .post(&url)
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
    let declared = client
        .post(&url)
        .body(vec![b'x'; 1025])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    // Chunked: no length to check first, the bound applies while reading.
    // Sent in one write: the answer may come (and the server close) before
    // a second write would have gone out.
    let mut stream = TcpStream::connect(&nene.addr).unwrap();
    let chunk = "y".repeat(512);
    let mut upload = String::from(
        "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for _ in 0..3 {
        upload.push_str(&format!("200\r\n{chunk}\r\n"));
    }
    upload.push_str("0\r\n\r\n");
    stream.write_all(upload.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Sends the head of a POST whose body is still to come, and its first
/// bytes: a request in flight.
fn begin_upload(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhalf"
    )
    .unwrap();
    stream
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_0() {
    let mut nene = Nene::start_dev(&htdocs(), &[("NENE_SERVER__DRAIN_TIMEOUT", "5s")]);
    let mut upload = begin_upload(&nene.addr);
    std::thread::sleep(std::time::Duration::from_millis(200));
    nene.signal(libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        nene.wait_exit(std::time::Duration::from_millis(10))
            .is_none(),
        "exited before the request finished"
    );
    write!(upload, "done").unwrap();
    let mut answer = String::new();
    upload.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
    let status = nene
        .wait_exit(std::time::Duration::from_secs(5))
        .expect("nene dev exits after draining");
    assert!(status.success(), "{status}");
}

#[test]
fn a_request_that_never_finishes_does_not_keep_it_running_past_the_drain_time() {
    let mut nene = Nene::start_dev(&htdocs(), &[("NENE_SERVER__DRAIN_TIMEOUT", "300ms")]);
    let _stuck = begin_upload(&nene.addr);
    std::thread::sleep(std::time::Duration::from_millis(200));
    nene.signal(libc::SIGINT);
    let status = nene
        .wait_exit(std::time::Duration::from_secs(5))
        .expect("nene dev exits at the drain time");
    assert!(status.success(), "{status}");
    nene.assert_logged("drain_timeout");
}

/// A handler that panics under `nene dev` answers 500, as under FastCGI,
/// and the server goes on serving (the connection is not simply dropped).
#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
    let app = Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async { panic!("boom") as &'static str }),
        )
        .route("/fine", get(|| async { "fine" }));
    let (dev, _dir) = InProcess::start_dev_app(app, &[]).await;
    let client = nene_test_support::http_client();
    let boom = client
        .get(format!("http://{}/boom", dev.addr))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(boom.status(), 500);
    let fine = client
        .get(format!("http://{}/fine", dev.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(fine.text().await.unwrap(), "fine");
}

/// `nene dev` routes on the same canonical path as nginx + FastCGI.
#[test]
fn dev_routes_encoded_dotted_and_index_php_paths_like_production() {
    let dev = Nene::start_dev(&htdocs(), &[]);
    let (status, health) = raw_get(&dev.addr, "/health");
    assert_eq!(status, 200);
    for target in ["/%68ealth", "/session/../health", "/index.php/health"] {
        assert_eq!(
            raw_get(&dev.addr, target),
            (200, health.clone()),
            "{target}"
        );
    }
    assert_eq!(raw_get(&dev.addr, "/session%2Fcounter").0, 400);
}

#[tokio::test]
async fn dotfiles_and_symlinks_out_of_htdocs_are_never_served() {
    let docroot = htdocs_with_assets();
    let root = docroot.path();
    std::fs::write(root.join(".env"), "DB_PASSWORD=hunter2\n").unwrap();
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), "[remote] hunter2\n").unwrap();
    std::fs::create_dir(root.join(".well-known")).unwrap();
    std::fs::write(root.join(".well-known/security.txt"), "Contact: a@b\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "hunter2 outside\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("elsewhere")).unwrap();
    // A link that stays inside htdocs is a file like any other.
    std::os::unix::fs::symlink(root.join("robots.txt"), root.join("robots-link.txt")).unwrap();
    let nene = Nene::start_dev(root, &[]);

    for path in [
        "/.env",
        "/.git/config",
        "/%2egit/config",
        "/assets/../.env",
        "/leak.txt",
        "/elsewhere/secret.txt",
    ] {
        let (status, body) = raw_get(&nene.addr, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("hunter2"), "{path}: {body}");
    }
    let (status, body) = raw_get(&nene.addr, "/.well-known/security.txt");
    assert_eq!((status, body.as_str()), (200, "Contact: a@b\n"));
    let (status, body) = raw_get(&nene.addr, "/robots-link.txt");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        std::fs::read_to_string(root.join("robots.txt")).unwrap()
    );
    // The application still answers everything else.
    assert_eq!(raw_get(&nene.addr, "/health").0, 200);
}

/// Whether the server closed `stream` (EOF, a reset, or an answer followed
/// by EOF) within `within`; sends `drip` every 100 ms meanwhile.
fn closed_within(stream: &mut TcpStream, drip: &[u8], within: std::time::Duration) -> bool {
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let deadline = std::time::Instant::now() + within;
    let mut buffer = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if stream.write_all(drip).is_err() {
            return true;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_dripping_client_is_cut_off_and_connections_are_capped() {
    let docroot = htdocs_with_assets();
    let nene = Nene::start_dev(
        docroot.path(),
        &[
            ("NENE_SERVER__RECEIVE_TIMEOUT", "1s"),
            ("NENE_SERVER__MAX_CONNECTIONS", "2"),
        ],
    );
    // The head of a request, one header line every 100 ms: never complete.
    let mut dripping = TcpStream::connect(&nene.addr).unwrap();
    dripping.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    assert!(
        closed_within(
            &mut dripping,
            b"X-Drip: a\r\n",
            std::time::Duration::from_secs(5)
        ),
        "a client dripping its request head was held past 5 s with a 1 s receive_timeout"
    );

    // Two connections that send nothing take both places; a third is
    // closed at once, unanswered.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _first = TcpStream::connect(&nene.addr).unwrap();
    let _second = TcpStream::connect(&nene.addr).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut third = TcpStream::connect(&nene.addr).unwrap();
    third
        .write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", nene.addr).as_bytes())
        .unwrap();
    third
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(
        wait_for_log(&nene.log, "server.max_connections").contains("closed one from"),
        "the refusal is logged"
    );
    // Once the idle two are timed out, the server answers again.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(raw_get(&nene.addr, "/health").0, 200);
}
