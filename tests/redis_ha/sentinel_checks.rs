//! What nene checks of the server a sentinel names, through a real nginx
//! and real `redis-server --sentinel` processes: a server that is not a
//! primary gets no session command, and with `rediss+sentinel://` the
//! sentinels and the primary are spoken to over verified TLS only.

use nene_test_support::redis_sentinel::{LoneSentinel, SERVICE};
use nene_test_support::redis_server::RedisServer;

use crate::sentinel::count;
use crate::{Stack, stack};

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_named_as_the_primary_gets_no_session_command() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let primary = RedisServer::start();
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    // A sentinel with a wrong view of the service: it names the replica.
    let sentinel = LoneSentinel::watching(&replica);
    let stack = stack(&format!(
        "redis+sentinel://127.0.0.1:{}/{SERVICE}?connect_timeout=1s",
        sentinel.port()
    ));
    let mut browser = stack.browser();
    assert_eq!(count(&mut browser).await, Err(503));
    let log = stack.nene.log_text();
    assert!(
        log.contains(&format!(
            "the sentinels named 127.0.0.1:{} as the primary of `{SERVICE}`, but it says it is a slave",
            replica.port()
        )),
        "{log}\n{}",
        sentinel.log()
    );
    // ROLE was asked; nothing that reads or writes a session was sent.
    assert!(replica.calls("role") >= 1);
    for command in ["evalsha", "eval", "get", "set", "script|load"] {
        assert_eq!(replica.calls(command), 0, "{command} reached the replica");
    }
    assert_eq!(browser.get("/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_sentinel_speaks_verified_tls_to_the_sentinels_and_the_primary() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let primary = RedisServer::start_tls();
    let sentinel = LoneSentinel::watching_tls(&primary);
    let ca = primary.ca_file().display().to_string();
    let stack = stack(&format!(
        "rediss+sentinel://127.0.0.1:{}/{SERVICE}?tls_ca_file={ca}",
        sentinel.port()
    ));
    let mut browser = stack.browser();
    for expected in 1..=3 {
        assert_eq!(
            count(&mut browser).await,
            Ok(expected),
            "{}\n{}",
            stack.nene.log_text(),
            sentinel.log()
        );
    }
    // The session is on the primary, reached over its TLS port (the only
    // address the sentinel knows).
    let id = browser.session_id().expect("a session");
    assert_eq!(
        primary.run(&["EXISTS", &format!("sess_{id}")]),
        redis::Value::Int(1)
    );

    // Without TLS the sentinel is not reached at all.
    let plain = stack_for_scheme("redis+sentinel", &sentinel, "?connect_timeout=300ms");
    let mut browser = plain.browser();
    assert_eq!(count(&mut browser).await, Err(503));
    // With TLS but without the CA, the test CA's certificate is refused.
    let unverified = stack_for_scheme("rediss+sentinel", &sentinel, "?connect_timeout=300ms");
    let mut browser = unverified.browser();
    assert_eq!(count(&mut browser).await, Err(503));
    let log = unverified.nene.log_text();
    assert!(log.to_lowercase().contains("certificate"), "{log}");
}

fn stack_for_scheme(scheme: &str, sentinel: &LoneSentinel, query: &str) -> Stack {
    stack(&format!(
        "{scheme}://127.0.0.1:{}/{SERVICE}{query}",
        sentinel.port()
    ))
}
