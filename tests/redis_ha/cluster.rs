//! Sessions in a real Redis Cluster (three primaries, with a replica each
//! where a test needs one, made with `redis-cli --cluster create`), through
//! real nginx: sessions spread over the nodes, each session and its lock in
//! one slot (the id is the key's hash tag), locking across two nene
//! instances, every slot of a node moved to another while nene runs (MOVED
//! followed), a primary killed for its replica to take over, and `wait`
//! counting the session's own primary's replicas.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nene::session::{BackendShorthands, RedisSessionHandler, SessionDsn, SessionIdFormat};
use nene_test_support::browser::Browser;
use nene_test_support::redis_cluster::RedisCluster;

use crate::{Stack, stack};

/// nene on `cluster` (`query` on its DSN) behind nginx, and `n` browsers
/// of their own whose first request each counted 1.
async fn stack_and_counting_browsers(
    cluster: &RedisCluster,
    query: &str,
    n: usize,
) -> (Stack, Vec<Browser>) {
    let stack = stack(&cluster.dsn(query));
    let mut browsers: Vec<Browser> = (0..n).map(|_| stack.browser()).collect();
    assert_each_counts_to(&mut browsers, &stack, 1).await;
    (stack, browsers)
}

/// Asserts that each browser's next request counts to `expected`.
async fn assert_each_counts_to(browsers: &mut [Browser], stack: &Stack, expected: u64) {
    for browser in browsers {
        assert_eq!(count(browser, stack).await, expected);
    }
}

/// The counter after one more request, which must succeed.
pub(crate) async fn count(browser: &mut Browser, stack: &Stack) -> u64 {
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, stack.nene.log_text());
    page.json()["count"].as_u64().expect("a count")
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_spread_over_the_nodes_each_with_its_lock_in_its_own_slot() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start();
    let (stack, mut browsers) = stack_and_counting_browsers(&cluster, "", 24).await;
    for round in 2..=3 {
        assert_each_counts_to(&mut browsers, &stack, round).await;
    }
    let keys = cluster.keys("sess_*");
    assert_eq!(
        keys.len(),
        browsers.len(),
        "one key per session, no lock left: {keys:?}"
    );
    for browser in &browsers {
        let id = browser.session_id().unwrap();
        assert!(
            keys.iter().any(|(_, key)| *key == format!("sess_{{{id}}}")),
            "sess_{{{id}}} in {keys:?}"
        );
    }
    let nodes_used: std::collections::BTreeSet<usize> = keys.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        nodes_used.len(),
        3,
        "24 sessions land on every node: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_hammering_one_session_lose_no_increment() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start();
    let first = stack(&cluster.dsn(""));
    let second = stack(&cluster.dsn(""));
    let mut browser = first.browser();
    assert_eq!(count(&mut browser, &first).await, 1);
    let other = browser.with_base(&second.nginx.url(""));
    let (a, b) = tokio::join!(browser.hammer_counter(4, 15), other.hammer_counter(4, 15));
    assert_eq!(
        a + b,
        120,
        "{}\n{}",
        first.nene.log_text(),
        second.nene.log_text()
    );
    assert_eq!(count(&mut browser, &first).await, 122);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_slot_of_a_node_moved_to_another_is_followed_without_a_lost_session() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start();
    let (stack, mut browsers) = stack_and_counting_browsers(&cluster, "", 12).await;
    cluster.move_all_slots(0, 1);
    assert!(cluster.keys("sess_*").iter().all(|(at, _)| *at != 0));
    // A redirected write is sent again through the cluster connection,
    // which keeps no order against a write sent behind it: in a cluster a
    // chain's last write waits for the write in flight (write_chain.rs).
    let dsn = SessionDsn::parse(&cluster.dsn("")).unwrap();
    let handler = Arc::new(RedisSessionHandler::new(&dsn, Duration::from_secs(600)).unwrap());
    let id = SessionIdFormat::new(32, 5).unwrap().generate();
    let (lock, _) = handler.locked_read(&id).await.unwrap();
    assert!(lock.is_held());
    assert!(!lock.sends_last_write_behind());
    lock.release().await.unwrap();
    assert_each_counts_to(&mut browsers, &stack, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_primary_is_replaced_by_its_replica_and_sessions_continue() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let mut cluster = RedisCluster::start_with_replicas();
    let (stack, mut browsers) =
        stack_and_counting_browsers(&cluster, "?timeout=500ms&connect_timeout=500ms", 12).await;
    cluster.wait_for_replicas();
    let keys = cluster.keys("sess_*");
    // A primary that holds sessions.
    let (victim, _) = keys.first().cloned().expect("sessions are stored");
    cluster.nodes[victim].kill();

    // Each session counts on once the replica has taken over (requests
    // meanwhile are refused, never hung).
    // The replica is elected once the other primaries agree the node is
    // gone: about two node timeouts (1 s here) and an election.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for browser in &mut browsers {
        loop {
            let page = browser.get("/session/counter").await;
            if page.status == 200 {
                assert_eq!(page.json()["count"], 2, "{}", stack.nene.log_text());
                break;
            }
            assert_eq!(page.status, 503, "{}", page.body);
            assert!(
                std::time::Instant::now() < deadline,
                "{}",
                stack.nene.log_text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    cluster.wait_until_whole();

    // Login, whoami and logout on the cluster after the failover.
    let mut browser = stack.browser();
    let page = browser.post_form("/session/login", "user=alice").await;
    assert_eq!(page.json()["user"], "alice", "{}", page.body);
    assert_eq!(browser.get("/session/whoami").await.json()["user"], "alice");
    assert_eq!(browser.post_form("/session/logout", "").await.status, 200);
    assert!(browser.get("/session/whoami").await.json()["user"].is_null());

    // 100 concurrent increments on one session: exactly +100.
    let mut hot = stack.browser();
    assert_eq!(count(&mut hot, &stack).await, 1);
    assert_eq!(hot.hammer_counter(10, 10).await, 100);
    assert_eq!(count(&mut hot, &stack).await, 102);
}

/// With `wait`, a save retried after its connection dropped waits for the
/// replica of its own session's primary. `WAIT` counts the acknowledgements
/// of writes made on its own connection: it must follow the write on the
/// connection to that primary. Sent alone it has no key, so a cluster client
/// sends it to whichever node, whose answer says nothing of this write.
#[tokio::test(flavor = "multi_thread")]
async fn with_wait_a_retried_save_waits_for_its_own_primarys_replica() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start_with_replicas();
    let dsn = SessionDsn::parse(&cluster.dsn("?wait=1&wait_timeout=300ms&timeout=2s")).unwrap();
    let sessions = Arc::new(RedisSessionHandler::new(&dsn, Duration::from_secs(600)).unwrap());
    let id = SessionIdFormat::new(32, 5).unwrap().generate();
    let data = |n: u8| Some(Bytes::from(format!("{{\"n\":{n}}}")));

    // Until the new cluster's replicas have synced, saves are refused: the
    // first is tried again until a replica acknowledges it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (lock, _) = sessions.locked_read(&id).await.unwrap();
        match sessions.save_and_unlock(&id, data(1), lock).await {
            Ok(()) => break,
            Err(error) => assert!(std::time::Instant::now() < deadline, "{error}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (primary, _) = cluster
        .keys(&format!("sess_{{{}}}", id.as_str()))
        .first()
        .cloned()
        .expect("the session is stored");
    let replica = cluster.replica_of(primary);
    cluster.nodes[replica].freeze();

    // The replica acknowledges nothing now: an ordinary save is refused.
    let (lock, _) = sessions.locked_read(&id).await.unwrap();
    let ordinary = sessions.save_and_unlock(&id, data(2), lock).await;
    // The same with the save's connection closed under it, so that it is
    // retried (the checked save).
    let (lock, _) = sessions.locked_read(&id).await.unwrap();
    cluster.nodes[primary].run(&["CLIENT", "KILL", "TYPE", "normal"]);
    let retried = sessions.save_and_unlock(&id, data(3), lock).await;
    cluster.nodes[replica].thaw();

    assert!(
        ordinary.is_err(),
        "a save no replica acknowledged was answered Ok"
    );
    let error = retried.expect_err("a retried save counted another node's replicas as its own");
    // The too-few-replicas refusal; or, on a loaded machine, the retry ran
    // out of time reconnecting (CI saw it once): refused all the same, and
    // only an `Ok` would mean another node's acknowledgements counted.
    let said = error.to_string();
    assert!(
        said.contains("replica") || said.contains("timed out"),
        "not a refusal of the unacknowledged save: {error}"
    );
}
