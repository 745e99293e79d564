//! Redis Sentinel and durable writes, through a real nginx, a real primary
//! and replica and a real `redis-server --sentinel`: nene finds the primary
//! through the sentinel, follows a failover without a restart (a killed
//! primary, and a graceful `SENTINEL FAILOVER` that leaves nene talking to
//! a replica), and with `wait=1` never answers 200 for a write that a
//! failover could lose.

use std::time::{Duration, Instant};

use nene_test_support::browser::Browser;
use nene_test_support::free_port;
use nene_test_support::redis_sentinel::{SERVICE, SentinelSetup};
use nene_test_support::redis_server::RedisServer;

use crate::{Stack, stack};

/// How long a failover may take from the primary's death to nene serving
/// again: two seconds to detect it, then the election and promotion.
const FAILOVER_WITHIN: Duration = Duration::from_secs(60);

/// Lock bounds for the tests under load. A failover can leave a session's
/// lock behind on the promoted replica (taken or handed on by a script that
/// replicated, released by one that did not), and requests then wait out
/// `lock_wait` until the lock expires: one second of waiting, and a lock
/// that outlives its holder by five (the requests take milliseconds), keep
/// the bounds on an answer and on the test's length tight.
const LOCK_BOUNDS: &str = "&lock_wait=1s&lock_ttl=5s";

/// The longest a request may wait for the session's lock ([`LOCK_BOUNDS`]).
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// The counter after one more request, or the status that refused it.
pub(crate) async fn count(browser: &mut Browser) -> Result<u64, u16> {
    let page = browser.get("/session/counter").await;
    match page.status {
        200 => Ok(page.json()["count"].as_u64().expect("a count")),
        status => Err(status),
    }
}

/// Asserts that the next request counts to `expected`.
async fn assert_counts_to(browser: &mut Browser, stack: &Stack, expected: u64) {
    assert_eq!(
        count(browser).await,
        Ok(expected),
        "{}",
        stack.nene.log_text()
    );
}

/// Asserts that every refusal was a 503.
fn assert_only_503s(refusals: &[u16]) {
    assert!(refusals.iter().all(|status| *status == 503), "{refusals:?}");
}

/// Counts on until `wanted` requests in a row succeed, within
/// [`FAILOVER_WITHIN`]; returns the counts seen and the refusals.
async fn count_through_failover(
    browser: &mut Browser,
    stack: &Stack,
    setup: &SentinelSetup,
    wanted: usize,
) -> (Vec<u64>, Vec<u16>) {
    let deadline = Instant::now() + FAILOVER_WITHIN;
    let (mut counts, mut refusals) = (Vec::new(), Vec::new());
    let mut in_a_row = 0;
    while in_a_row < wanted {
        assert!(
            Instant::now() < deadline,
            "no {wanted} successes in a row within {FAILOVER_WITHIN:?}: counts {counts:?}, refusals {refusals:?}\n{}\nsentinel:\n{}",
            stack.nene.log_text(),
            setup.log()
        );
        match count(browser).await {
            Ok(n) => {
                counts.push(n);
                in_a_row += 1;
            }
            Err(status) => {
                refusals.push(status);
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    (counts, refusals)
}

/// No write that was answered 200 was lost: each count is above the one
/// before it. (A write answered 503 because too few replicas acknowledged it
/// is still on the primary, so a count may skip the refused requests —
/// never more than them.)
fn assert_no_acknowledged_write_lost(before: u64, counts: &[u64], refused: usize, stack: &Stack) {
    let mut last = before;
    for n in counts {
        assert!(
            *n > last,
            "counts after {before}: {counts:?}\n{}",
            stack.nene.log_text()
        );
        last = *n;
    }
    let requests = (counts.len() + refused) as u64;
    assert!(
        last <= before + requests,
        "{} requests after {before} cannot count to {last}: {counts:?}",
        requests
    );
}

/// What concurrent load on one hot session saw across a failover.
struct UnderLoad {
    /// 200s, and the count each returned.
    counts: Vec<u64>,
    /// Statuses other than 200.
    refusals: Vec<u16>,
    /// The slowest answer of all.
    slowest: Duration,
    /// From the promotion (as the sentinels report it) to the first 200 after it.
    promotion_to_first_200: Duration,
}

impl UnderLoad {
    /// Prints what the load saw, under `label`, with the final count and a
    /// `note` of the test's own.
    fn report(&self, label: &str, final_count: u64, note: &str) {
        eprintln!(
            "{label}: {} answered 200, {} refused, final count {final_count}, promotion to first 200 {:?}, slowest answer {:?}{note}",
            self.counts.len(),
            self.refusals.len(),
            self.promotion_to_first_200,
            self.slowest
        );
    }

    /// Asserts that every refusal was a 503 and every answer came within
    /// `limit`.
    fn assert_only_503s_and_answers_within(&self, limit: Duration) {
        assert_only_503s(&self.refusals);
        assert!(self.slowest < limit, "{:?}", self.slowest);
    }
}

/// When an answer came, what it was, and how long it took.
type Answer = (Instant, Result<u64, u16>, Duration);

/// Eight browsers of one session count on while the primary is killed;
/// `after_promotion` runs once the sentinels name the replica (e.g. bring
/// the old node back). Stops after two seconds of 200s following it.
async fn kill_the_primary_under_load(
    setup: &mut SentinelSetup,
    browser: &Browser,
    after_promotion: impl FnOnce(&mut SentinelSetup),
) -> UnderLoad {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (mut browser, stop, seen) = (browser.clone(), stop.clone(), seen.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let outcome = count(&mut browser).await;
                    seen.lock()
                        .unwrap()
                        .push((Instant::now(), outcome, started.elapsed()));
                    if outcome.is_err() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    setup.primary.kill();
    let deadline = Instant::now() + FAILOVER_WITHIN;
    while setup.primary_port() != Some(setup.replica.port()) {
        assert!(Instant::now() < deadline, "no failover: {}", setup.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let promoted_at = Instant::now();
    after_promotion(setup);
    // Until two seconds of answers after the first 200 following the promotion.
    let first_200 = loop {
        assert!(Instant::now() < deadline, "no 200 after the promotion");
        let first = seen
            .lock()
            .unwrap()
            .iter()
            .find(|(at, outcome, _)| *at > promoted_at && outcome.is_ok())
            .map(|(at, _, _)| *at);
        if let Some(first) = first {
            break first;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    UnderLoad {
        counts: seen
            .iter()
            .filter_map(|(_, outcome, _)| outcome.ok())
            .collect(),
        refusals: seen
            .iter()
            .filter_map(|(_, outcome, _)| outcome.err())
            .collect(),
        slowest: seen
            .iter()
            .map(|(_, _, took)| *took)
            .max()
            .unwrap_or_default(),
        promotion_to_first_200: first_200 - promoted_at,
    }
}

/// A primary and a replica behind sentinels, nene (its DSN's query `query`
/// and [`LOCK_BOUNDS`]) and nginx in front, and a browser whose first
/// request counted 1.
async fn sentinels_and_a_first_count(query: &str) -> (SentinelSetup, Stack, Browser) {
    let setup = SentinelSetup::start();
    let stack = stack(&setup.dsn(&format!("{query}{LOCK_BOUNDS}")));
    let mut browser = stack.browser();
    assert_counts_to(&mut browser, &stack, 1).await;
    (setup, stack, browser)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_wait_a_primary_killed_under_load_loses_no_acknowledged_write() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let (mut setup, stack, mut browser) = sentinels_and_a_first_count(
        "?wait=1&wait_timeout=500ms&timeout=500ms&connect_timeout=500ms",
    )
    .await;
    // With one replica, the promoted one has none to acknowledge writes
    // until the old node is back, as its replica.
    let load = kill_the_primary_under_load(&mut setup, &browser, |setup| {
        let promoted = setup.replica.port();
        setup.primary.restart_as_replica_of(promoted);
    })
    .await;
    // The count now (after 503s, if the sentinels are still at work).
    let (counts, final_refusals) = count_through_failover(&mut browser, &stack, &setup, 1).await;
    let after = counts[0];
    let acknowledged = load.counts.len() as u64;
    load.report(
        "wait=1",
        after,
        " (the promotion includes bringing the old node back as a replica)",
    );
    // Never a hang: every answer within the lock wait, the command bounds
    // (500 ms to connect, 500 ms for the command, 500 ms for WAIT) and some
    // slack.
    load.assert_only_503s_and_answers_within(LOCK_WAIT + Duration::from_secs(4));
    // Every 200 is one increment in the final count (the counts from 1 on,
    // plus this last request); refused writes may be in it too, never more.
    assert!(
        after > acknowledged + 1,
        "{after} after {acknowledged} acknowledged increments\n{}\nsentinels:\n{}\nfirst primary:\n{}\nreplica:\n{}",
        stack.nene.log_text(),
        setup.log(),
        setup.primary.log(),
        setup.replica.log()
    );
    assert!(after <= acknowledged + (load.refusals.len() + final_refusals.len()) as u64 + 2);
    assert!(load.counts.iter().all(|n| *n < after));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_wait_a_primary_killed_under_load_is_followed_without_a_restart() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let (mut setup, _stack, mut browser) =
        sentinels_and_a_first_count("?timeout=500ms&connect_timeout=500ms").await;
    let load = kill_the_primary_under_load(&mut setup, &browser, |_| {}).await;
    let after = count(&mut browser)
        .await
        .expect("a count after the failover");
    let acknowledged = load.counts.len() as u64;
    let lost = (acknowledged + 2).saturating_sub(after);
    load.report(
        "no wait",
        after,
        &format!(", acknowledged increments lost {lost}"),
    );
    load.assert_only_503s_and_answers_within(LOCK_WAIT + Duration::from_secs(3));
    // Served by the promoted replica, with nobody restarting anything.
    assert!(!load.counts.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_failover_that_leaves_nene_on_a_replica_is_followed_without_a_readonly_reaching_a_request()
 {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let setup = SentinelSetup::start();
    let stack = stack(&setup.dsn("?wait=1&wait_timeout=1s"));
    let mut browser = stack.browser();
    for expected in 1..=5 {
        assert_counts_to(&mut browser, &stack, expected).await;
    }
    // The sentinel promotes the replica and turns the old primary into a
    // replica; nene's open connection still goes to the old one.
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}", setup.sentinel_port())).unwrap();
    let mut connection = client.get_connection().unwrap();
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(SERVICE)
        .query(&mut connection)
        .expect("SENTINEL FAILOVER");
    let deadline = Instant::now() + FAILOVER_WITHIN;
    while setup.primary_port() != Some(setup.replica.port()) {
        assert!(Instant::now() < deadline, "no failover: {}", setup.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Wait until the old primary has been turned into a replica, so nene's
    // next write there is refused with READONLY.
    while !matches!(
        setup.primary.run(&["ROLE"]),
        redis::Value::Array(ref role) if role.first() == Some(&redis::Value::BulkString(b"slave".to_vec()))
    ) {
        assert!(
            Instant::now() < deadline,
            "the old primary was never demoted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (counts, refusals) = count_through_failover(&mut browser, &stack, &setup, 5).await;
    assert_no_acknowledged_write_lost(5, &counts, refusals.len(), &stack);
    // Refusals while the demoted primary resyncs as the new one's replica
    // (no replica to acknowledge writes) are 503s; a READONLY from the old
    // primary is never one of them: it is retried on the new primary.
    assert_only_503s(&refusals);
    let log = stack.nene.log_text();
    assert!(
        !log.lines()
            .any(|line| line.contains("session unavailable") && line.contains("READONLY")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_answers_503_when_no_replica_acknowledges_and_the_write_stays_on_the_primary() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let stack = stack(&format!("{}?wait=1&wait_timeout=100ms", redis.url()));
    let mut browser = stack.browser();
    let started = Instant::now();
    assert_eq!(count(&mut browser).await, Err(503));
    assert!(started.elapsed() >= Duration::from_millis(100));
    let log = stack.nene.log_text();
    assert!(
        log.contains("0 of the 1 replicas `wait` asks for acknowledged it"),
        "{log}"
    );
    // Redis cannot take a write back: it is on the primary.
    let keys = redis.db(0).keys("sess_*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        !keys[0].ends_with(".lock"),
        "the lock was released: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_with_a_replica_answers_once_the_replica_has_the_write() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(primary.run(&["WAIT", "1", "100"]), redis::Value::Int(1)) {
        assert!(Instant::now() < deadline, "the replica never synced");
    }
    let stack = stack(&format!("{}?wait=1&wait_timeout=2s", primary.url()));
    let mut browser = stack.browser();
    for expected in 1..=3 {
        assert_counts_to(&mut browser, &stack, expected).await;
        let id = browser.session_id().expect("a session");
        let stored = replica
            .db(0)
            .get(&format!("sess_{id}"))
            .expect("on the replica");
        assert!(
            String::from_utf8_lossy(&stored).contains(&format!("\"count\":{expected}")),
            "{}",
            String::from_utf8_lossy(&stored)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sentinel_answering_is_a_503_naming_the_service_and_the_sentinels() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let port = free_port();
    let stack = stack(&format!(
        "redis+sentinel://127.0.0.1:{port}/{SERVICE}?connect_timeout=200ms&sentinel_password=hunter2"
    ));
    let mut browser = stack.browser();
    assert_eq!(count(&mut browser).await, Err(503));
    let log = stack.nene.log_text();
    assert!(
        log.contains(&format!("no sentinel named the primary of `{SERVICE}`")),
        "{log}"
    );
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    // The application itself is unaffected.
    assert_eq!(browser.get("/health").await.status, 200);
}
