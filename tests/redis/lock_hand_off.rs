//! The Redis lock passed between nene instances, through real nginx and a
//! real redis-server: a request waiting for a lock another instance holds
//! learns of the release from a published notice instead of polling, still
//! gets the lock when the holder vanished without a notice, and two
//! instances hammering one session both get their turns.

use std::time::{Duration, Instant};

use nene_test_support::browser::{Browser, Page};
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx, nene_behind_nginx};

use crate::{assert_counted, count_until};

struct Stack {
    nene: Nene,
    nginx: Nginx,
}

fn stack(redis: &RedisServer) -> Stack {
    stack_with(redis, "")
}

fn stack_with(redis: &RedisServer, query: &str) -> Stack {
    stack_at(&format!("{}{query}", redis.url()))
}

/// nene with its sessions at `dsn`, behind nginx.
fn stack_at(dsn: &str) -> Stack {
    let (nene, nginx) = nene_behind_nginx(&[("NENE_SESSION_DSN", dsn)]);
    Stack { nene, nginx }
}

/// How many times Redis ran a script by its SHA: nene's lock tries and
/// its lock releases.
fn script_calls(redis: &RedisServer) -> u64 {
    redis.calls("evalsha")
}

/// SHA-1 in hex, as Redis computes it (the oracle for nene's names).
fn sha1_by_redis(redis: &RedisServer, text: &str) -> String {
    string(redis.run(&["EVAL", "return redis.sha1hex(ARGV[1])", "0", text])).expect("a hash")
}

/// The channel releases of `lock` are published on: no session id in it.
fn channel(redis: &RedisServer, lock: &str) -> String {
    format!("sess_released:{}", sha1_by_redis(redis, lock))
}

/// Takes `lock` as another instance would, for 30 s.
fn hold_as_another_instance(redis: &RedisServer, lock: &str) {
    redis.run(&["SET", lock, "another-instance", "PX", "30000"]);
}

/// Releases `lock` the way nene does: delete it and publish the release.
fn release_as_nene_does(redis: &RedisServer, lock: &str) {
    redis.run(&["DEL", lock]);
    redis.run(&["PUBLISH", &channel(redis, lock), ""]);
}

/// A copy of `browser` requesting `/session/counter` in a task of its own.
fn count_in_the_background(browser: &Browser) -> tokio::task::JoinHandle<Page> {
    let mut waiter = browser.clone();
    tokio::spawn(async move { waiter.get("/session/counter").await })
}

/// A browser with a session through `first`, one of the same session
/// through `second`, and the session's lock key.
async fn session_on_both(first: &Stack, second: &Stack) -> (Browser, Browser, String) {
    let (browser, lock) = session(first).await;
    let other = browser.with_base(&second.nginx.url(""));
    (browser, other, lock)
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
    hold_as_another_instance(&redis, &lock);
    let before = script_calls(&redis);
    let published_before = redis.calls("publish");
    let waiting = tokio::spawn(async move { browser.get("/session/counter").await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = script_calls(&redis) - before;
    // That instance releases it the way nene does: delete and publish.
    release_as_nene_does(&redis, &lock);
    assert_counted(waiting.await.unwrap(), &stack.nene, 2);
    // Polling every 50 ms would have run the lock script about 40 times in
    // two seconds; waiting for the notice, with the slow fallback poll
    // (250 ms), about 10.
    assert!(
        during <= 16,
        "{during} lock tries while waiting two seconds"
    );
    // nene's own release of the lock was published too (beside the test's).
    assert!(redis.calls("publish") >= published_before + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_contended_again_keeps_its_subscription() {
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (browser, lock) = session(&stack).await;
    for turn in 2..=4 {
        // Another instance holds the lock, then releases it as nene does
        // (sooner than the fallback poll's 250 ms).
        hold_as_another_instance(&redis, &lock);
        let scripts_before = script_calls(&redis);
        let waiting = count_in_the_background(&browser);
        tokio::time::sleep(Duration::from_millis(150)).await;
        release_as_nene_does(&redis, &lock);
        assert_counted(waiting.await.unwrap(), &stack.nene, turn);
        if turn > 2 {
            // Subscribed already: one try finds the lock busy, the next
            // one (on the notice) takes it, and the release. A first wait
            // needs another try, right after subscribing.
            let scripts = script_calls(&redis) - scripts_before;
            assert!(
                scripts <= 3,
                "{scripts} lock tries and releases on a subscribed session"
            );
        }
    }
    // One SUBSCRIBE for the three waits, none undone in between: waiting
    // again on a session contended seconds ago costs no pub/sub round trip.
    assert_eq!(redis.calls("subscribe"), 1);
    assert_eq!(redis.calls("unsubscribe"), 0);
    // Another session's first wait, on the connection already open,
    // subscribes to its own channel (or it would hear nothing and poll).
    let (other, other_lock) = session(&stack).await;
    hold_as_another_instance(&redis, &other_lock);
    let waiting = count_in_the_background(&other);
    tokio::time::sleep(Duration::from_millis(150)).await;
    release_as_nene_does(&redis, &other_lock);
    assert_eq!(waiting.await.unwrap().json()["count"], 2);
    assert_eq!(redis.calls("subscribe"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_released_without_a_notice_is_still_taken_by_the_fallback_poll() {
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (mut browser, lock) = session(&stack).await;
    // A holder that died (the lock expires) or phpredis (which does not
    // publish) frees the lock silently.
    redis.run(&["SET", &lock, "a-holder-that-died", "PX", "700"]);
    assert_counted(browser.get("/session/counter").await, &stack.nene, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_hammering_one_session_both_get_turns_and_lose_nothing() {
    let redis = RedisServer::start();
    let (first, second) = (stack(&redis), stack(&redis));
    let (browser, other, _) = session_on_both(&first, &second).await;
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
    let answers = count_until(browser, concurrency, until).await;
    answers.into_iter().map(|(status, _)| status).collect()
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
    let (browser, other, _) = session_on_both(&first, &second).await;
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

/// An application whose `/slow` (answers "slow") and `/hold` (answers the
/// new count) hold their session for `held` before counting, and the
/// counter.
fn holding_app(held: Duration) -> axum::Router {
    use axum::routing::get;
    use nene::{Session, SessionError};
    async fn count_after(session: &Session, held: Duration) -> Result<u64, SessionError> {
        let n = session.get::<u64>("count").await?.unwrap_or(0) + 1;
        tokio::time::sleep(held).await;
        session.insert("count", n).await?;
        Ok(n)
    }
    axum::Router::new()
        .route(
            "/slow",
            get(move |session: Session| async move {
                count_after(&session, held).await.map(|_| "slow")
            }),
        )
        .route(
            "/hold",
            get(move |session: Session| async move {
                count_after(&session, held).await.map(|n| n.to_string())
            }),
        )
        .route(
            "/counter",
            get(|session: Session| async move {
                count_after(&session, Duration::ZERO)
                    .await
                    .map(|n| n.to_string())
            }),
        )
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
    let (server, _dir) = nene_test_support::in_process::InProcess::start_app(
        holding_app(HELD),
        &[("NENE_SESSION_DSN", &dsn)],
    )
    .await;
    let nginx = Nginx::start(&server.addr, true);
    let mut browser = nginx.browser();
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

/// The Unix time a minute from now, in milliseconds: a waiter's moment
/// that has not come yet.
fn a_minute_from_now_in_ms() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (now.as_millis() + 60_000).to_string()
}

/// The session's waiters key (scripts.rs: requests of other instances that
/// asked to be handed the lock).
fn waiters(lock: &str) -> String {
    format!("{lock}.waiters")
}

fn string(value: redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => Some(String::from_utf8(bytes).expect("UTF-8")),
        redis::Value::Nil => None,
        other => panic!("not a string: {other:?}"),
    }
}

/// The members of a sorted set.
fn members(redis: &RedisServer, key: &str) -> Vec<String> {
    match redis.run(&["ZRANGE", key, "0", "-1"]) {
        redis::Value::Array(items) => items.into_iter().filter_map(string).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// Until `check` holds (at most five seconds).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < until, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_handed_the_lock_takes_it_and_reads_the_session_as_the_holder_left_it() {
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (browser, lock) = session(&stack).await;
    let session_key = lock.trim_end_matches(".lock").to_string();
    // Another instance holds the lock.
    hold_as_another_instance(&redis, &lock);
    let waiting = count_in_the_background(&browser);
    // The waiting request registers under its lock token.
    let mut registered = Vec::new();
    eventually("the waiter registers", || {
        registered = members(&redis, &waiters(&lock));
        registered.len() == 1
    })
    .await;
    let token = registered.remove(0);
    // The holder stores count 41 and hands the lock on as nene's release
    // does: the lock set to the waiter's token, the message naming the
    // waiter by its token's hash (never the token, never the session).
    let stored = string(redis.run(&["GET", &session_key])).expect("the session is stored");
    let changed = stored.replace("\"count\":1", "\"count\":41");
    assert_ne!(changed, stored, "the session holds the count: {stored}");
    redis.run(&["SET", &session_key, &changed]);
    redis.run(&["SET", &lock, &token, "PX", "2000"]);
    redis.run(&[
        "PUBLISH",
        &channel(&redis, &lock),
        &sha1_by_redis(&redis, &token),
    ]);
    let page = waiting.await.unwrap();
    assert_eq!(page.status, 200, "{}", stack.nene.log_text());
    // 42: it read the session the holder left.
    assert_eq!(page.json()["count"], 42);
    // It released the lock it was handed, and is no waiter any more.
    assert_eq!(redis.run(&["EXISTS", &lock]), redis::Value::Int(0));
    assert!(members(&redis, &waiters(&lock)).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_hands_the_lock_to_a_registered_waiter_and_skips_one_that_gave_up() {
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (mut browser, lock) = session(&stack).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut subscriber = client.get_connection().unwrap();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe(channel(&redis, &lock)).unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let far = a_minute_from_now_in_ms();
    // Two waiters of other instances: one that gave up a second ago (its
    // instance may be gone), one still waiting.
    redis.run(&[
        "ZADD",
        &waiters(&lock),
        "1000",
        "gave-up",
        &far,
        "still-waiting",
    ]);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    // The release named the live waiter, by its token's hash alone.
    let message: String = pubsub.get_message().unwrap().get_payload().unwrap();
    assert_eq!(message, sha1_by_redis(&redis, "still-waiting"));
    assert_eq!(
        string(redis.run(&["GET", &lock])).as_deref(),
        Some("still-waiting")
    );
    assert!(members(&redis, &waiters(&lock)).is_empty());
    // That waiter's release frees the session for the next request.
    redis.run(&["DEL", &lock]);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 3);
    // With only a waiter that gave up, the release frees the lock.
    redis.run(&["ZADD", &waiters(&lock), "1000", "gave-up"]);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 4);
    assert_eq!(redis.run(&["EXISTS", &lock]), redis::Value::Int(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_reading_every_channel_learns_no_session_id_token_or_data() {
    // Any client allowed to subscribe (on Redis 6's defaults, every client)
    // reads every channel: while two instances hand one session's lock back
    // and forth, what it reads must not let it take over the session (its
    // id), write under its lock (a token) or read it (its data).
    let redis = RedisServer::start();
    let (first, second) = (stack(&redis), stack(&redis));
    let (browser, other, lock) = session_on_both(&first, &second).await;
    let id = browser.session_id().expect("a session");

    let client = redis::Client::open(redis.url()).unwrap();
    let mut eavesdropper = client.get_connection().unwrap();
    let heard = std::thread::spawn(move || {
        let mut pubsub = eavesdropper.as_pubsub();
        pubsub.psubscribe("*").unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut heard = Vec::new();
        while let Ok(message) = pubsub.get_message() {
            let payload: Vec<u8> = message.get_payload().unwrap();
            heard.push((message.get_channel_name().to_string(), payload));
        }
        heard
    });
    // Lock tokens as Redis sees them while the instances take turns.
    let mut tokens = std::collections::HashSet::new();
    let watching = async {
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Some(token) = string(redis.run(&["GET", &lock])) {
                tokens.insert(token);
            }
            tokens.extend(members(&redis, &waiters(&lock)));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let until = Instant::now() + Duration::from_secs(3);
    let ((a, b), ()) = tokio::join!(
        async {
            tokio::join!(
                hammer_until(&browser, 4, until),
                hammer_until(&other, 4, until)
            )
        },
        watching
    );
    assert!(a.iter().chain(&b).all(|status| *status == 200));
    let heard = heard.join().unwrap();

    let released_on = channel(&redis, &lock);
    let hand_offs = heard
        .iter()
        .filter(|(_, payload)| !payload.is_empty())
        .count();
    assert!(
        hand_offs >= 10 && !tokens.is_empty(),
        "the instances handed the lock on {hand_offs} times ({} messages, {} tokens seen)",
        heard.len(),
        tokens.len()
    );
    for (name, payload) in &heard {
        assert_eq!(name, &released_on, "a release on another channel");
        let payload = String::from_utf8(payload.clone()).expect("text");
        assert!(
            payload.is_empty()
                || (payload.len() == 40 && payload.bytes().all(|b| b.is_ascii_hexdigit())),
            "a message other than a release or a waiter's hash: {payload:?}"
        );
        for secret in tokens.iter().map(String::as_str).chain([id.as_str()]) {
            assert!(!name.contains(secret) && !payload.contains(secret));
        }
        assert!(!payload.contains("count"), "session data: {payload}");
    }
}

/// The Redis ACL rule the README gives for nene's own user.
const README_ACL: &str = "~sess_* resetchannels &sess_released:* +@read +@write +@scripting +time +publish +subscribe +unsubscribe +ping +wait";

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_work_under_the_acl_the_readme_gives() {
    let redis = RedisServer::start();
    let mut rule = vec!["ACL", "SETUSER", "nene", "on", ">s3cret"];
    rule.extend(README_ACL.split(' '));
    redis.run(&rule);
    let user_query = format!("redis://nene:s3cret@127.0.0.1:{}", redis.port());
    let (first, second) = (stack_at(&user_query), stack_at(&user_query));
    let (browser, other, lock) = session_on_both(&first, &second).await;
    let until = Instant::now() + Duration::from_secs(2);
    let (a, b) = tokio::join!(
        hammer_until(&browser, 4, until),
        hammer_until(&other, 4, until)
    );
    assert!(
        a.iter().chain(&b).all(|status| *status == 200),
        "{}",
        first.nene.log_text()
    );
    // Releases were handed between the instances (pub/sub and the waiters
    // key allowed), and Redis refused nothing: no command, key or channel.
    assert!(redis.calls("subscribe") >= 1);
    assert_eq!(redis.run(&["ACL", "LOG"]), redis::Value::Array(vec![]));
    assert_eq!(redis.run(&["EXISTS", &lock]), redis::Value::Int(0));
    // The rule is tight enough to matter: a channel outside it is refused.
    let as_nene = redis::Client::open(user_query.as_str()).unwrap();
    let mut as_nene = as_nene.get_connection().unwrap();
    let refused: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg("other")
        .arg("x")
        .query(&mut as_nene);
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_that_gives_up_withdraws() {
    let redis = RedisServer::start();
    let stack = stack_with(&redis, "?lock_wait=400ms");
    let (mut browser, lock) = session(&stack).await;
    hold_as_another_instance(&redis, &lock);
    // First a wait that registers (the channel is subscribed on it), then
    // one that gives up registered.
    for _ in 0..2 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 503, "{}", stack.nene.log_text());
    }
    eventually("the waiter that gave up is withdrawn", || {
        members(&redis, &waiters(&lock)).is_empty()
    })
    .await;
    // The holder's lock was left alone.
    assert_eq!(
        string(redis.run(&["GET", &lock])).as_deref(),
        Some("another-instance")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_forgot_the_scripts_still_stores_and_unlocks() {
    // The release goes by the script's SHA; a Redis that restarted or ran
    // SCRIPT FLUSH refuses it, and nene loads the script and sends the
    // write and the release again.
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (mut browser, lock) = session(&stack).await;
    for count in 2..=3 {
        redis.run(&["SCRIPT", "FLUSH"]);
        assert_counted(browser.get("/session/counter").await, &stack.nene, count);
        assert_eq!(redis.run(&["EXISTS", &lock]), redis::Value::Int(0));
    }
}

/// How many times Redis refused `command` (an ACL denial counts).
fn rejected(redis: &RedisServer, command: &str) -> u64 {
    let redis::Value::BulkString(info) = redis.run(&["INFO", "commandstats"]) else {
        panic!("INFO is a bulk string");
    };
    String::from_utf8_lossy(&info)
        .lines()
        .find(|line| line.starts_with(&format!("cmdstat_{command}:")))
        .and_then(|line| line.split("rejected_calls=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_refuses_pub_sub_is_asked_again_only_after_a_second() {
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (browser, lock) = session(&stack).await;
    // nene's user may not subscribe (a managed Redis, a strict ACL).
    redis.run(&["ACL", "SETUSER", "default", "-subscribe"]);
    let wait_once = |count: u64| {
        let (redis, lock, browser) = (&redis, lock.clone(), &browser);
        async move {
            hold_as_another_instance(redis, &lock);
            let waiting = count_in_the_background(browser);
            tokio::time::sleep(Duration::from_millis(150)).await;
            redis.run(&["DEL", &lock]);
            // Without notices the waiter polls, and still gets its turn.
            assert_eq!(waiting.await.unwrap().json()["count"], count);
        }
    };
    wait_once(2).await;
    assert_eq!(rejected(&redis, "subscribe"), 1);
    // Right after, a wait does not try again.
    wait_once(3).await;
    assert_eq!(rejected(&redis, "subscribe"), 1);
    // A second later one does, on a new connection.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    wait_once(4).await;
    assert_eq!(rejected(&redis, "subscribe"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_handed_to_a_waiter_that_vanished_frees_the_session_after_its_claim() {
    // A waiter of another instance registered, then its instance died: the
    // release hands it the lock all the same (its moment has not come), and
    // the session must not stay locked for a whole lock_ttl (30 s).
    let redis = RedisServer::start();
    let stack = stack(&redis);
    let (mut browser, lock) = session(&stack).await;
    let far = a_minute_from_now_in_ms();
    redis.run(&["ZADD", &waiters(&lock), &far, "vanished"]);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    assert_eq!(
        string(redis.run(&["GET", &lock])).as_deref(),
        Some("vanished")
    );
    let redis::Value::Int(claim) = redis.run(&["PTTL", &lock]) else {
        panic!("PTTL is an integer");
    };
    assert!(
        claim > 0 && claim <= 2000,
        "handed under a claim: {claim} ms"
    );
    // The next request waits out the claim, not lock_ttl or lock_wait (10 s).
    let started = Instant::now();
    assert_counted(browser.get("/session/counter").await, &stack.nene, 3);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Well past the claim a lock handed on comes under (two seconds).
const HELD_PAST_CLAIM: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread")]
async fn a_request_handed_the_lock_keeps_it_past_the_claim_while_at_work() {
    use nene_test_support::in_process::InProcess;
    let redis = RedisServer::start();
    let dsn = [("NENE_SESSION_DSN", redis.url())];
    let dsn: Vec<(&str, &str)> = dsn.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (first, _first_dir) = InProcess::start_app(holding_app(HELD_PAST_CLAIM), &dsn).await;
    let (second, _second_dir) = InProcess::start_app(holding_app(HELD_PAST_CLAIM), &dsn).await;
    let (first_nginx, second_nginx) = (
        Nginx::start(&first.addr, true),
        Nginx::start(&second.addr, true),
    );
    let mut on_first = Browser::new(&first_nginx.url(""));
    assert_eq!(on_first.get("/counter").await.body, "1");
    let on_second = on_first.with_base(&second_nginx.url(""));

    // The first instance holds the session for 4 s; the second's /hold
    // waits for it, is handed the lock, and holds it 4 s more.
    let hold = |mut browser: Browser| tokio::spawn(async move { browser.get("/hold").await.body });
    let holding_first = hold(on_first.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let holding_second = hold(on_second.clone());
    assert_eq!(holding_first.await.unwrap(), "2");
    // Past the claim of the hand-off, while the second still works: a
    // request of the first instance must wait for it, not slip in.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let mut late = on_first.clone();
    let counting = tokio::spawn(async move { late.get("/counter").await.body });
    assert_eq!(holding_second.await.unwrap(), "3");
    assert_eq!(counting.await.unwrap(), "4", "no increment lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_handed_the_lock_to_read_the_session_itself_renews_it_with_that_read() {
    // A waiter handed the lock reads the session with its next lock try;
    // that try, finding the waiter's own token, must give the lock its full
    // TTL, or it expires with the claim while the request works. (The
    // session here is not even a string: it reads as empty.)
    use nene::session::{BackendShorthands, RedisSessionHandler, SessionDsn, SessionId};
    use nene_test_support::in_process::InProcess;
    let redis = RedisServer::start();
    let url = redis.url();
    let (waiting, _dir) =
        InProcess::start_app(holding_app(HELD_PAST_CLAIM), &[("NENE_SESSION_DSN", &url)]).await;
    let nginx = Nginx::start(&waiting.addr, true);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/counter").await.body, "1");
    let id = browser.session_id().expect("a session");
    let (key, lock) = (format!("sess_{id}"), format!("sess_{id}.lock"));

    // Another instance holds the lock while this one's /hold waits for it.
    let other_instance = std::sync::Arc::new(
        RedisSessionHandler::new(&SessionDsn::parse(&url).unwrap(), Duration::from_secs(600))
            .unwrap(),
    );
    let held = other_instance
        .lock(&SessionId::from_store(&id).unwrap())
        .await
        .unwrap();
    let mut holder = browser.clone();
    let holding = tokio::spawn(async move { holder.get("/hold").await.body });
    eventually("the waiter registered", || {
        !members(&redis, &waiters(&lock)).is_empty()
    })
    .await;
    // Not a string: the release can only tell the waiter to read it.
    redis.run(&["DEL", &key]);
    redis.run(&["HSET", &key, "not", "a string"]);
    held.release().await.unwrap();
    // Past the claim (2 s), the waiter still works and still holds the lock.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let redis::Value::Int(left) = redis.run(&["PTTL", &lock]) else {
        panic!("PTTL is an integer");
    };
    assert!(left > 2000, "the lock was not renewed: PTTL {left}");
    // It read the unreadable session as empty and counted from there.
    assert_eq!(holding.await.unwrap(), "1");
}
