//! What only Redis sessions do, through a real nginx and a real
//! redis-server: the key contract of docs/decisions/0006 (`sess_{id}`, TTL =
//! gc_maxlifetime, DB from the DSN), sessions shared by two instances, the
//! commands Redis sees (group commit, nothing for hostile ids or routes
//! without a session), a stalled Redis, and a masked password. What every
//! backend does is in `contract.rs`.

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nene_test_support::browser::Browser;
use nene_test_support::fcgi_client::request_with_params;
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx};

struct Stack {
    nene: Nene,
    nginx: Nginx,
}

fn stack(dsn: &str, env: &[(&str, &str)]) -> Stack {
    let mut all = vec![("NENE_SESSION_DSN", dsn)];
    all.extend_from_slice(env);
    let nene = Nene::start(&all);
    let nginx = Nginx::start(&nene.upstream, true);
    Stack { nene, nginx }
}

/// A browser on `stack` whose first request counted 1.
async fn browser_that_counted_once(stack: &Stack) -> Browser {
    let mut browser = Browser::new(&stack.nginx.url(""));
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    browser
}

/// Two nene instances sharing `dsn`, round robin behind one nginx.
fn two_instances(dsn: &str) -> (Nene, Nene, Nginx) {
    let first = Nene::start(&[("NENE_SESSION_DSN", dsn)]);
    let second = Nene::start(&[("NENE_SESSION_DSN", dsn)]);
    let nginx = Nginx::start_balancing(vec![&first.upstream, &second.upstream]);
    (first, second, nginx)
}

/// Every command Redis receives, as `MONITOR` reports them.
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    fn start(redis: &RedisServer) -> Monitor {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        Monitor { lines }
    }

    /// Commands seen so far (minus MONITOR's own "+OK").
    fn commands(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(150));
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains('"'))
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_counter_counts_in_sess_id_with_the_ttl_of_gc_maxlifetime() {
    let redis = RedisServer::start();
    let stack = stack(&redis.url(), &[("NENE_SESSION__GC_MAXLIFETIME", "77")]);
    let mut browser = Browser::new(&stack.nginx.url(""));
    for expected in 1..=3 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["count"], expected);
    }
    let id = browser.session_id().unwrap();
    let mut db0 = redis.db(0);
    let key = format!("sess_{id}");
    assert_eq!(db0.get(&key).unwrap(), br#"{"count":3}"#.to_vec());
    let ttl = db0.ttl(&key);
    assert!(ttl > 0 && ttl <= 77, "TTL {ttl}");
    assert_eq!(
        db0.keys("*"),
        vec![key],
        "only the session key remains (locks released)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dsn_with_a_db_number_keeps_sessions_in_that_db() {
    let redis = RedisServer::start();
    let stack = stack(&format!("{}/3", redis.url()), &[]);
    let browser = browser_that_counted_once(&stack).await;
    let key = format!("sess_{}", browser.session_id().unwrap());
    assert!(redis.db(3).exists(&key));
    assert!(!redis.db(0).exists(&key));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_behind_one_upstream_share_sessions_through_redis() {
    let redis = RedisServer::start();
    let (first, second, nginx) = two_instances(&redis.url());
    let mut browser = nginx.browser();
    browser.post_form("/session/login", "user=dave").await;
    for _ in 0..6 {
        assert_eq!(browser.get("/session/whoami").await.json()["user"], "dave");
    }
    // Both instances answered some of those.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(first.log_text().contains("\"GET /session/whoami\" 200"));
    assert!(second.log_text().contains("\"GET /session/whoami\" 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_requests_of_one_session_pass_the_lock_on_and_share_writes() {
    let redis = RedisServer::start();
    let stack = stack(&redis.url(), &[]);
    let mut browser = browser_that_counted_once(&stack).await;
    let monitor = Monitor::start(&redis);
    assert_eq!(browser.hammer_counter(20, 5).await, 100);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 102);
    let commands = monitor.commands();
    let lock_takes = commands
        .iter()
        .filter(|c| c.contains("\"SET\"") && c.contains(".lock\"") && c.contains("\"NX\""))
        .count();
    // The release script deletes the lock (scripts run by SHA, but MONITOR
    // shows the commands they run).
    let releases = commands
        .iter()
        .filter(|c| c.contains("\"DEL\"") && c.contains(".lock\""))
        .count();
    let writes = commands
        .iter()
        .filter(|c| c.contains("\"SET\"") && !c.contains(".lock\""))
        .count();
    eprintln!("101 increments: {lock_takes} lock takes, {writes} writes");
    // Requests that finish while a write is in flight are stored together
    // by the next one (group commit); each still answered only once stored.
    assert!(
        writes < 95,
        "{writes} writes for 101 increments: writes are not grouped"
    );
    // 101 requests read the session; with 20 queued at a time most of them
    // start with the lock and data their predecessor handed over.
    assert!(
        lock_takes < 60,
        "{lock_takes} lock takes for 101 requests: the lock is not handed on"
    );
    // A SET NX that found the lock still held (its release was on its way)
    // counts as a take here too, so releases may be fewer, never more; and
    // no lock is left behind.
    assert!(
        releases >= 1 && releases <= lock_takes,
        "{releases} releases for {lock_takes} lock takes"
    );
    assert_eq!(redis.db(0).keys("*.lock"), Vec::<String>::new());
    let status = browser.get("/status?json").await;
    let hand_offs = status.json()["session lock hand-offs"].as_u64().unwrap();
    assert!(hand_offs + lock_takes as u64 >= 101, "{}", status.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_ids_never_reach_redis_as_keys() {
    let redis = RedisServer::start();
    let stack = stack(&redis.url(), &[]);
    let monitor = Monitor::start(&redis);
    let hostile: Vec<&[u8]> = vec![
        b"NENESESSID=",
        b"NENESESSID=*",
        b"NENESESSID=sess_*",
        b"NENESESSID=abc\r\nFLUSHALL",
        b"NENESESSID=abc\x00def",
        b"NENESESSID=0123456789abcdefghijklmnopqrstuvw",
        b"NENESESSID=0123456789abcdefghijklmnopqrst",
    ];
    for cookie in &hostile {
        let response = request_with_params(
            &stack.nene.addr,
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/session/whoami"),
                (b"HTTP_COOKIE", cookie),
            ],
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.body_text(), r#"{"user":null}"#);
    }
    // No session was started for any of them: nothing at all went to Redis.
    let commands = monitor.commands();
    assert!(commands.is_empty(), "{commands:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_never_touches_the_session_sends_nothing_to_redis() {
    let redis = RedisServer::start();
    let stack = stack(&redis.url(), &[]);
    let mut browser = Browser::new(&stack.nginx.url(""));
    browser.get("/session/counter").await;
    let monitor = Monitor::start(&redis);
    for _ in 0..5 {
        assert_eq!(browser.get("/health").await.status, 200);
    }
    assert!(monitor.commands().is_empty());
    // An unchanged session is refreshed, not rewritten (lazy_write).
    browser.get("/session/whoami").await;
    let commands = monitor.commands();
    assert!(
        commands
            .iter()
            .any(|c| c.contains("\"EXPIRE\"") || c.contains("\"PEXPIRE\"")),
        "{commands:?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("\"SET\"") && !c.contains(".lock")),
        "{commands:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_redis_gives_503_within_about_a_second_and_the_data_survives() {
    let redis = RedisServer::start();
    // Default timeouts: 500 ms per command.
    let stack = stack(&redis.url(), &[]);
    let mut browser = browser_that_counted_once(&stack).await;
    redis.pause(2500);
    let started = Instant::now();
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(page.headers["retry-after"], "1");
    assert_eq!(
        browser.get("/health").await.status,
        200,
        "routes without sessions keep working"
    );
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.json()["count"],
        2,
        "the stored count survived the stall"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dsn_password_never_reaches_the_log() {
    let redis = RedisServer::start_with(&["--requirepass", "pa55-word-xyz"]);
    let dsn = format!("redis://:pa55-word-xyz@127.0.0.1:{}/0", redis.port());
    let stack = stack(&dsn, &[]);
    browser_that_counted_once(&stack).await;
    let log = stack.nene.log_text();
    assert!(log.contains("redis://:***@127.0.0.1"), "{log}");
    assert!(!log.contains("pa55-word-xyz"), "{log}");
}
