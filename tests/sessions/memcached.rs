//! What only the memcached backend does (the shared contract is in
//! session_backends.rs): locks released by their owner only, sessions and
//! locks spread over two servers exactly where PHP's memcached extension
//! looks for them, lifetimes past memcached's 30-day limit on relative
//! expiry, values over the server's item size, a stalled server, `nene
//! check` across servers, the listing behind `nene sessions copy`, and a
//! peer that declares a value of gigabytes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nene::session::{
    BackendShorthands, LIST_PAGE_SIZE, LiveSession, MemcachedSessionHandler, SessionAdmin,
    SessionDsn, SessionError, SessionId, SessionIdFormat, Stored,
};
use nene_test_support::fault_proxy::{self, FaultProxy};
use nene_test_support::memcached_server::MemcachedServer;
use nene_test_support::php_cli::{hex, run_php};
use nene_test_support::run_nene;

const LONG: Duration = Duration::from_secs(600);
const FORTY_DAYS: Duration = Duration::from_secs(40 * 24 * 60 * 60);

fn handler(dsn: &str, ttl: Duration) -> Arc<dyn SessionAdmin> {
    let dsn = SessionDsn::parse(dsn).unwrap();
    Arc::new(MemcachedSessionHandler::new(&dsn, ttl).unwrap())
}

/// The DSN of a pool of the servers `one` and `two`, with `query`.
fn two_servers_dsn(one: &MemcachedServer, two: &MemcachedServer, query: &str) -> String {
    format!(
        "memcached://127.0.0.1:{},127.0.0.1:{}{query}",
        one.port(),
        two.port()
    )
}

fn new_id() -> SessionId {
    SessionIdFormat::new(32, 5).unwrap().generate()
}

#[tokio::test]
async fn a_lock_that_expired_and_was_taken_again_survives_its_first_holders_release() {
    let server = MemcachedServer::start();
    let dsn = format!("{}?lock_ttl=1s&lock_wait=0s", server.url());
    let first = handler(&dsn, LONG);
    let second = handler(&dsn, LONG);
    let id = new_id();
    let lock_key = format!("sess_lock.{}", id.as_str());

    first.write(&id, Bytes::from_static(b"data")).await.unwrap();
    let stale = first.lock(&id).await.unwrap();
    assert!(server.get(&lock_key).is_some(), "named as PHP names locks");
    assert!(matches!(
        second.locked_read(&id).await,
        Err(SessionError::LockTimeout { .. })
    ));
    assert_eq!(
        second.read(&id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"data")),
        "the refused lock's read was taken off the connection"
    );
    // The first holder overran its lock_ttl (memcached's clock ticks in
    // seconds: the lock lives 1 to 2 s); the second takes the lock.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (current, stored) = second.locked_read(&id).await.unwrap();
    assert_eq!(stored, Stored::Data(Bytes::from_static(b"data")));
    let token = server.get(&lock_key).expect("the second holder's lock");

    stale.release().await.unwrap();
    assert_eq!(
        server.get(&lock_key),
        Some(token),
        "the first holder's release left the second holder's lock alone"
    );
    assert!(matches!(
        first.lock(&id).await,
        Err(SessionError::LockTimeout { .. })
    ));
    current.release().await.unwrap();
    assert_eq!(server.get(&lock_key), None, "its owner's release frees it");
    first.lock(&id).await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn php_finds_every_session_nene_spread_over_two_servers() {
    let one = MemcachedServer::start();
    let two = MemcachedServer::start();
    let dsn = two_servers_dsn(&one, &two, "?prefix=memc.sess.key.");
    let sessions = handler(&dsn, LONG);
    let mut written = BTreeMap::new();
    for n in 0..40 {
        let id = new_id();
        let data = format!("count|i:{n};");
        sessions
            .write(&id, Bytes::from(data.clone()))
            .await
            .unwrap();
        written.insert(id.as_str().to_string(), data);
    }
    for server in [&one, &two] {
        let held = server.keys().len();
        assert!(
            (5..=35).contains(&held),
            "both servers hold a share: {held} of 40"
        );
    }
    // Locks of other sessions, held while PHP looks for them.
    let mut locks = Vec::new();
    for _ in 0..10 {
        let id = new_id();
        locks.push((id.as_str().to_string(), sessions.lock(&id).await.unwrap()));
    }
    let ids: Vec<String> = written.keys().map(|id| format!("'{id}'")).collect();
    let locked: Vec<String> = locks.iter().map(|(id, _)| format!("'{id}'")).collect();
    let script = format!(
        r#"<?php
        // PHP's own session handler, with the weighted ketama nene uses.
        ini_set('session.save_handler', 'memcached');
        ini_set('session.save_path', '127.0.0.1:{one},127.0.0.1:{two}');
        ini_set('memcached.sess_consistent_hash_type', 'ketama_weighted');
        ini_set('session.use_strict_mode', '0');
        ini_set('session.use_cookies', '0');
        ini_set('session.cache_limiter', '');
        $out = [];
        $servers = [['127.0.0.1', {one}], ['127.0.0.1', {two}]];
        $m = new Memcached();
        $m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
        $m->setOption(Memcached::OPT_PREFIX_KEY, 'memc.sess.key.');
        $m->addServers($servers);
        foreach ([{ids}] as $id) {{
            $value = $m->get($id);
            $out[] = $id . ' ' . ($value === false ? 'MISSING' : bin2hex($value));
        }}
        foreach ([{locked}] as $id) {{
            $value = $m->get('lock.' . $id);
            $out[] = $id . ' lock ' . ($value === false ? 'MISSING' : $value);
        }}
        foreach ([{ids}] as $id) {{
            session_id($id);
            session_start();
            $out[] = $id . ' session ' . ($_SESSION['count'] ?? 'MISSING');
            session_write_close();
        }}
        echo implode("\n", $out), "\n";
        "#,
        one = one.port(),
        two = two.port(),
        ids = ids.join(","),
        locked = locked.join(",")
    );
    let output = run_php(&script);
    let mut lines = output.lines();
    for (id, data) in &written {
        assert_eq!(
            lines.next(),
            Some(format!("{id} {}", hex(data.as_bytes())).as_str())
        );
    }
    for (id, _) in &locks {
        let key = format!("memc.sess.key.lock.{id}");
        let token = one.get(&key).or_else(|| two.get(&key)).expect("held");
        let token = String::from_utf8(token).unwrap();
        assert_eq!(
            lines.next(),
            Some(format!("{id} lock {token}").as_str()),
            "PHP finds nene's lock where it looks for its own"
        );
    }
    for (id, data) in &written {
        let count = data.trim_start_matches("count|i:").trim_end_matches(';');
        assert_eq!(lines.next(), Some(format!("{id} session {count}").as_str()));
    }
}

#[tokio::test]
async fn a_lifetime_over_30_days_is_kept_not_read_as_a_date_in_1970() {
    let server = MemcachedServer::start();
    let sessions = handler(&server.url(), FORTY_DAYS);
    let id = new_id();
    sessions
        .write(&id, Bytes::from_static(b"long"))
        .await
        .unwrap();
    assert_eq!(
        sessions.read(&id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"long"))
    );
    let left = server
        .ttl(&format!("sess_{}", id.as_str()))
        .expect("stored")
        .expect("with an expiry");
    assert!(
        left.abs_diff(FORTY_DAYS) <= Duration::from_secs(3),
        "{left:?}"
    );
    sessions.touch(&id).await.unwrap();
    assert!(sessions.exists(&id).await.unwrap(), "a touch keeps it too");
}

#[tokio::test]
async fn a_value_over_the_servers_item_size_is_an_error_and_the_handler_goes_on() {
    // memcached's default 1 MiB item limit, under session.max_size.
    let server = MemcachedServer::start_with(&["-I", "1m"]);
    let sessions = handler(&server.url(), LONG);
    let id = new_id();
    sessions
        .write(&id, Bytes::from_static(b"small"))
        .await
        .unwrap();
    let refused = sessions.write(&id, Bytes::from(vec![b'x'; 2 << 20])).await;
    match refused {
        Err(SessionError::Backend { message, .. }) => {
            assert!(message.contains("-I"), "{message}")
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert_eq!(
        sessions.read(&id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"small")),
        "the stored session is unchanged and the handler still works"
    );
}

#[tokio::test]
async fn a_stalled_server_is_a_timeout_and_the_same_handler_recovers() {
    let server = MemcachedServer::start();
    let sessions = handler(
        &format!("{}?timeout=200ms&connect_timeout=200ms", server.url()),
        LONG,
    );
    let id = new_id();
    sessions.write(&id, Bytes::from_static(b"x")).await.unwrap();
    server.pause();
    let started = Instant::now();
    let stalled = sessions.read(&id).await;
    assert!(
        matches!(stalled, Err(SessionError::Timeout { .. })),
        "{stalled:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1), "bounded");
    assert!(sessions.ping().await.is_err());
    server.resume();
    assert_eq!(
        sessions.read(&id).await.unwrap(),
        Stored::Data(Bytes::from_static(b"x"))
    );
}

#[tokio::test]
async fn listing_pages_through_every_server_with_each_remaining_lifetime() {
    let one = MemcachedServer::start();
    let two = MemcachedServer::start();
    let dsn = two_servers_dsn(&one, &two, "");
    let sessions = handler(&dsn, LONG);
    let mut lifetimes = BTreeMap::new();
    for n in 0..1100u64 {
        let id = new_id();
        let lifetime = match n % 3 {
            0 => Duration::from_secs(100 + n),
            1 => FORTY_DAYS,
            _ => LONG,
        };
        let write = if n % 3 == 2 {
            sessions.write(&id, Bytes::from_static(b"{}")).await
        } else {
            sessions
                .store_copy(
                    &LiveSession {
                        id: id.clone(),
                        remaining: lifetime,
                    },
                    Bytes::from_static(b"{}"),
                )
                .await
        };
        write.unwrap();
        lifetimes.insert(id.as_str().to_string(), lifetime);
    }
    // Neither a lock, nor a key of another application, nor a key under
    // the prefix that is no session id, is listed.
    let locked = SessionId::from_store(lifetimes.keys().next().unwrap()).unwrap();
    let _lock = sessions.lock(&locked).await.unwrap();
    one.set("cache:user:1", b"x", 100);
    one.set("sess_not.an.id", b"x", 100);

    let pages = crate::every_page(&*sessions).await;
    let mut listed = BTreeMap::new();
    for page in &pages {
        assert!(page.sessions.len() <= LIST_PAGE_SIZE);
        for session in &page.sessions {
            let before = listed.insert(session.id.as_str().to_string(), session.remaining);
            assert!(before.is_none(), "listed twice");
        }
    }
    assert_eq!(pages.len(), 3, "1100 sessions in pages of {LIST_PAGE_SIZE}");
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        lifetimes.keys().collect::<Vec<_>>()
    );
    // memcached runs one key dump at a time: listings at once take turns.
    let at_once: Vec<_> = (0..4)
        .map(|_| {
            let sessions = sessions.clone();
            tokio::spawn(async move { sessions.list_sessions(None).await })
        })
        .collect();
    for listing in at_once {
        let page = listing
            .await
            .unwrap()
            .expect("a listing that waited its turn");
        assert_eq!(page.sessions.len(), LIST_PAGE_SIZE);
    }
    for (id, remaining) in &listed {
        let lifetime = lifetimes[id];
        assert!(
            remaining.abs_diff(lifetime) <= Duration::from_secs(2),
            "{id}: {remaining:?} left of {lifetime:?}"
        );
    }
}

#[test]
fn nene_check_pings_every_server_and_names_the_one_that_is_down() {
    let one = MemcachedServer::start();
    let mut two = MemcachedServer::start();
    let dsn = two_servers_dsn(&one, &two, "?timeout=200ms&connect_timeout=200ms");
    let check = run_nene(&["check"], &[("NENE_SESSION_DSN", &dsn)]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(
        stdout.contains("session backend memcached answered"),
        "{stdout}"
    );

    two.kill();
    let started = Instant::now();
    let check = run_nene(&["check"], &[("NENE_SESSION_DSN", &dsn)]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", two.port())),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");
}

#[tokio::test(flavor = "multi_thread")]
async fn nene_sessions_copy_moves_sessions_between_memcached_pools_with_their_lifetimes() {
    let from = MemcachedServer::start();
    let to = MemcachedServer::start();
    let sessions = handler(&from.url(), LONG);
    let mut lifetimes = Vec::new();
    for n in 0..30u64 {
        let lifetime = if n == 0 {
            FORTY_DAYS
        } else {
            Duration::from_secs(100 + n)
        };
        let id = new_id();
        sessions
            .store_copy(
                &LiveSession {
                    id: id.clone(),
                    remaining: lifetime,
                },
                Bytes::from(format!("data {n}")),
            )
            .await
            .unwrap();
        lifetimes.push((id, n, lifetime));
    }
    let output = run_nene(
        &["sessions", "copy", "--from", &from.url(), "--to", &to.url()],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("30 copied"), "{stdout}");
    for (id, n, lifetime) in lifetimes {
        let key = format!("sess_{}", id.as_str());
        assert_eq!(to.get(&key), Some(format!("data {n}").into_bytes()));
        let left = to.ttl(&key).expect("copied").expect("with an expiry");
        // Up to 2 s over: nene asks for one second more (memcached's clock
        // ticks in whole seconds), and memcached's own clock, which it
        // counts what is left by, is updated once a second and may lag.
        assert!(
            left <= lifetime + Duration::from_secs(2) && left + Duration::from_secs(3) >= lifetime,
            "{key}: {left:?} left of {lifetime:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_declaring_10_gb_is_refused_unread_and_costs_no_memory() {
    let server = MemcachedServer::start();
    // Locking off, so that the value's read is the first command to meet
    // the hostile reply (a lock command refuses a `VA` as a reply it never
    // expects, which holds too).
    fault_proxy::a_hostile_reply_costs_a_503_not_memory(
        server.port(),
        |proxy| format!("{}?lock=off", proxy.url("memcached")),
        FaultProxy::hostile_memcached_values,
        "a reply declaring a value of 10000000000 bytes, over session.max_size (4194304) by more than 1048576: refused while reading",
    )
    .await;
}
