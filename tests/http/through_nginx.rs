//! The example application through a real nginx, as a user's browser sees it:
//! pages, JSON, 404s, static files, many requests, with nginx keeping its
//! FastCGI connections open (`fastcgi_keep_conn on`) and without.

use nene_test_support::{Nene, Nginx, http_client, nene_behind_nginx};

async fn serves_pages_json_404_and_static_files(keep_conn: bool) {
    let nene = Nene::start(&[]);
    let nginx = Nginx::start(&nene.upstream, keep_conn);

    let index = nginx.get("/").await;
    assert_eq!(index.status(), 200);
    assert!(
        index.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        index
            .text()
            .await
            .unwrap()
            .contains("<h1>nene example</h1>")
    );

    let health = nginx.get("/health").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["content-type"], "application/json");
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);

    let posted = nginx.post("/health", vec![b'x'; 100_000]).await;
    assert_eq!(posted.status(), 200);
    assert_eq!(posted.text().await.unwrap(), r#"{"status":"ok"}"#);

    let missing = nginx.get("/no/such/thing").await;
    assert_eq!(missing.status(), 404);
    let page_404 = std::fs::read_to_string(nene_test_support::htdocs().join("404.html")).unwrap();
    assert_eq!(missing.text().await.unwrap(), page_404);

    let robots = nginx.get("/robots.txt").await;
    assert_eq!(robots.status(), 200);
    let robots_file =
        std::fs::read_to_string(nene_test_support::htdocs().join("robots.txt")).unwrap();
    assert_eq!(robots.text().await.unwrap(), robots_file);
    // The static file never reached nene: only the front controller's
    // requests are in its access log.
    let log = nene_test_support::wait_for_log(&nene.log, "\"GET /health\" 200");
    assert!(
        !log.contains("robots.txt"),
        "nginx should serve static files:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_pages_json_404_and_static_files_with_kept_connections() {
    serves_pages_json_404_and_static_files(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_pages_json_404_and_static_files_without_kept_connections() {
    serves_pages_json_404_and_static_files(false).await;
}

async fn answers_300_sequential_and_200_concurrent_requests(keep_conn: bool) {
    let nene = Nene::start(&[]);
    let nginx = Nginx::start(&nene.upstream, keep_conn);
    let client = http_client();
    for i in 0..300 {
        let response = client.get(nginx.url("/health")).send().await.unwrap();
        assert_eq!(response.status(), 200, "sequential request {i}");
        assert_eq!(response.text().await.unwrap(), r#"{"status":"ok"}"#);
    }
    let mut tasks = Vec::new();
    for _ in 0..200 {
        // A client per task: 200 separate HTTP connections to nginx.
        let client = http_client();
        let url = nginx.url("/health");
        tasks.push(tokio::spawn(async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"status":"ok"}"#);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_300_sequential_and_200_concurrent_requests_with_kept_connections() {
    answers_300_sequential_and_200_concurrent_requests(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_300_sequential_and_200_concurrent_requests_without_kept_connections() {
    answers_300_sequential_and_200_concurrent_requests(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_nenes_bound_gets_413_and_the_next_request_is_served() {
    let (_nene, nginx) = nene_behind_nginx(&[("NENE_SERVER__MAX_BODY_BYTES", "1000")]);
    let too_big = nginx.post("/health", vec![b'x'; 5000]).await;
    assert_eq!(too_big.status(), 413);
    // nene's answer, not nginx's (whose own bound is 8m here).
    assert_eq!(too_big.text().await.unwrap(), "request body too large\n");
    let fits = nginx.post("/health", vec![b'x'; 1000]).await;
    assert_eq!(fits.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_method_gets_405() {
    let (_nene, nginx) = nene_behind_nginx(&[]);
    let response = http_client()
        .delete(nginx.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    // /health answers GET and POST (a probe may post).
    assert_eq!(response.headers()["allow"], "GET,HEAD,POST");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Method Not Allowed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_reaches_nene_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nene.sock");
    let nene = Nene::start_unix(&socket, &[("NENE_SERVER__SOCKET_MODE", "0666")]);
    let nginx = Nginx::start(&nene.upstream, true);
    let response = nginx.get("/health").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"status":"ok"}"#);
}

/// GET `target` through nginx exactly as written (an HTTP client would
/// normalise `..` itself); the status and the body.
fn raw_get(nginx: &Nginx, target: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
    write!(stream, "GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// One route, one path: encoded and unnormalised spellings reach the route
/// they name, PHP's front-controller URLs route as on the PHP site, and an
/// encoded slash or NUL is refused — so a prefix check in an application
/// cannot be walked around.
#[tokio::test]
async fn encoded_dotted_and_index_php_paths_route_to_one_canonical_path() {
    let (_nene, nginx) = nene_behind_nginx(&[]);
    let (status, health) = raw_get(&nginx, "/health");
    assert_eq!(status, 200);
    for target in [
        "/%68ealth",
        "/session/../health",
        "/session/%2e%2e/health",
        "//health",
        "/index.php/health",
        "/index.php/health?x=1",
    ] {
        assert_eq!(raw_get(&nginx, target), (200, health.clone()), "{target}");
    }
    let (status, home) = raw_get(&nginx, "/");
    assert_eq!(status, 200);
    assert_eq!(raw_get(&nginx, "/index.php"), (200, home.clone()));
    assert_eq!(raw_get(&nginx, "/index.php?x=1"), (200, home));
    for target in ["/session%2Fcounter", "/health%00"] {
        assert_eq!(raw_get(&nginx, target).0, 400, "{target}");
    }
}

/// nene's peak resident memory so far (`VmHWM`), in MiB.
fn peak_rss_mib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .expect("VmHWM in /proc status")
        / 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_and_fifty_8_mib_posts_at_once_keep_nenes_memory_bounded() {
    // The runtime spills each body to disk; the application's POST /health
    // drains it a chunk at a time instead of buffering it whole.
    let (nene, nginx) = nene_behind_nginx(&[]);
    let client = http_client();
    let body = bytes::Bytes::from(vec![b'x'; 8 * 1024 * 1024 - 1024]);
    let posts: Vec<_> = (0..150)
        .map(|_| {
            let request = client.post(nginx.url("/health")).body(body.clone());
            async move {
                request
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
            }
        })
        .collect();
    let statuses = futures::future::join_all(posts).await;
    let ok = statuses
        .iter()
        .filter(|status| matches!(status, Ok(200)))
        .count();
    assert_eq!(ok, 150, "{statuses:?}\n{}", nginx.error_log());
    let peak = peak_rss_mib(nene.pid());
    eprintln!("nene's peak RSS: {peak} MiB");
    assert!(
        peak < 100,
        "nene's peak RSS {peak} MiB for 150 concurrent 8 MiB bodies"
    );
}
