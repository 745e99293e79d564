//! The todo app on SQLite (a file in a temporary directory), through a real
//! nginx and the real `todo` binary: the core flow, CSRF, session fixation,
//! concurrent writes, validation, and start-up configuration errors.

mod common;

use std::sync::Arc;

use common::api::{User, get_with_session};
use common::{Stack, TodoApp, free_port, run_todo};
use reqwest::Method;
use serde_json::json;

fn sqlite_stack() -> (Stack, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}/todo.db", dir.path().display());
    (Stack::start(&dsn), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_flow_through_nginx() {
    let (stack, dir) = sqlite_stack();
    common::flows::core_flow(&stack.base()).await;
    assert!(
        dir.path().join("todo.db").is_file(),
        "the DSN's file was not used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_pages_through_nginx() {
    let (stack, _dir) = sqlite_stack();
    common::flows::page_flow(&stack.base()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_flow_with_sessions_in_redis() {
    let redis = nene_test_support::redis_server::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}/todo.db", dir.path().display());
    let stack = Stack::start_with(&dsn, &[("NENE_SESSION_DSN", &redis.url())]);
    common::flows::core_flow(&stack.base()).await;
    // The sessions were Redis's, not files.
    let sessions = stack.app.dir().join("sessions");
    let files = std::fs::read_dir(&sessions).map_or(0, |entries| entries.count());
    assert_eq!(
        files, 0,
        "session files were written with NENE_SESSION_DSN set"
    );
    assert!(
        stack.app.log_text().contains("redis"),
        "{}",
        stack.app.log_text()
    );
}

/// A logged-in form post traced by nene, as an operator with a collector
/// sees it: the caller's trace continued, the session's lock wait, read
/// and write with their Redis calls, and the application's SQL query under
/// the handler; neither the session id nor the user's data in any span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_in_request_is_traced_with_its_session_and_sql_spans() {
    use nene_test_support::otlp_receiver::{OtlpProtocol, OtlpReceiver, ReceivedSpan};
    let receiver = OtlpReceiver::start(OtlpProtocol::Grpc);
    let redis = nene_test_support::redis_server::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}/todo.db", dir.path().display());
    let endpoint = receiver.endpoint();
    let stack = Stack::start_with(
        &dsn,
        &[
            ("NENE_SESSION_DSN", &redis.url()),
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let user = User::signed_up(&stack.base(), "ada", "a secret passphrase").await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{caller}-01");
    let answer = (user.post_form_traced("/list/add", "title=buy+oat+milk", &traceparent)).await;
    assert!(answer.body.contains("buy oat milk"), "{}", answer.body);

    let spans = receiver.wait_for(std::time::Duration::from_secs(10), |spans| {
        let in_trace = |name: &str| spans.iter().any(|s| s.trace_id == trace && s.name == name);
        in_trace("POST /list/add") && in_trace("INSERT todos") && in_trace("session write")
    });
    let spans: Vec<_> = spans.into_iter().filter(|s| s.trace_id == trace).collect();
    let named = |name: &str| {
        (spans.iter().find(|s| s.name == name))
            .unwrap_or_else(|| panic!("no {name:?} in {spans:#?}"))
    };
    let children = |parent: &ReceivedSpan| -> Vec<&ReceivedSpan> {
        spans
            .iter()
            .filter(|s| s.parent_span_id == parent.span_id)
            .collect()
    };
    let server = named("POST /list/add");
    assert_eq!(
        (server.kind.as_str(), server.parent_span_id.as_str()),
        ("server", caller)
    );
    assert_eq!(server.attribute("http.response.status_code"), Some("303"));
    let handler = named("handler");
    assert_eq!(handler.parent_span_id, server.span_id);
    // The handler read the session without its lock (who is logged in),
    // then locked it to add the flash message: two reads, the second
    // with the lock wait and Redis' lock-and-read.
    let reads: Vec<_> = children(handler)
        .into_iter()
        .filter(|s| s.name == "session read")
        .collect();
    assert_eq!(reads.len(), 2, "{spans:#?}");
    let under_reads: Vec<&str> = reads
        .iter()
        .flat_map(|read| children(read))
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        under_reads.contains(&"session lock wait"),
        "{under_reads:?}"
    );
    assert!(
        under_reads.contains(&"redis lock_and_read"),
        "{under_reads:?}"
    );
    let write = named("session write");
    assert_eq!(write.parent_span_id, server.span_id);
    let stored = children(write);
    assert!(
        stored
            .iter()
            .any(|s| s.attribute("db.system.name") == Some("redis")),
        "{stored:?}"
    );
    // The application's own query, with no code of its for traces.
    let query = named("INSERT todos");
    assert_eq!(query.parent_span_id, handler.span_id);
    assert_eq!(query.kind, "client");
    assert_eq!(query.attribute("db.system.name"), Some("sqlite"));
    let session_id = user.session_id().expect("logged in");
    let token = user.csrf.clone().expect("a token");
    for span in &spans {
        for value in span.attributes.values().chain([&span.name]) {
            for secret in [session_id.as_str(), &token, "oat milk", "ada", "passphrase"] {
                assert!(!value.contains(secret), "{secret:?} in {span:?}");
            }
        }
    }
}

/// Under a ratio sampler, the application's spans are exported only with
/// their request: a query of a request the sampler left out is not sent as
/// a trace of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untraced_requests_queries_are_not_exported_alone() {
    use nene_test_support::otlp_receiver::{OtlpProtocol, OtlpReceiver};
    let receiver = OtlpReceiver::start(OtlpProtocol::HttpProtobuf);
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}/todo.db", dir.path().display());
    let endpoint = receiver.endpoint();
    let stack = Stack::start_with(
        &dsn,
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let user = User::signed_up(&stack.base(), "ada", "a secret passphrase").await;
    for _ in 0..30 {
        assert_eq!(user.get("/todo").await.status, 200);
    }
    // About half the requests are traced (each with its query); wait for
    // some, then for stragglers.
    receiver.wait_for(std::time::Duration::from_secs(10), |spans| {
        spans.iter().filter(|s| s.name == "SELECT todos").count() >= 5
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let spans = receiver.spans();
    let handlers: Vec<&str> = (spans.iter())
        .filter(|s| s.name == "handler")
        .map(|s| s.span_id.as_str())
        .collect();
    let queries: Vec<_> = spans.iter().filter(|s| s.name == "SELECT todos").collect();
    assert!(
        queries.len() < 30,
        "every request was traced: {}",
        queries.len()
    );
    for query in queries {
        assert!(
            handlers.contains(&query.parent_span_id.as_str()),
            "{query:?} has no request"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_requests_need_the_csrf_token() {
    let (stack, _dir) = sqlite_stack();
    let base = stack.base();

    // Register without a token: refused, and nothing was created.
    let mut dave = User::new(&base);
    dave.get("/auth/whoami").await;
    let body = json!({ "username": "dave", "password": "daves password" }).to_string();
    dave.raw(Method::POST, "/auth/register", Some(&body), None)
        .await
        .assert_error(403, "CSRF-TOKEN-INVALID");
    dave.register("dave", "daves password").await.assert_ok(201);

    // A token from before login is replaced at login.
    let before_login = dave.fetch_csrf().await;
    dave.login("dave", "daves password").await.assert_ok(200);
    let token = dave.csrf.clone().unwrap();
    assert_ne!(
        token, before_login,
        "the CSRF token was not rotated at login"
    );
    assert_eq!(token.len(), 64, "32 random bytes, hex: {token}");
    let id = dave.create_todo("keep me").await;
    let item = format!("/todo/item?id={id}");

    let wrong = "0".repeat(64);
    let create = json!({ "title": "forged" }).to_string();
    let change = json!({ "title": "forged", "done": true }).to_string();
    for csrf in [
        None,
        Some(wrong.as_str()),
        Some(before_login.as_str()),
        Some(""),
    ] {
        dave.raw(Method::POST, "/todo/index", Some(&create), csrf)
            .await
            .assert_error(403, "CSRF-TOKEN-INVALID");
        dave.raw(Method::PUT, &item, Some(&change), csrf)
            .await
            .assert_error(403, "CSRF-TOKEN-INVALID");
        dave.raw(Method::DELETE, &item, None, csrf)
            .await
            .assert_error(403, "CSRF-TOKEN-INVALID");
        dave.raw(Method::POST, "/auth/logout", Some("{}"), csrf)
            .await
            .assert_error(403, "CSRF-TOKEN-INVALID");
    }
    // Another user's valid token is no good in this session either.
    let mut eve = User::new(&base);
    let eves = eve.fetch_csrf().await;
    dave.raw(Method::POST, "/todo/index", Some(&create), Some(&eves))
        .await
        .assert_error(403, "CSRF-TOKEN-INVALID");

    // Nothing changed, and the right token still works.
    assert_eq!(dave.titles().await, ["keep me"]);
    let kept = dave.get(&item).await.assert_ok(200);
    assert_eq!(kept, json!({ "id": id, "title": "keep me", "done": false }));
    dave.get("/auth/whoami").await.assert_ok(200);
    dave.raw(Method::DELETE, &item, None, Some(&token))
        .await
        .assert_ok(200);
    assert!(dave.titles().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_changes_the_session_id_and_a_second_login_keeps_the_first() {
    let (stack, _dir) = sqlite_stack();
    let base = stack.base();
    let mut frank = User::new(&base);
    frank
        .register("frank", "franks password")
        .await
        .assert_ok(201);
    let before = frank.session_id().expect("a session before login");
    frank.login("frank", "franks password").await.assert_ok(200);
    let after = frank.session_id().expect("a session after login");
    assert_ne!(before, after, "login kept the session id (fixation)");
    get_with_session(&base, "/auth/whoami", &before)
        .await
        .assert_error(401, "AUTH-REQUIRED");
    let me = get_with_session(&base, "/auth/whoami", &after)
        .await
        .assert_ok(200);
    assert_eq!(me["username"], "frank");

    // Frank logs in again elsewhere: two sessions, both working.
    let mut elsewhere = User::new(&base);
    elsewhere
        .login("frank", "franks password")
        .await
        .assert_ok(200);
    assert_ne!(elsewhere.session_id(), frank.session_id());
    frank.get("/auth/whoami").await.assert_ok(200);
    frank.create_todo("from the first session").await;
    elsewhere.create_todo("from the second session").await;
    assert_eq!(
        frank.titles().await,
        ["from the first session", "from the second session"]
    );
    assert_eq!(elsewhere.titles().await, frank.titles().await);
    // Logging out one leaves the other logged in.
    elsewhere
        .post("/auth/logout", json!({}))
        .await
        .assert_ok(200);
    elsewhere
        .get("/auth/whoami")
        .await
        .assert_error(401, "AUTH-REQUIRED");
    frank.get("/auth/whoami").await.assert_ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_are_all_stored() {
    let (stack, _dir) = sqlite_stack();
    let grace = Arc::new(User::signed_up(&stack.base(), "grace", "graces password").await);
    let mut tasks = Vec::new();
    for n in 0..50 {
        let grace = grace.clone();
        tasks.push(tokio::spawn(async move {
            let answer = grace
                .post("/todo/index", json!({ "title": format!("task {n}") }))
                .await;
            answer.assert_ok(201);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut titles = grace.titles().await;
    titles.sort();
    let mut expected: Vec<String> = (0..50).map(|n| format!("task {n}")).collect();
    expected.sort();
    assert_eq!(titles, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_refused_with_a_code() {
    let (stack, _dir) = sqlite_stack();
    let base = stack.base();
    let mut heidi = User::new(&base);
    heidi
        .register("hi", "long enough")
        .await
        .assert_error(422, "USER-NAME-INVALID");
    heidi
        .register("heidi", "short")
        .await
        .assert_error(422, "USER-PASSWORD-INVALID");
    heidi
        .login("heidi", "long enough")
        .await
        .assert_error(401, "AUTH-INVALID");
    heidi.register("heidi", "long enough").await.assert_ok(201);
    heidi.login("heidi", "long enough").await.assert_ok(200);

    heidi
        .post("/todo/index", json!({}))
        .await
        .assert_error(422, "TODO-TITLE-REQUIRED");
    heidi
        .post("/todo/index", json!({ "title": "   " }))
        .await
        .assert_error(422, "TODO-TITLE-REQUIRED");
    heidi
        .post("/todo/index", json!({ "title": "x".repeat(201) }))
        .await
        .assert_error(422, "TODO-TITLE-TOO-LONG");
    let csrf = heidi.csrf.clone();
    heidi
        .raw(
            Method::POST,
            "/todo/index",
            Some("{\"title\": "),
            csrf.as_deref(),
        )
        .await
        .assert_error(400, "INPUT-INVALID");
    heidi
        .raw(
            Method::POST,
            "/todo/index",
            Some("{\"title\": 5}"),
            csrf.as_deref(),
        )
        .await
        .assert_error(422, "INPUT-INVALID");
    assert!(
        heidi.titles().await.is_empty(),
        "an invalid todo was stored"
    );

    let id = heidi.create_todo("  trimmed  ").await;
    let item = format!("/todo/item?id={id}");
    heidi
        .put(&item, json!({}))
        .await
        .assert_error(422, "INPUT-INVALID");
    heidi
        .put(&item, json!({ "title": "" }))
        .await
        .assert_error(422, "TODO-TITLE-REQUIRED");
    heidi
        .raw(Method::PUT, &item, Some("not json"), csrf.as_deref())
        .await
        .assert_error(400, "INPUT-INVALID");
    heidi
        .get("/todo/item")
        .await
        .assert_error(400, "INPUT-INVALID");
    heidi
        .get("/todo/item?id=-1")
        .await
        .assert_error(400, "INPUT-INVALID");
    let kept = heidi.get(&item).await.assert_ok(200);
    assert_eq!(kept, json!({ "id": id, "title": "trimmed", "done": false }));

    // A path no controller answers is the app's 404 page.
    let missing = heidi.get("/nothing/here").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("TODO API"), "{}", missing.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_dsn_creates_var_todo_db() {
    // No DSN in the environment: ini/site.ini's sqlite://var/todo.db,
    // relative to the working directory, created with its directory.
    let app = TodoApp::start_default();
    assert!(
        app.dir().join("var/todo.db").is_file(),
        "{}",
        app.log_text()
    );
}

#[test]
fn config_never_shows_the_dsn_password() {
    let output = run_todo(
        &["config"],
        &[(
            "NENE_TODO__DATABASE_DSN",
            "postgres://todo:S3cret-pass@db.internal:5432/todo",
        )],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("TODO_DATABASE_DSN"))
        .unwrap_or_else(|| panic!("no TODO_DATABASE_DSN in:\n{stdout}"));
    assert!(line.contains("todo:***@db.internal"), "{line}");
    assert!(!stdout.contains("S3cret-pass") && !stderr.contains("S3cret-pass"));
}

#[test]
fn an_unknown_dsn_stops_start_up_naming_the_setting() {
    let listen = format!("127.0.0.1:{}", free_port());
    for dsn in [
        "ftp://bob:Hunter2-secret@files.example/todo",
        "postgres://bob:Hunter2-secret@db.example:notaport/todo",
    ] {
        let output = run_todo(
            &["serve", "--listen", &listen],
            &[("NENE_TODO__DATABASE_DSN", dsn)],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{dsn}: {stderr}");
        assert!(stderr.contains("todo.database_dsn"), "{stderr}");
        assert!(stderr.contains("NENE_TODO__DATABASE_DSN"), "{stderr}");
        assert!(stderr.contains("bob:***@"), "{stderr}");
        assert!(
            stderr.contains("postgres://") && stderr.contains("mysql://"),
            "{stderr}"
        );
        assert!(!stderr.contains("Hunter2-secret"), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("Hunter2-secret"));
    }
}

#[test]
fn a_database_that_cannot_be_written_stops_start_up() {
    // A database the app can read but not write: opened read-only (as a
    // file without write permission is, for any user but root).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("todo.db");
    let listen = format!("127.0.0.1:{}", free_port());
    let writable = format!("sqlite://{}", file.display());
    // A first start creates the file and its schema; then read-only.
    drop(TodoApp::start(&writable, &[]));
    let read_only = format!("sqlite://{}?mode=ro", file.display());
    let output = run_todo(
        &["serve", "--listen", &listen],
        &[("NENE_TODO__DATABASE_DSN", &read_only)],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot be written"), "{stderr}");
    assert!(stderr.contains("writable by this user"), "{stderr}");
    assert!(!stderr.contains("ready"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_waits_past_the_busy_timeout_is_a_503_and_reads_go_on() {
    let (stack, dir) = sqlite_stack();
    let base = stack.base();
    let erin = User::signed_up(&base, "erin", "erins password").await;
    erin.create_todo("before the lock").await;

    // Another program holds SQLite's write lock for longer than the app's
    // busy timeout (5 s).
    let other = rusqlite::Connection::open(dir.path().join("todo.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    erin.post("/todo/index", json!({ "title": "during the lock" }))
        .await
        .assert_error(503, "DATABASE-UNAVAILABLE");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "the write gave up after {:?}, before the busy timeout",
        started.elapsed()
    );
    // Reads do not wait for the writer (WAL).
    assert_eq!(erin.titles().await, ["before the lock"]);

    other.execute_batch("ROLLBACK").unwrap();
    erin.create_todo("after the lock").await;
    assert_eq!(erin.titles().await, ["before the lock", "after the lock"]);
}
