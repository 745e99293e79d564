//! The Redis lock passed between nene instances, through real nginx and a
//! real redis-server: a request waiting for a lock another instance holds
//! learns of the release from a published notice instead of polling, still
//! gets the lock when the holder vanished without a notice, and two
//! instances hammering one session both get their turns.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::redis_server::RedisServer;
use common::{Nene, Nginx};

struct Stack {
    nene: Nene,
    nginx: Nginx,
}

fn stack(redis: &RedisServer) -> Stack {
    stack_with(redis, "")
}

fn stack_with(redis: &RedisServer, query: &str) -> Stack {
    let nene = Nene::start(&[("NENE_SESSION_DSN", &format!("{}{query}", redis.url()))]);
    let nginx = Nginx::start(&nene.upstream, true);
    Stack { nene, nginx }
}

/// How many times Redis ran `command` (scripts' own calls included).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    let redis::Value::BulkString(info) = redis.run(&["INFO", "commandstats"]) else {
        panic!("INFO is a bulk string");
    };
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// How many times Redis ran a script by its SHA (the lock-and-read script
/// is the only one nene sends that way).
fn script_calls(redis: &RedisServer) -> u64 {
    calls(redis, "evalsha")
}

/// A browser with a session, and the session's lock key.
async fn session(stack: &Stack) -> (Browser, String) {
    let mut browser = Browser::new(&stack.nginx.url(""));
    assert_eq!(browser.get("/session/counter").await.status, 200);
    let id = browser.session_id().expect("a session");
    (browser, format!("sess_{id}.lock"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_learns_of_a_published_release_instead_of_polling() {
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (mut browser, lock) = session(&stack).await;
    // Another instance holds the lock for two seconds.
    redis.run(&["SET", &lock, "another-instance", "PX", "30000"]);
    let before = script_calls(&redis);
    let published_before = calls(&redis, "publish");
    let waiting = tokio::spawn(async move { browser.get("/session/counter").await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = script_calls(&redis) - before;
    // That instance releases it the way nene does: delete and publish.
    redis.run(&["DEL", &lock]);
    redis.run(&["PUBLISH", &lock, ""]);
    let page = waiting.await.unwrap();
    assert_eq!(page.status, 200, "{}", stack.nene.log_text());
    assert_eq!(page.json()["count"], 2);
    // Polling every 50 ms would have run the lock script about 40 times in
    // two seconds; waiting for the notice, with the slow fallback poll
    // (250 ms), about 10.
    assert!(
        during <= 16,
        "{during} lock tries while waiting two seconds"
    );
    // nene's own release of the lock was published too (beside the test's).
    assert!(calls(&redis, "publish") >= published_before + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_contended_again_keeps_its_subscription() {
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (browser, lock) = session(&stack).await;
    for turn in 2..=4 {
        // Another instance holds the lock, then releases it as nene does
        // (sooner than the fallback poll's 250 ms).
        redis.run(&["SET", &lock, "another-instance", "PX", "30000"]);
        let tries_before = script_calls(&redis);
        let mut waiter = browser.clone();
        let waiting = tokio::spawn(async move { waiter.get("/session/counter").await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        redis.run(&["DEL", &lock]);
        redis.run(&["PUBLISH", &lock, ""]);
        let page = waiting.await.unwrap();
        assert_eq!(page.status, 200, "{}", stack.nene.log_text());
        assert_eq!(page.json()["count"], turn);
        if turn > 2 {
            // Subscribed already: one try finds the lock busy, the next
            // one (on the notice) takes it. A first wait needs a third,
            // right after subscribing.
            let tries = script_calls(&redis) - tries_before;
            assert!(tries <= 2, "{tries} lock tries on a subscribed session");
        }
    }
    // One SUBSCRIBE for the three waits, none undone in between: waiting
    // again on a session contended seconds ago costs no pub/sub round trip.
    assert_eq!(calls(&redis, "subscribe"), 1);
    assert_eq!(calls(&redis, "unsubscribe"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_released_without_a_notice_is_still_taken_by_the_fallback_poll() {
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (mut browser, lock) = session(&stack).await;
    // A holder that died (the lock expires) or phpredis (which does not
    // publish) frees the lock silently.
    redis.run(&["SET", &lock, "a-holder-that-died", "PX", "700"]);
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 200, "{}", stack.nene.log_text());
    assert_eq!(page.json()["count"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_hammering_one_session_both_get_turns_and_lose_nothing() {
    let redis = RedisServer::start();
    let first = stack(&redis);
    let second = stack(&redis);
    let (browser, _) = session(&first).await;
    let other = browser.with_base(&second.nginx.url(""));
    let (a, b) = tokio::join!(browser.hammer_counter(4, 25), other.hammer_counter(4, 25));
    assert_eq!(
        (a, b),
        (100, 100),
        "no request of either instance gave up waiting\n{}\n{}",
        first.nene.log_text(),
        second.nene.log_text()
    );
    let mut browser = browser;
    let page = browser.get("/session/counter").await;
    assert_eq!(page.json()["count"], 202);
}

/// `concurrency` copies of `browser` GET /session/counter until `until`;
/// returns the statuses seen.
async fn hammer_until(browser: &Browser, concurrency: usize, until: Instant) -> Vec<u16> {
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut browser = browser.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while Instant::now() < until {
                    statuses.push(browser.get("/session/counter").await.status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_with_a_busy_queue_still_passes_the_lock_to_the_other_in_time() {
    // Each instance always has requests of the session queued, so it could
    // pass the lock among its own for ever; it must release it within the
    // hand-off window (one second) so the other instance's waiter, which
    // gives up after three, gets its turn.
    let redis = RedisServer::start();
    let first = stack_with(&redis, "?lock_wait=3s");
    let second = stack_with(&redis, "?lock_wait=3s");
    let (browser, _) = session(&first).await;
    let other = browser.with_base(&second.nginx.url(""));
    let until = Instant::now() + Duration::from_secs(6);
    let (a, b) = tokio::join!(
        hammer_until(&browser, 8, until),
        hammer_until(&other, 8, until)
    );
    let ok = |statuses: &[u16]| statuses.iter().filter(|s| **s == 200).count();
    assert!(
        a.iter().chain(&b).all(|status| *status == 200),
        "no request gave up waiting: first {:?}, second {:?}\n{}",
        a.iter().filter(|s| **s != 200).collect::<Vec<_>>(),
        b.iter().filter(|s| **s != 200).collect::<Vec<_>>(),
        second.nene.log_text()
    );
    let (a, b) = (ok(&a), ok(&b));
    let total = a + b;
    assert!(
        a * 5 >= total && b * 5 >= total,
        "turns: first {a}, second {b}"
    );
}

/// A route that holds its session for `HELD` before changing it, and the
/// counter.
fn slow_app() -> axum::Router {
    use axum::routing::get;
    use nene::{Session, SessionError};
    async fn slow(session: Session) -> Result<&'static str, SessionError> {
        let n = session.get::<u64>("count").await?.unwrap_or(0);
        tokio::time::sleep(HELD).await;
        session.insert("count", n + 1).await?;
        Ok("slow")
    }
    async fn counter(session: Session) -> Result<String, SessionError> {
        let n = session.get::<u64>("count").await?.unwrap_or(0) + 1;
        session.insert("count", n).await?;
        Ok(n.to_string())
    }
    axum::Router::new()
        .route("/slow", get(slow))
        .route("/counter", get(counter))
}

/// How long `/slow` holds its session: past the hand-off window of a 2 s
/// lock (a quarter of it, 500 ms), within the default window (1 s).
const HELD: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_held_past_the_hand_off_window_is_released_not_passed_on() {
    // The next request of the session on this instance must take the lock
    // afresh instead of being handed one that other instances have been
    // kept from for longer than the window.
    let redis = RedisServer::start();
    let dsn = format!("{}?lock_ttl=2s", redis.url());
    let (server, _dir) =
        common::in_process::InProcess::start_app(slow_app(), &[("NENE_SESSION_DSN", &dsn)]).await;
    let nginx = Nginx::start(&server.addr, true);
    let mut browser = Browser::new(&nginx.url(""));
    assert_eq!(browser.get("/counter").await.body, "1");
    let mut first = browser.clone();
    let slow = tokio::spawn(async move { first.get("/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Queued behind /slow on this instance.
    assert_eq!(browser.get("/counter").await.body, "3");
    assert_eq!(slow.await.unwrap().body, "slow");
    // The counter waited here for /slow, then took the lock itself: /slow
    // held it past the window, so it was not handed on.
    let status = browser.get("/status?json").await.json();
    assert_eq!(status["session lock waits"], 1, "{status}");
    assert_eq!(status["session lock hand-offs"], 0, "{status}");
}
