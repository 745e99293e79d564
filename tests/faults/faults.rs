//! Faults around nene that must cost no request, or only the requests that
//! depend on what failed: nginx reloading its configuration under load,
//! thousands of idle and slow connections, Redis killed under load, many
//! handlers that never return.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nene_test_support::fcgi_client::{
    FcgiClient, RESPONDER, begin, params, request, request_params,
};
use nene_test_support::in_process::InProcess;
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx, nene_behind_nginx, raise_open_file_limit, rss_kib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread")]
async fn an_nginx_reload_under_load_fails_no_request() {
    let (nene, nginx) = nene_behind_nginx(&[("NENE_ACCESS__LOG", "off")]);
    let running = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        // A new client connection per request: a request sent on a kept
        // client connection that the old worker is closing fails in any
        // HTTP client (browsers retry it); what matters here is the
        // nginx -> nene side, which must never answer 502.
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let url = nginx.url("/health");
        let running = running.clone();
        let answered = answered.clone();
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while running.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => failures.push(format!("status {}", response.status())),
                    Err(error) => failures.push(format!("{error:?}")),
                }
            }
            failures
        }));
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        nginx.reload();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    running.store(false, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(answered.load(Ordering::Relaxed) > 100);
    assert!(!nene.log_text().contains("WARN"), "{}", nene.log_text());
    let nginx_errors = nginx.error_log();
    assert!(!nginx_errors.contains("upstream"), "{nginx_errors}");
}

/// Connections that send nothing: nene keeps them until `idle_timeout`.
const IDLE_CONNECTIONS: usize = 1000;
/// Clients that send a request one byte per second.
const SLOW_CLIENTS: usize = 100;
/// `server.receive_timeout` for the slow-client test.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_slow_connections_neither_starve_nginx_nor_grow_memory() {
    raise_open_file_limit(4096);
    let nene = Nene::start(&[
        ("NENE_ACCESS__LOG", "off"),
        ("NENE_SERVER__RECEIVE_TIMEOUT", "3s"),
        ("NENE_SERVER__IDLE_TIMEOUT", "120s"),
    ]);
    let nginx = Nginx::start(&nene.upstream, true);
    let rss_before = rss_kib(nene.pid());

    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        idle.push(
            TcpStream::connect(&nene.addr)
                .await
                .expect("an idle connection"),
        );
    }
    // A slow client: the bytes of one request, one per second, until nene
    // closes the connection; returns how long nene let it dribble.
    let mut one_request = begin(1, RESPONDER, false);
    let pairs = request_params("GET", "/health");
    let pairs: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    one_request.extend(params(1, &pairs));
    let mut slow = Vec::new();
    for _ in 0..SLOW_CLIENTS {
        let addr = nene.addr.clone();
        let bytes = one_request.clone();
        slow.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.expect("a slow connection");
            let started = Instant::now();
            for byte in bytes.iter().cycle().take(30) {
                if stream.write_all(&[*byte]).await.is_err() {
                    return Some(started.elapsed());
                }
                let mut answer = [0u8; 64];
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                    Ok(Ok(_)) => panic!("nene answered a request it never fully received"),
                    Err(_) => {}
                }
            }
            None
        }));
    }

    // Meanwhile nginx's requests are served, every one.
    let client = nene_test_support::http_client();
    let mut served = 0;
    let until = Instant::now() + RECEIVE_TIMEOUT + Duration::from_secs(2);
    while Instant::now() < until {
        let response = client
            .get(nginx.url("/health"))
            .send()
            .await
            .expect("nginx answers");
        assert_eq!(response.status(), 200, "/health through nginx");
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_busy = rss_kib(nene.pid());

    let mut cut_after = Vec::new();
    for client in slow {
        let elapsed = client.await.unwrap().unwrap_or_else(|| {
            panic!("a slow client was never cut off (receive_timeout {RECEIVE_TIMEOUT:?})")
        });
        cut_after.push(elapsed);
    }
    cut_after.sort();
    let (first, last) = (cut_after[0], cut_after[cut_after.len() - 1]);
    eprintln!(
        "{IDLE_CONNECTIONS} idle + {SLOW_CLIENTS} slow connections: nene RSS {:.1} MiB \
         (before {:.1} MiB); slow clients cut after {first:.1?} .. {last:.1?}; \
         {served} requests through nginx meanwhile",
        rss_busy as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    assert!(
        first >= RECEIVE_TIMEOUT - Duration::from_millis(100),
        "a slow client was cut before receive_timeout: {first:?}"
    );
    assert!(
        last <= RECEIVE_TIMEOUT + Duration::from_secs(5),
        "a slow client was cut only after {last:?}"
    );
    assert!(rss_busy < 100 * 1024, "nene's RSS is {rss_busy} KiB");
    assert!(served > 10, "only {served} requests through nginx");

    // The idle connections are still open: nene neither dropped nor
    // answered them (idle_timeout is 120 s).
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await;
        assert!(
            read.is_err(),
            "an idle connection was closed or answered: {read:?}"
        );
    }
    // And nginx is still served with all of them held.
    let response = client.get(nginx.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!nene.log_text().contains("panic"), "{}", nene.log_text());
}

/// Concurrent clients sharing one hot session in the Redis-kill test.
const HOT_CLIENTS: usize = 6;

/// What one client of the hot session saw.
#[derive(Default)]
struct HotClientLog {
    ok: u64,
    unavailable: u64,
    /// Other statuses and transport errors.
    other: Vec<String>,
    /// The slowest answer that was not a 200.
    slowest_failure: Duration,
    /// When each 200 came back.
    ok_at: Vec<Instant>,
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_under_load_loses_no_acknowledged_write_and_nene_reconnects() {
    // AOF with an fsync per write: what Redis acknowledged survives its crash.
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let dsn = format!(
        "{}/0?timeout=500ms&connect_timeout=500ms&lock_ttl=3s&lock_wait=2s",
        redis.url()
    );
    let (nene, nginx) =
        nene_behind_nginx(&[("NENE_SESSION_DSN", &dsn), ("NENE_ACCESS__LOG", "off")]);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let cookie = format!("NENESESSID={}", browser.session_id().unwrap());

    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for _ in 0..HOT_CLIENTS {
        let (running, cookie, url) = (
            running.clone(),
            cookie.clone(),
            nginx.url("/session/counter"),
        );
        clients.push(tokio::spawn(async move {
            let client = nene_test_support::http_client();
            let mut log = HotClientLog::default();
            while running.load(Ordering::Relaxed) {
                let started = Instant::now();
                let sent = client.get(&url).header("cookie", &cookie).send().await;
                let took = started.elapsed();
                match sent.map(|response| response.status().as_u16()) {
                    Ok(200) => {
                        log.ok += 1;
                        log.ok_at.push(Instant::now());
                        continue;
                    }
                    Ok(503) => log.unavailable += 1,
                    Ok(status) => log.other.push(format!("status {status}")),
                    Err(error) => log.other.push(error.to_string()),
                }
                log.slowest_failure = log.slowest_failure.max(took);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            log
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.kill();
    // While Redis is gone, nene itself stays healthy.
    let client = nene_test_support::http_client();
    for _ in 0..5 {
        let health = client.get(nginx.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200, "/health while Redis is down");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::task::block_in_place(|| redis.restart());
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    running.store(false, Ordering::Relaxed);

    let (mut ok, mut unavailable, mut other) = (1u64, 0u64, Vec::new());
    let mut slowest_failure = Duration::ZERO;
    let mut first_ok_after_restart: Option<Instant> = None;
    for client in clients {
        let log = client.await.unwrap();
        ok += log.ok;
        unavailable += log.unavailable;
        other.extend(log.other);
        slowest_failure = slowest_failure.max(log.slowest_failure);
        if let Some(at) = log.ok_at.into_iter().find(|at| *at > restarted) {
            first_ok_after_restart = Some(first_ok_after_restart.map_or(at, |first| first.min(at)));
        }
    }
    let recovered_after = first_ok_after_restart
        .expect("no session request succeeded after Redis came back")
        .duration_since(restarted);
    let final_page = browser.get("/session/counter").await;
    assert_eq!(final_page.status, 200, "{}", final_page.body);
    let stored = final_page.json()["count"].as_u64().unwrap() - 1;
    eprintln!(
        "Redis SIGKILL under load: {ok} answered 200, {unavailable} answered 503, \
         slowest 503 {slowest_failure:.2?}; first 200 {recovered_after:.2?} after the restart; \
         counter {stored}"
    );
    assert!(other.is_empty(), "neither 200 nor 503: {other:?}");
    assert!(
        unavailable > 0,
        "killing Redis cost no request: was it killed?"
    );
    // Every request told it succeeded is counted. A write Redis applied
    // just before SIGKILL whose answer never arrived is a 503 that still
    // counted, so the counter may exceed the 200s by at most the requests
    // in flight at that moment.
    assert!(
        stored >= ok,
        "lost acknowledged writes: counter {stored}, {ok} answered 200"
    );
    assert!(
        stored <= ok + HOT_CLIENTS as u64,
        "counter {stored} but only {ok} answered 200"
    );
    // A 503 comes within the waits nene is configured with (the in-process
    // queue of this hot session, 10 s, and a command's timeouts), never a hang.
    assert!(
        slowest_failure < Duration::from_secs(15),
        "a 503 took {slowest_failure:?}"
    );
    assert!(recovered_after < Duration::from_secs(6));
    let log = nene.log_text();
    assert!(!log.contains("panic"), "{log}");
}

/// Requests stuck in a handler at once in the hung-handler test.
const HUNG_REQUESTS: usize = 60;

#[tokio::test(flavor = "multi_thread")]
async fn many_hung_handlers_get_504_and_do_not_starve_other_requests() {
    let (server, _dir) =
        InProcess::start_front_controller(&[("NENE_SERVER__REQUEST_TERMINATE_TIMEOUT", "2s")])
            .await;
    let started = Instant::now();
    let mut hung = Vec::new();
    for _ in 0..HUNG_REQUESTS {
        let addr = server.addr.clone();
        hung.push(tokio::spawn(async move {
            let mut client = FcgiClient::connect(&addr).await;
            client.send(&request(1, "GET", "/hang", b"", false)).await;
            let status = client.response(1).await.status();
            (status, started.elapsed())
        }));
    }
    // While all of them hang, other requests are answered at once.
    let mut answered = 0;
    while Instant::now() < started + Duration::from_millis(1500) {
        let mut client = FcgiClient::connect(&server.addr).await;
        client.send(&request(1, "GET", "/hello", b"", false)).await;
        let response = tokio::time::timeout(Duration::from_secs(5), client.response(1))
            .await
            .expect("/hello answered while handlers hang");
        assert_eq!(response.body_text(), "hello");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut slowest = Duration::ZERO;
    for request in hung {
        let (status, after) = request.await.unwrap();
        assert_eq!(status, 504);
        slowest = slowest.max(after);
    }
    eprintln!(
        "{HUNG_REQUESTS} hung handlers: all 504 by {slowest:.2?}; {answered} other requests answered meanwhile"
    );
    assert!(answered >= 5);
    assert!(slowest >= Duration::from_secs(2), "cut before the timeout");
    assert!(
        slowest < Duration::from_secs(10),
        "the last 504 took {slowest:?}"
    );
    // And the server has nothing left running.
    let mut client = FcgiClient::connect(&server.addr).await;
    client
        .send(&request(1, "GET", "/status?json", b"", false))
        .await;
    let status = client.response(1).await.body_text();
    assert!(
        status.contains(&format!("\"timed out requests\":{HUNG_REQUESTS}")),
        "{status}"
    );
}
