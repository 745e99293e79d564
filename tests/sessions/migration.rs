//! Switching session backends without logging anyone out: with
//! `session.migrate_from` naming the old backend, a visitor whose session
//! is still only there keeps it (and it moves to the new backend on first
//! use); `nene sessions copy` moves every live session ahead of time, with
//! its remaining lifetime, and resumes where a stopped copy left off.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use nene::session::{FileSessionHandler, LiveSession, SessionAdmin, SessionIdFormat};
use nene_test_support::browser::Browser;
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx, run_nene};

/// The files backend's directory, shared by the nene before and after the switch.
fn save_path(dir: &tempfile::TempDir) -> String {
    dir.path().join("sessions").display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_visitor_logged_in_on_files_stays_logged_in_after_the_switch_to_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let files = save_path(&dir);

    // Before the switch: file sessions.
    let before = Nene::start(&[("NENE_SESSION__SAVE_PATH", &files)]);
    let nginx = Nginx::start(&before.upstream, true);
    let mut alice = Browser::new(&nginx.url(""));
    alice.post_form("/session/login", "user=alice").await;
    assert_eq!(alice.get("/session/counter").await.json()["count"], 1);
    let mut bob = Browser::new(&nginx.url(""));
    bob.post_form("/session/login", "user=bob").await;
    let alice_id = alice.session_id().unwrap();
    drop(nginx);
    drop(before);

    // Without migrate_from, the switch logs everybody out: the control.
    let forgetful = Nene::start(&[
        ("NENE_SESSION__SAVE_PATH", &files),
        ("NENE_SESSION_DSN", &redis.url()),
    ]);
    let nginx = Nginx::start(&forgetful.upstream, true);
    let mut stranger = alice.with_base(&nginx.url(""));
    assert!(stranger.get("/session/whoami").await.json()["user"].is_null());
    drop(nginx);
    drop(forgetful);

    // With it, nobody is.
    let after = Nene::start(&[
        ("NENE_SESSION__SAVE_PATH", &files),
        ("NENE_SESSION_DSN", &redis.url()),
        ("NENE_SESSION__MIGRATE_FROM", "files"),
    ]);
    let nginx = Nginx::start(&after.upstream, true);
    let mut alice = alice.with_base(&nginx.url(""));
    let mut bob = bob.with_base(&nginx.url(""));
    assert_eq!(alice.get("/session/whoami").await.json()["user"], "alice");
    assert_eq!(alice.session_id().unwrap(), alice_id, "the same id");
    // Moved on that first read, though the request changed nothing (a
    // lazy write only touches, and a touch cannot create).
    assert!(redis.db(0).exists(&format!("sess_{alice_id}")));
    assert_eq!(alice.get("/session/counter").await.json()["count"], 2);
    // Moved: Redis has it now, with the change.
    let stored = redis.db(0).get(&format!("sess_{alice_id}")).unwrap();
    let stored = String::from_utf8(stored).unwrap();
    assert!(stored.contains(r#""count":2"#), "{stored}");
    assert!(stored.contains("alice"), "{stored}");

    // A logout removes it from both: the old copy cannot come back.
    alice.post_form("/session/logout", "").await;
    assert!(!redis.db(0).exists(&format!("sess_{alice_id}")));
    assert!(
        !std::path::Path::new(&files)
            .join(format!("sess_{alice_id}"))
            .exists()
    );
    let mut replay = Browser::new(&nginx.url(""));
    replay.cookies.insert("NENESESSID".into(), alice_id.clone());
    assert!(replay.get("/session/whoami").await.json()["user"].is_null());

    // Bob, untouched until now, is still bob.
    assert_eq!(bob.get("/session/whoami").await.json()["user"], "bob");
    assert!(after.log_text().contains("moved from files to redis"));
}

#[test]
fn migrate_from_must_parse_and_name_another_backend() {
    let redis_dsn = "redis://:hunter2@127.0.0.1:1";
    let cases = [
        (redis_dsn, redis_dsn, "same backend"),
        (
            "redis://127.0.0.1:1",
            "redsi://:hunter2@old:6379",
            "unknown scheme",
        ),
    ];
    for (dsn, migrate_from, refusal) in cases {
        let output = run_nene(
            &["check"],
            &[
                ("NENE_SESSION_DSN", dsn),
                ("NENE_SESSION__MIGRATE_FROM", migrate_from),
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{refusal}");
        assert!(
            stderr.contains("session.migrate_from") && stderr.contains(refusal),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// `nene sessions copy` with the test's save_path, output captured.
fn copy_command(files: &str, to: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nene"));
    nene_test_support::without_callers_nene_env(&mut command);
    command
        .args(["sessions", "copy", "--from", "files", "--to", to])
        .env("NENE_SESSION__SAVE_PATH", files)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_copy_moves_ten_thousand_sessions_with_their_remaining_lifetime_and_resumes() {
    const SESSIONS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let files = save_path(&dir);
    let redis = RedisServer::start();
    // session.gc_maxlifetime's default, as the copy command loads it.
    let ttl = Duration::from_secs(1440);
    let handler = std::sync::Arc::new(
        FileSessionHandler::new(dir.path().join("sessions").as_path(), ttl).unwrap(),
    );
    let format = SessionIdFormat::new(32, 5).unwrap();
    let mut sessions = Vec::with_capacity(SESSIONS);
    for n in 0..SESSIONS {
        // Lifetimes from 100 s to 1,099 s left.
        let lifetime = Duration::from_secs(100 + (n as u64 % 1000));
        sessions.push(LiveSession {
            id: format.generate(),
            remaining: lifetime,
        });
    }
    for chunk in sessions.chunks(100) {
        let writes = chunk.iter().map(|live| {
            handler.store_copy(live, Bytes::from(format!("data of {}", live.id.as_str())))
        });
        for written in futures::future::join_all(writes).await {
            written.unwrap();
        }
    }
    // One the destination already has, with newer data: left alone.
    let LiveSession { id: newer_id, .. } = &sessions[7];
    redis
        .db(0)
        .set(&format!("sess_{}", newer_id.as_str()), b"newer");

    // A copy stopped after its first page…
    let mut first = copy_command(&files, &redis.url()).spawn().unwrap();
    let mut progress = BufReader::new(first.stderr.take().unwrap()).lines();
    let line = progress.next().unwrap().unwrap();
    assert!(line.contains("listed") && line.contains("copied"), "{line}");
    first.kill().unwrap();
    first.wait().unwrap();
    let copied_before = redis.db(0).keys("sess_*").len();
    assert!(copied_before >= 500, "{copied_before}");

    // …run again, finishes the rest.
    let output = copy_command(&files, &redis.url()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.lines().count() >= SESSIONS / 500,
        "a line per page: {stderr}"
    );
    let copied: usize = number_before(&stdout, " copied");
    let already: usize = number_before(&stdout, " already there");
    assert_eq!(copied + already, SESSIONS, "{stdout}");
    assert!(already >= copied_before, "{stdout}");

    let mut db = redis.db(0);
    assert_eq!(db.keys("sess_*").len(), SESSIONS);
    assert_eq!(
        db.get(&format!("sess_{}", newer_id.as_str())).unwrap(),
        b"newer"
    );
    for LiveSession {
        id,
        remaining: lifetime,
    } in sessions.iter().filter(|live| &live.id != newer_id)
    {
        let key = format!("sess_{}", id.as_str());
        assert_eq!(
            db.get(&key).unwrap(),
            format!("data of {}", id.as_str()).into_bytes()
        );
        let left = db.ttl(&key) as u64;
        assert!(
            left <= lifetime.as_secs() && left + 30 >= lifetime.as_secs(),
            "{key}: {left} s left of {lifetime:?}"
        );
    }

    // A third run has nothing left to do.
    let output = copy_command(&files, &redis.url()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(number_before(&stdout, " copied"), 0, "{stdout}");
    assert_eq!(
        number_before(&stdout, " already there"),
        SESSIONS,
        "{stdout}"
    );
}

#[test]
fn sessions_copy_refuses_the_same_backend_and_names_an_unreachable_one() {
    let output = run_nene(&["sessions", "copy", "--from", "files", "--to", ""], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("same backend"));

    let dir = tempfile::tempdir().unwrap();
    let files = save_path(&dir);
    std::fs::create_dir(&files).unwrap();
    std::fs::set_permissions(&files, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(
        dir.path()
            .join("sessions")
            .join("sess_0123456789abcdefghijklmnopqrstuv"),
        "x",
    )
    .unwrap();
    let port = nene_test_support::free_port();
    let to = format!("redis://:hunter2@127.0.0.1:{port}?timeout=200ms&connect_timeout=200ms");
    let output = copy_command(&files, &to).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("run the copy again to resume"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// The number just before `label` in a totals line ("12 copied, 3 already there").
fn number_before(text: &str, label: &str) -> usize {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    let digits: String = text[..at]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {label:?} in {text}"))
}

/// During a switch the lock a request holds is the new backend's, with all
/// it can do: the write chain's last write may go behind the one in flight
/// as on Redis alone, and a write after the lock moved on is refused by
/// Redis' fence (the migrating handler wraps the lock; it must forward).
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_taken_during_a_switch_keeps_the_new_backends_fence() {
    use nene::session::{BackendShorthands, SessionHandlerFactory, SessionSettings};
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let settings = SessionSettings {
        save_path: dir.path().join("sessions"),
        migrate_from: "files".into(),
        ..nene::config::Settings::defaults().session
    };
    let sessions = SessionHandlerFactory::from_dsn(&redis.url(), &settings).unwrap();
    let id = SessionIdFormat::new(32, 5).unwrap().generate();
    let key = format!("sess_{}", id.as_str());

    let (lock, _) = sessions.locked_read(&id).await.unwrap();
    assert!(lock.is_held());
    assert!(lock.sends_last_write_behind());
    lock.write(&*sessions, &id, Bytes::from_static(b"{\"n\":1}"))
        .await
        .unwrap();
    assert_eq!(redis.db(0).get(&key).unwrap(), b"{\"n\":1}".to_vec());

    redis.run(&["SET", &format!("{key}.lock"), "another-holders-token"]);
    let late = lock
        .write(&*sessions, &id, Bytes::from_static(b"{\"n\":2}"))
        .await;
    assert!(late.is_err(), "a write after the lock moved on was stored");
    assert_eq!(redis.db(0).get(&key).unwrap(), b"{\"n\":1}".to_vec());
    drop(lock);
}
