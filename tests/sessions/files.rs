//! What only file sessions (the empty DSN) do, through a real nginx: a
//! touch that is not a rewrite, instances sharing or not sharing a
//! save_path, data nene cannot read left alone, and cookie attributes.
//! What every backend does is in `contract.rs`.

use std::path::PathBuf;
use std::time::Duration;

use nene_test_support::browser::Browser;
use nene_test_support::fcgi_client::request_with_params;
use nene_test_support::in_process::InProcess;
use nene_test_support::{Nene, Nginx};

struct Stack {
    nene: Nene,
    nginx: Nginx,
}

impl Stack {
    fn start(env: &[(&str, &str)]) -> Stack {
        let nene = Nene::start(env);
        let nginx = Nginx::start(&nene.upstream, true);
        Stack { nene, nginx }
    }

    fn browser(&self) -> Browser {
        Browser::new(&self.nginx.url(""))
    }

    fn save_path(&self) -> PathBuf {
        self.nene.dir().join("sessions")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_that_never_touches_the_session_does_no_session_io() {
    let stack = Stack::start(&[]);
    let mut browser = stack.browser();
    browser.get("/session/counter").await;
    let file = stack
        .save_path()
        .join(format!("sess_{}", browser.session_id().unwrap()));
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let page = browser.get("/health").await;
    assert_eq!(page.status, 200);
    assert!(page.set_cookies().is_empty());
    assert!(page.headers.get("cache-control").is_none());
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        before
    );
    // An unchanged session is touched, not rewritten: its mtime moves, and
    // it is the same file (a rewrite goes through a new file renamed over
    // the old one, a new inode).
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap());
    browser.get("/session/whoami").await;
    let after = std::fs::metadata(&file).unwrap();
    assert!(after.modified().unwrap() > before);
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&after),
        inode,
        "an unchanged session was rewritten"
    );
    // A change is a rewrite: a new inode.
    browser.get("/session/counter").await;
    let changed = std::fs::metadata(&file).unwrap();
    assert_ne!(std::os::unix::fs::MetadataExt::ino(&changed), inode);
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_with_separate_save_paths_do_not_share_sessions() {
    // This is why the Redis backend exists: file sessions are per server.
    let first = Nene::start(&[]);
    let second = Nene::start(&[]);
    let nginx = Nginx::start_balancing(vec![&first.upstream, &second.upstream]);
    let mut browser = nginx.browser();
    assert_eq!(
        browser.post_form("/session/login", "user=bob").await.json()["user"],
        "bob"
    );
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(browser.get("/session/whoami").await.json()["user"].clone());
    }
    assert!(answers.iter().any(|u| u == "bob"), "{answers:?}");
    assert!(
        answers.iter().any(|u| u.is_null()),
        "round robin should reach the other instance: {answers:?}"
    );
}

async fn set_cookie_over_fastcgi(addr: &str, extra: &[(&[u8], &[u8])]) -> String {
    let mut pairs: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", b"/session/counter"),
    ];
    pairs.extend_from_slice(extra);
    let response = request_with_params(addr, &pairs).await;
    let head = String::from_utf8_lossy(response.head()).to_string();
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no Set-Cookie in {head}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_auto_marks_the_cookie_secure_only_for_https_or_a_trusted_proxy() {
    let stack = Stack::start(&[("NENE_SERVER__TRUSTED_PROXIES", "10.0.0.0/8")]);
    let addr = &stack.nene.addr;
    let https = set_cookie_over_fastcgi(addr, &[(b"HTTPS", b"on")]).await;
    assert!(https.contains("Secure"), "{https}");
    let plain = set_cookie_over_fastcgi(addr, &[]).await;
    assert!(!plain.contains("Secure"), "{plain}");
    let trusted = set_cookie_over_fastcgi(
        addr,
        &[
            (b"REMOTE_ADDR", b"10.1.2.3"),
            (b"HTTP_X_FORWARDED_PROTO", b"https"),
        ],
    )
    .await;
    assert!(trusted.contains("Secure"), "{trusted}");
    let untrusted = set_cookie_over_fastcgi(
        addr,
        &[
            (b"REMOTE_ADDR", b"203.0.113.9"),
            (b"HTTP_X_FORWARDED_PROTO", b"https"),
        ],
    )
    .await;
    assert!(!untrusted.contains("Secure"), "{untrusted}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_attributes_follow_the_settings() {
    let stack = Stack::start(&[
        ("NENE_SESSION__NAME", "SHOPSESS"),
        ("NENE_SESSION__COOKIE_PATH", "/shop"),
        ("NENE_SESSION__COOKIE_DOMAIN", "example.test"),
        ("NENE_SESSION__COOKIE_LIFETIME", "3600"),
        ("NENE_SESSION__COOKIE_HTTPONLY", "off"),
        ("NENE_SESSION__COOKIE_SAMESITE", "Strict"),
        ("NENE_SESSION__COOKIE_SECURE", "on"),
    ]);
    let mut browser = stack.browser();
    let page = browser.get("/session/counter").await;
    let cookie = &page.set_cookies()[0];
    assert!(cookie.starts_with("SHOPSESS="), "{cookie}");
    for attribute in [
        "Path=/shop",
        "Domain=example.test",
        "Max-Age=3600",
        "SameSite=Strict",
        "Secure",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_file_nene_cannot_read_is_left_alone_by_a_read_only_request() {
    use std::os::unix::fs::MetadataExt;
    let stack = Stack::start(&[("NENE_SESSION__MAX_SIZE", "4K")]);
    let contents: [&[u8]; 4] = [
        b"count|i:5;user|s:5:\"alice\";",
        b"[1,2,3]",
        b"",
        &[b'x'; 5000],
    ];
    for content in contents {
        let mut browser = stack.browser();
        assert_eq!(browser.get("/session/counter").await.status, 200);
        let id = browser.session_id().unwrap();
        let path = stack.save_path().join(format!("sess_{id}"));
        std::fs::write(&path, content).unwrap();
        // An old mtime that a touch would move, still within gc_maxlifetime.
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let before = std::fs::metadata(&path).unwrap();

        let page = browser.get("/session/whoami").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["user"], serde_json::Value::Null);
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), content, "bytes unchanged");
        assert_eq!(after.ino(), before.ino(), "not replaced");
        assert_eq!(after.mtime(), before.mtime(), "not even touched");
    }
    nene_test_support::wait_for_log(&stack.nene.dir().join("nene.log"), "PHP's session format");
    nene_test_support::wait_for_log(
        &stack.nene.dir().join("nene.log"),
        "over session.max_size (4096)",
    );
}

/// PHP's locking (`session.save_path_lock = session_file`): the session
/// file itself is locked and rewritten in place (its inode stays), and the
/// empty file that taking the lock of an unknown id creates is gone again,
/// so PHP's strict mode cannot be made to accept a made-up id.
#[tokio::test(flavor = "multi_thread")]
async fn with_phps_locking_the_session_file_is_rewritten_in_place_and_no_placeholder_stays() {
    use std::os::unix::fs::MetadataExt;
    let stack = Stack::start(&[("NENE_SESSION__SAVE_PATH_LOCK", "session_file")]);
    let mut browser = stack.browser();
    let planted = "0123456789abcdefghijklmnopqrstuv";
    browser.cookies.insert("NENESESSID".into(), planted.into());
    assert!(browser.get("/session/whoami").await.json()["user"].is_null());
    assert!(
        !stack.save_path().join(format!("sess_{planted}")).exists(),
        "the placeholder of an unknown id was left behind"
    );

    let mut browser = stack.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let path = stack
        .save_path()
        .join(format!("sess_{}", browser.session_id().unwrap()));
    let inode = std::fs::metadata(&path).unwrap().ino();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    assert_eq!(std::fs::read(&path).unwrap(), br#"{"count":2}"#.to_vec());
    assert_eq!(
        std::fs::metadata(&path).unwrap().ino(),
        inode,
        "rewritten in place"
    );
    let lock_files: Vec<_> = std::fs::read_dir(stack.save_path())
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(lock_files.is_empty(), "no separate lock files");
}

/// PHP's `N;/path` save_path: sessions live N levels of one-character
/// directories down, made as sessions are first written; gc finds them.
#[tokio::test(flavor = "multi_thread")]
async fn phps_nested_save_path_layout_keeps_sessions_in_subdirectories() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("sessions");
    let save_path = format!("2;{}", dir.display());
    let stack = Stack::start(&[("NENE_SESSION__SAVE_PATH", save_path.as_str())]);
    let mut browser = stack.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    let id = browser.session_id().unwrap();
    let file = dir
        .join(&id[..1])
        .join(&id[1..2])
        .join(format!("sess_{id}"));
    assert_eq!(std::fs::read(&file).unwrap(), br#"{"count":2}"#.to_vec());
    assert!(!dir.join(format!("sess_{id}")).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn save_path_lock_wait_bounds_the_wait_for_a_lock_another_process_holds() {
    use std::os::fd::AsRawFd;
    let stack = Stack::start(&[("NENE_SESSION__SAVE_PATH_LOCK_WAIT", "300ms")]);
    let mut browser = stack.browser();
    assert_eq!(browser.get("/session/counter").await.status, 200);
    let id = browser.session_id().expect("a session");
    // Another process (PHP, a second nene) holds the session's lock.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(stack.save_path().join(format!("sess_{id}.lock")))
        .expect("the session's lock file");
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let started = std::time::Instant::now();
    let page = browser.get("/session/counter").await;
    let waited = started.elapsed();
    assert_eq!(page.status, 503, "{}", page.body);
    assert_eq!(page.headers["retry-after"], "1");
    // Gave up after its 300 ms, not the 10 s default.
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    drop(lock);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
}

/// Routes that fill the session to a given size, and that try to read and
/// overwrite nene's own creation-time key.
fn lifecycle_app() -> axum::Router {
    use axum::extract::Path;
    use axum::routing::get;
    use nene::{Session, SessionError};
    async fn fill(session: Session, Path(n): Path<usize>) -> Result<&'static str, SessionError> {
        session.insert("k", "x".repeat(n)).await?;
        Ok("filled")
    }
    async fn created(session: Session) -> Result<String, SessionError> {
        let seen = session.get::<u64>("__nene_created").await?;
        session.insert("__nene_created", 0).await?;
        let removed = session.remove("__nene_created").await?;
        Ok(format!("{seen:?} {removed:?}"))
    }
    axum::Router::new()
        .route("/fill/{n}", get(fill))
        .route("/created", get(created))
}

/// [`lifecycle_app`] behind nginx, its sessions in files of its own.
struct LifecycleSite {
    save_path: PathBuf,
    _nginx: Nginx,
    _server: (InProcess, tempfile::TempDir),
    _dir: tempfile::TempDir,
}

impl LifecycleSite {
    /// Starts it with `setting` (a NENE_* variable and its value), and a
    /// browser on it.
    async fn start(setting: (&str, &str)) -> (LifecycleSite, Browser) {
        let dir = tempfile::tempdir().unwrap();
        let save_path = dir.path().join("sessions");
        let save_path_text = save_path.display().to_string();
        let env = [setting, ("NENE_SESSION__SAVE_PATH", &save_path_text)];
        let server = InProcess::start_app(lifecycle_app(), &env).await;
        let nginx = Nginx::start(&server.0.addr, true);
        let browser = Browser::new(&nginx.url(""));
        let site = LifecycleSite {
            save_path,
            _nginx: nginx,
            _server: server,
            _dir: dir,
        };
        (site, browser)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_of_exactly_max_size_is_stored_and_one_byte_more_is_refused() {
    let (site, mut browser) = LifecycleSite::start(("NENE_SESSION__MAX_SIZE", "1024")).await;
    let save_path = &site.save_path;
    // {"k":"…"} is the value's length plus 8 bytes.
    assert_eq!(browser.get("/fill/1016").await.status, 200);
    let id = browser.session_id().expect("a session");
    let stored = std::fs::read(save_path.join(format!("sess_{id}"))).unwrap();
    assert_eq!(stored.len(), 1024);
    let page = browser.get("/fill/1017").await;
    assert_eq!(page.status, 500, "{}", page.body);
    assert_eq!(
        std::fs::read(save_path.join(format!("sess_{id}"))).unwrap(),
        stored
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_absolute_lifetimes_creation_key_is_neither_seen_nor_changed_by_handlers() {
    let (site, mut browser) =
        LifecycleSite::start(("NENE_SESSION__ABSOLUTE_LIFETIME", "3600")).await;
    let save_path = &site.save_path;
    assert_eq!(browser.get("/fill/1").await.status, 200);
    let id = browser.session_id().expect("a session");
    let read_created = || {
        let stored = std::fs::read(save_path.join(format!("sess_{id}"))).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        value["__nene_created"]
            .as_u64()
            .expect("the creation time is stored")
    };
    let created = read_created();
    assert_eq!(browser.get("/created").await.body, "None None");
    // A handler that writes the key cannot restart the session's clock.
    assert_eq!(read_created(), created);
}
