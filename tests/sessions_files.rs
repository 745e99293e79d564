//! File sessions (the empty DSN) through a real nginx: the counter, login
//! with a new id, logout, strict mode, hostile cookies, concurrency without
//! lost updates, HTTPS detection, the absolute lifetime and cache headers.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::Browser;
use common::fcgi_client::request_with_params;
use common::{Nene, Nginx};

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

fn session_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("sess_") && !name.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn the_counter_counts_in_a_session_file_and_sets_the_cookie_once() {
    let stack = Stack::start(&[]);
    let mut browser = stack.browser();
    for expected in 1..=3 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["count"], expected);
        assert_eq!(
            page.headers["cache-control"],
            "no-store, no-cache, must-revalidate"
        );
        assert_eq!(page.headers["pragma"], "no-cache");
    }
    assert_eq!(browser.set_cookies.len(), 1, "{:?}", browser.set_cookies);
    let cookie = &browser.set_cookies[0];
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/")
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let id = browser.session_id().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        session_files(&stack.save_path()),
        vec![format!("sess_{id}")]
    );
    let stored = std::fs::read_to_string(stack.save_path().join(format!("sess_{id}"))).unwrap();
    assert_eq!(stored, r#"{"count":3}"#);
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
async fn login_gets_a_new_id_and_logout_destroys_the_session() {
    let stack = Stack::start(&[]);
    let mut browser = stack.browser();
    browser.get("/session/counter").await;
    let before_login = browser.session_id().unwrap();
    let page = browser.post_form("/session/login", "user=alice").await;
    assert_eq!(page.json()["user"], "alice");
    let after_login = browser.session_id().unwrap();
    assert_ne!(before_login, after_login, "login must regenerate the id");
    assert_eq!(
        session_files(&stack.save_path()),
        vec![format!("sess_{after_login}")]
    );
    assert_eq!(browser.get("/session/whoami").await.json()["user"], "alice");
    // The data moved with the id.
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);

    let page = browser.post_form("/session/logout", "").await;
    assert_eq!(page.status, 200);
    assert!(
        page.set_cookies()[0].contains("Max-Age=0"),
        "{:?}",
        page.set_cookies()
    );
    assert!(browser.session_id().is_none());
    assert!(session_files(&stack.save_path()).is_empty());
    assert!(browser.get("/session/whoami").await.json()["user"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_id_is_replaced_under_strict_mode_and_never_stored() {
    let stack = Stack::start(&[]);
    let mut browser = stack.browser();
    let planted = "0123456789abcdefghijklmnopqrstuv";
    browser.cookies.insert("NENESESSID".into(), planted.into());
    let page = browser.get("/session/counter").await;
    assert_eq!(page.json()["count"], 1);
    let issued = browser.session_id().unwrap();
    assert_ne!(issued, planted);
    assert_eq!(
        session_files(&stack.save_path()),
        vec![format!("sess_{issued}")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_session_cookies_count_as_no_cookie_and_reach_no_file() {
    let stack = Stack::start(&[]);
    let valid_looking = "0123456789abcdefghijklmnopqrstuv";
    let many_same_name = (0..200)
        .map(|i| format!("NENESESSID=bad{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    let cookies: Vec<Vec<u8>> = vec![
        b"NENESESSID=".to_vec(),
        b"NENESESSID=*".to_vec(),
        b"NENESESSID=sess_*".to_vec(),
        b"NENESESSID=../../etc/passwd".to_vec(),
        b"NENESESSID=abc\x00def".to_vec(),
        b"NENESESSID=abc\r\nX-Injected: 1".to_vec(),
        format!("NENESESSID={}", "a".repeat(4096)).into_bytes(),
        "NENESESSID=ééééééééééééééééééééééééééééééé"
            .as_bytes()
            .to_vec(),
        format!("NENESESSID={}\u{2028}", &valid_looking[..31]).into_bytes(),
        many_same_name.into_bytes(),
    ];
    for (n, cookie) in cookies.iter().enumerate() {
        // Straight to nene (nginx and HTTP clients refuse some of these).
        let response = request_with_params(
            &stack.nene.addr,
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/session/counter"),
                (b"HTTP_COOKIE", cookie),
            ],
        )
        .await;
        assert_eq!(
            response.status(),
            200,
            "cookie {n}: {}",
            response.body_text()
        );
        assert_eq!(response.body_text(), r#"{"count":1}"#, "cookie {n}");
        let head = String::from_utf8_lossy(response.head()).to_string();
        assert!(!head.contains("X-Injected"), "cookie {n}: {head}");
    }
    // Only freshly issued, well-formed ids were ever stored.
    let files = session_files(&stack.save_path());
    assert_eq!(files.len(), cookies.len());
    for file in files {
        let id = file.strip_prefix("sess_").unwrap();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)),
            "{file}"
        );
    }
    // The many-cookies case takes the first valid one when there is one.
    let mut browser = stack.browser();
    browser.get("/session/counter").await;
    let good = browser.session_id().unwrap();
    let header = format!("NENESESSID=junk; NENESESSID={good}; NENESESSID=zzz");
    let page = browser
        .get_with_cookie_header("/session/counter", header.as_bytes())
        .await;
    assert_eq!(page.json()["count"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_hundred_requests_twenty_at_a_time_lose_no_increment() {
    let stack = Stack::start(&[]);
    let mut browser = stack.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    assert_eq!(browser.hammer_counter(20, 5).await, 100);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 102);
    // Queued requests start from what their predecessor handed over.
    let status = browser.get("/status?json").await;
    let hand_offs = status.json()["session lock hand-offs"].as_u64().unwrap();
    assert!(hand_offs > 0, "{}", status.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_sharing_a_save_path_lose_no_increment() {
    // flock excludes the other process; each hands its lock on only to
    // requests queued in its own process.
    let shared = tempfile::tempdir().unwrap();
    // Shared by the two instances (same user), private to them.
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let save_path = shared.path().display().to_string();
    let env = [("NENE_SESSION__SAVE_PATH", save_path.as_str())];
    let first = Nene::start(&env);
    let second = Nene::start(&env);
    let nginx = Nginx::start_with(common::NginxOptions {
        upstreams: vec![&first.upstream, &second.upstream],
        keep_conn: true,
        max_body: "8m",
    });
    let mut browser = Browser::new(&nginx.url(""));
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    assert_eq!(browser.hammer_counter(20, 5).await, 100);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 102);
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_with_separate_save_paths_do_not_share_sessions() {
    // This is why the Redis backend exists: file sessions are per server.
    let first = Nene::start(&[]);
    let second = Nene::start(&[]);
    let nginx = Nginx::start_with(common::NginxOptions {
        upstreams: vec![&first.upstream, &second.upstream],
        keep_conn: true,
        max_body: "8m",
    });
    let mut browser = Browser::new(&nginx.url(""));
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

#[tokio::test(flavor = "multi_thread")]
async fn the_absolute_lifetime_ends_a_session_however_active() {
    let stack = Stack::start(&[("NENE_SESSION__ABSOLUTE_LIFETIME", "1")]);
    let mut browser = stack.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    let first_id = browser.session_id().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    assert_ne!(browser.session_id().unwrap(), first_id);
    assert!(!stack.save_path().join(format!("sess_{first_id}")).exists());
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
async fn an_unwritable_session_directory_gives_503_and_other_routes_keep_working() {
    let stack = Stack::start(&[]);
    let mut browser = stack.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let id = browser.session_id().unwrap();
    // Replace the directory with a file: every write now fails, even as root.
    let save_path = stack.save_path();
    let kept = stack.nene.dir().join("kept");
    std::fs::rename(&save_path, &kept).unwrap();
    std::fs::write(&save_path, "not a directory").unwrap();
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert_eq!(browser.get("/health").await.status, 200);
    // Put it back: the session is intact and counting resumes.
    std::fs::remove_file(&save_path).unwrap();
    std::fs::rename(&kept, &save_path).unwrap();
    assert_eq!(browser.session_id().unwrap(), id);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    assert!(
        stack.nene.log_text().contains("session"),
        "a log line names the failure"
    );
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
    common::wait_for_log(&stack.nene.dir().join("nene.log"), "PHP's session format");
    common::wait_for_log(
        &stack.nene.dir().join("nene.log"),
        "over session.max_size (4096)",
    );
}
