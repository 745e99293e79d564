//! File sessions when someone else can put things into the session
//! directory: a symlink or hard link planted under a session's name is not
//! a session and is never touched through, a FIFO does not hang a request, a
//! planted lock symlink makes nene create nothing where it points, a
//! directory others can list keeps nene from starting, and gc leaves files
//! that are not nene's own alone, however old.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nene::session::SessionIdFormat;
use nene_test_support::fcgi_client::{Response, request_with_params};
use nene_test_support::{Nene, free_port, htdocs, run_nene};
use serde_json::Value;

/// What an attacker wants the session to say.
const ADMIN_SESSION: &[u8] = br#"{"user":"admin"}"#;

/// A well-formed id of the default format (32 characters, 5 bits each),
/// never issued by nene: what an attacker would put in the cookie.
fn a_valid_id() -> String {
    SessionIdFormat::new(32, 5)
        .unwrap()
        .generate()
        .as_str()
        .to_string()
}

fn save_path(nene: &Nene) -> PathBuf {
    nene.dir().join("sessions")
}

/// `GET uri` straight over FastCGI, with `id` as the session cookie.
async fn get_with_session(nene: &Nene, uri: &str, id: &str) -> Response {
    let cookie = format!("NENESESSID={id}");
    request_with_params(
        &nene.addr,
        &[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", uri.as_bytes()),
            (b"HTTP_COOKIE", cookie.as_bytes()),
        ],
    )
    .await
}

/// Who `/session/whoami` says is logged in with `id`.
async fn whoami(nene: &Nene, id: &str) -> Value {
    let response = get_with_session(nene, "/session/whoami", id).await;
    assert_eq!(response.status(), 200, "{}", response.body_text());
    let body: Value = serde_json::from_str(&response.body_text()).unwrap();
    body["user"].clone()
}

/// A file outside the session directory holding an admin session, last
/// changed ten minutes ago (well within gc_maxlifetime), so that a touch
/// through a link would show.
fn admin_session_outside(nene: &Nene) -> (PathBuf, SystemTime) {
    let target = nene.dir().join("outside.json");
    fs::write(&target, ADMIN_SESSION).unwrap();
    let mtime = SystemTime::now() - Duration::from_secs(600);
    File::options()
        .write(true)
        .open(&target)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    (target, mtime)
}

fn assert_untouched(target: &Path, mtime: SystemTime) {
    assert_eq!(fs::read(target).unwrap(), ADMIN_SESSION);
    assert_eq!(fs::metadata(target).unwrap().modified().unwrap(), mtime);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_planted_as_a_session_does_not_log_anybody_in() {
    let nene = Nene::start(&[]);
    let (target, mtime) = admin_session_outside(&nene);
    let id = a_valid_id();
    std::os::unix::fs::symlink(&target, save_path(&nene).join(format!("sess_{id}"))).unwrap();

    assert!(whoami(&nene, &id).await.is_null());
    // The counter reads, writes and touches: still nothing goes through the link.
    let response = get_with_session(&nene, "/session/counter", &id).await;
    assert_eq!(response.status(), 200, "{}", response.body_text());
    assert!(whoami(&nene, &id).await.is_null());
    assert_untouched(&target, mtime);
    let log = nene.log_text();
    assert!(log.contains("symbolic link"), "{log}");
    assert!(!log.contains(&id), "the log names the session by id: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard_link_planted_as_a_session_does_not_log_anybody_in() {
    let nene = Nene::start(&[]);
    let (target, mtime) = admin_session_outside(&nene);
    let id = a_valid_id();
    fs::hard_link(&target, save_path(&nene).join(format!("sess_{id}"))).unwrap();

    assert!(whoami(&nene, &id).await.is_null());
    assert_untouched(&target, mtime);
    nene.assert_logged("hard links");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_planted_as_a_session_is_answered_within_a_second() {
    let nene = Nene::start(&[]);
    let id = a_valid_id();
    let fifo = save_path(&nene).join(format!("sess_{id}"));
    let fifo = std::ffi::CString::new(fifo.into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(1),
        get_with_session(&nene, "/session/whoami", &id),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer within 1 s: a thread is stuck opening the FIFO"));
    assert_eq!(response.status(), 200, "{}", response.body_text());
    assert_eq!(response.body_text(), r#"{"user":null}"#);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dangling_lock_symlink_makes_nene_create_nothing_outside() {
    let nene = Nene::start(&[]);
    let id = a_valid_id();
    let target = nene.dir().join("created-through-the-lock");
    std::os::unix::fs::symlink(&target, save_path(&nene).join(format!("sess_{id}.lock"))).unwrap();

    // Whatever the answer (the session cannot be locked), nothing is
    // created where the link points, and other visitors are served.
    let response = get_with_session(&nene, "/session/counter", &id).await;
    assert!(
        [200, 503].contains(&response.status()),
        "{}",
        response.body_text()
    );
    assert!(!target.exists(), "nene created a file through a symlink");
    let fresh = a_valid_id();
    let response = get_with_session(&nene, "/session/counter", &fresh).await;
    assert_eq!(response.body_text(), r#"{"count":1}"#);
}

#[test]
fn a_session_directory_others_can_list_keeps_nene_from_starting() {
    let root = tempfile::tempdir().unwrap();
    let sessions = root.path().join("sessions");
    fs::create_dir(&sessions).unwrap();
    fs::set_permissions(&sessions, fs::Permissions::from_mode(0o755)).unwrap();
    let shown = sessions.display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let htdocs = htdocs().display().to_string();

    let output = run_nene(
        &["serve", "--listen", &listen, "--htdocs", &htdocs],
        &[("NENE_SESSION__SAVE_PATH", &shown)],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&shown), "{stderr}");
    assert!(stderr.contains("0755"), "{stderr}");
    assert!(stderr.contains("chmod 0700"), "{stderr}");
    // Refused, not repaired behind the admin's back.
    let mode = fs::metadata(&sessions).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_leaves_an_old_file_that_only_looks_like_a_session() {
    // gc on every session start; sessions expire after a minute.
    let nene = Nene::start(&[
        ("NENE_SESSION__GC_PROBABILITY", "1"),
        ("NENE_SESSION__GC_DIVISOR", "1"),
        ("NENE_SESSION__GC_MAXLIFETIME", "60"),
    ]);
    let dir = save_path(&nene);
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    let backup = dir.join("sess_important_backup");
    fs::write(&backup, b"the admin's backup").unwrap();
    // An expired session of nene's own, to see that gc did run.
    let expired = dir.join(format!("sess_{}", a_valid_id()));
    fs::write(&expired, br#"{"count":7}"#).unwrap();
    for path in [&backup, &expired] {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(long_ago).unwrap();
    }

    let response = get_with_session(&nene, "/session/counter", &a_valid_id()).await;
    assert_eq!(response.status(), 200, "{}", response.body_text());
    let deadline = Instant::now() + Duration::from_secs(3);
    while expired.exists() {
        assert!(
            Instant::now() < deadline,
            "gc did not run: {}",
            nene.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fs::read(&backup).unwrap(), b"the admin's backup");
}
