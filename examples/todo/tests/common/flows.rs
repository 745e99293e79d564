//! Flows every backend must pass, run through nginx against `base`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::api::{User, get_with_session};

/// Register, login, whoami, CRUD, one user isolated from another, logout.
pub async fn core_flow(base: &str) {
    let mut alice = User::new(base);
    alice
        .get("/auth/whoami")
        .await
        .assert_error(401, "AUTH-REQUIRED");
    alice
        .get("/todo/index")
        .await
        .assert_error(401, "AUTH-REQUIRED");

    let registered = alice
        .register("alice", "correct horse")
        .await
        .assert_ok(201);
    assert_eq!(registered["username"], "alice");
    let alice_id = registered["id"].as_i64().expect("a user id");
    alice
        .register("alice", "another password")
        .await
        .assert_error(409, "USER-EXISTS");
    // One rule for names on every database: compared without case, stored
    // and shown as lowercase (MariaDB's collation alone would differ).
    alice
        .register("ALICE", "another password")
        .await
        .assert_error(409, "USER-EXISTS");

    alice
        .login("alice", "wrong password")
        .await
        .assert_error(401, "AUTH-INVALID");
    alice
        .login("nobody", "correct horse")
        .await
        .assert_error(401, "AUTH-INVALID");
    alice
        .get("/auth/whoami")
        .await
        .assert_error(401, "AUTH-REQUIRED");
    let login = alice.login("Alice", "correct horse").await.assert_ok(200);
    assert_eq!(login["user"]["username"], "alice", "the stored name");

    let me = alice.get("/auth/whoami").await.assert_ok(200);
    assert_eq!(
        (me["id"].as_i64(), me["username"].as_str()),
        (Some(alice_id), Some("alice"))
    );

    // Create and list.
    assert!(alice.titles().await.is_empty());
    let created = alice
        .post("/todo/index", json!({ "title": "buy milk" }))
        .await
        .assert_ok(201);
    assert_eq!(
        (created["title"].as_str(), created["done"].as_bool()),
        (Some("buy milk"), Some(false))
    );
    let milk = created["id"].as_i64().expect("an id");
    // Client input is never an outage: a control character (PostgreSQL
    // refuses NUL in text) is refused the same way on every database.
    for title in ["a\u{0}b", "line\nbreak"] {
        alice
            .post("/todo/index", json!({ "title": title }))
            .await
            .assert_error(422, "TODO-TITLE-INVALID");
    }
    let tests = alice.create_todo("write tests").await;
    assert_ne!(milk, tests);
    assert_eq!(alice.titles().await, ["buy milk", "write tests"]);

    // Read one.
    let item = alice
        .get(&format!("/todo/item?id={milk}"))
        .await
        .assert_ok(200);
    assert_eq!(
        item,
        json!({ "id": milk, "title": "buy milk", "done": false })
    );

    // Update the title, then done, each leaving the other as it was.
    let updated = alice
        .put(
            &format!("/todo/item?id={milk}"),
            json!({ "title": "buy oat milk" }),
        )
        .await
        .assert_ok(200);
    assert_eq!(
        updated,
        json!({ "id": milk, "title": "buy oat milk", "done": false })
    );
    let updated = alice
        .put(&format!("/todo/item?id={milk}"), json!({ "done": true }))
        .await
        .assert_ok(200);
    assert_eq!(
        updated,
        json!({ "id": milk, "title": "buy oat milk", "done": true })
    );
    let item = alice
        .get(&format!("/todo/item?id={milk}"))
        .await
        .assert_ok(200);
    assert_eq!(
        item,
        json!({ "id": milk, "title": "buy oat milk", "done": true })
    );

    // The list shows each todo as the item route does (numbers, booleans),
    // oldest first, with a title that needs JSON escapes escaped: on
    // SQLite the database writes the list's JSON itself.
    let odd_title = "say \"hi\" \\ to\tJosé 😀 </script>";
    let odd = alice.create_todo(odd_title).await;
    assert_eq!(
        alice.get("/todo/index").await.assert_ok(200),
        json!([
            { "id": milk, "title": "buy oat milk", "done": true },
            { "id": tests, "title": "write tests", "done": false },
            { "id": odd, "title": odd_title, "done": false },
        ])
    );
    alice
        .delete(&format!("/todo/item?id={odd}"))
        .await
        .assert_ok(200);

    // Delete.
    alice
        .delete(&format!("/todo/item?id={tests}"))
        .await
        .assert_ok(200);
    alice
        .get(&format!("/todo/item?id={tests}"))
        .await
        .assert_error(404, "TODO-NOT-FOUND");
    alice
        .delete(&format!("/todo/item?id={tests}"))
        .await
        .assert_error(404, "TODO-NOT-FOUND");
    assert_eq!(alice.titles().await, ["buy oat milk"]);

    // Bob sees none of Alice's todos and cannot touch them.
    let bob = User::signed_up(base, "bob", "bobs password").await;
    assert!(bob.titles().await.is_empty());
    let path = format!("/todo/item?id={milk}");
    bob.get(&path).await.assert_error(404, "TODO-NOT-FOUND");
    bob.put(&path, json!({ "title": "mine now", "done": false }))
        .await
        .assert_error(404, "TODO-NOT-FOUND");
    bob.delete(&path).await.assert_error(404, "TODO-NOT-FOUND");
    let item = alice.get(&path).await.assert_ok(200);
    assert_eq!(
        item,
        json!({ "id": milk, "title": "buy oat milk", "done": true })
    );
    let bobs = bob.create_todo("bob's own").await;
    assert_eq!(bob.titles().await, ["bob's own"]);
    assert_eq!(alice.titles().await, ["buy oat milk"]);
    alice
        .get(&format!("/todo/item?id={bobs}"))
        .await
        .assert_error(404, "TODO-NOT-FOUND");

    // A bad id is an input error, not a missing todo.
    alice
        .get("/todo/item?id=abc")
        .await
        .assert_error(400, "INPUT-INVALID");

    // Logout ends the session.
    let session = alice.session_id().expect("a session cookie");
    alice.post("/auth/logout", json!({})).await.assert_ok(200);
    alice
        .get("/auth/whoami")
        .await
        .assert_error(401, "AUTH-REQUIRED");
    get_with_session(base, "/auth/whoami", &session)
        .await
        .assert_error(401, "AUTH-REQUIRED");
    // Bob's session is untouched.
    bob.get("/auth/whoami").await.assert_ok(200);
}

/// The database goes away: requests answer 503 DATABASE-UNAVAILABLE within
/// a few seconds (never hang); it comes back on the same port: requests
/// succeed again with the same app process.
pub async fn database_outage(base: &str, stop: impl FnOnce(), start: impl FnOnce()) {
    let carol = User::signed_up(base, "carol", "carols password").await;
    carol.create_todo("before the outage").await;

    stop();
    for attempt in 0..2 {
        let started = Instant::now();
        let answer = carol.get("/todo/index").await;
        let took = started.elapsed();
        answer.assert_error(503, "DATABASE-UNAVAILABLE");
        assert!(
            answer.headers.contains_key("retry-after"),
            "503 without Retry-After: {:?}",
            answer.headers
        );
        assert!(
            took < Duration::from_secs(6),
            "attempt {attempt} took {took:?}"
        );
    }
    let started = Instant::now();
    carol
        .post("/todo/index", json!({ "title": "during the outage" }))
        .await
        .assert_error(503, "DATABASE-UNAVAILABLE");
    assert!(started.elapsed() < Duration::from_secs(6));

    start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answer = carol.get("/todo/index").await;
    while answer.status != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        answer = carol.get("/todo/index").await;
    }
    let todos = answer.assert_ok(200);
    assert_eq!(todos.as_array().map(Vec::len), Some(1), "{todos}");
    assert_eq!(todos[0]["title"], "before the outage");
    carol.create_todo("after the outage").await;
    assert_eq!(
        carol.titles().await,
        ["before the outage", "after the outage"]
    );
}

/// A database server a test started and can stop and start again.
pub trait TestDatabase {
    /// The app's DSN, password included.
    fn dsn(&self) -> String;
    /// The password in the DSN, which must never reach a log line.
    fn password(&self) -> &'static str;
    /// Stops the server (the outage).
    fn stop(&mut self);
    /// Starts it again on the same port with the same data.
    fn start_again(&mut self);
}

/// The suite every database backend passes, through nginx: the core flow,
/// then an outage and recovery, and the password never in the app's log
/// (the DSN is logged redacted).
pub async fn suite_on(database: impl TestDatabase) {
    let database = std::cell::RefCell::new(database);
    let dsn = database.borrow().dsn();
    let password = database.borrow().password();
    let stack = super::Stack::start(&dsn);
    let base = stack.base();
    core_flow(&base).await;
    page_flow(&base).await;
    database_outage(
        &base,
        || database.borrow_mut().stop(),
        || database.borrow_mut().start_again(),
    )
    .await;
    let log = stack.app.log_text();
    let scheme = dsn.split("://").next().unwrap();
    assert!(
        log.contains(&format!("database {scheme}://todo:***@")),
        "{log}"
    );
    assert!(
        !log.contains(password),
        "the app logged the database password"
    );
}

impl TestDatabase for super::mariadb::MariaDb {
    fn dsn(&self) -> String {
        super::mariadb::MariaDb::dsn(self)
    }
    fn password(&self) -> &'static str {
        super::mariadb::PASSWORD
    }
    fn stop(&mut self) {
        super::mariadb::MariaDb::stop(self)
    }
    fn start_again(&mut self) {
        super::mariadb::MariaDb::start_again(self)
    }
}

impl TestDatabase for super::postgres::Postgres {
    fn dsn(&self) -> String {
        super::postgres::Postgres::dsn(self)
    }
    fn password(&self) -> &'static str {
        super::postgres::PASSWORD
    }
    fn stop(&mut self) {
        super::postgres::Postgres::stop(self)
    }
    fn start_again(&mut self) {
        super::postgres::Postgres::start_again(self)
    }
}

/// The HTML pages as a browser without JavaScript uses them: register,
/// log in, add, toggle and delete todos, log out; validation errors shown
/// with the input kept, every user value escaped, the CSRF token checked,
/// nothing cached, one user's todos out of another's reach.
pub async fn page_flow(base: &str) {
    use nene_test_support::browser::{Browser, Page};

    fn token(page: &Page) -> String {
        let marker = r#"name="_token" value=""#;
        let start = page
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no token:\n{}", page.body));
        page.body[start + marker.len()..]
            .split('"')
            .next()
            .unwrap()
            .to_string()
    }
    fn form(pairs: &[(&str, &str)]) -> String {
        let mut form = String::new();
        for (name, value) in pairs {
            let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            form.push_str(&format!("{name}={value}&"));
        }
        form
    }
    /// (id, title, done) of each todo on the list page, in order.
    fn todos(page: &Page) -> Vec<(String, String, bool)> {
        page.body
            .split("<li class=\"")
            .skip(1)
            .filter(|item| !item.starts_with("empty"))
            .map(|item| {
                let done = item.starts_with("done");
                let title = item.split("<span class=\"title\">").nth(1).unwrap();
                let title = title.split("</span>").next().unwrap().to_string();
                let id = item.split("name=\"id\" value=\"").nth(1).unwrap();
                (id.split('"').next().unwrap().to_string(), title, done)
            })
            .collect()
    }
    /// HTML text as a browser shows it (the entities an escaper writes).
    fn unescaped(html: &str) -> String {
        let mut text = html.to_string();
        for (entity, character) in [
            ("&lt;", "<"),
            ("&#60;", "<"),
            ("&gt;", ">"),
            ("&#62;", ">"),
            ("&quot;", "\""),
            ("&#34;", "\""),
            ("&#39;", "'"),
            ("&#x2f;", "/"),
            ("&amp;", "&"),
            ("&#38;", "&"),
        ] {
            text = text.replace(entity, character);
        }
        text
    }
    fn redirects_to(page: &Page, location: &str) {
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.headers["location"], location);
    }

    let mut pat = Browser::new(base).not_following_redirects();
    redirects_to(&pat.get("/list").await, "/account/login");
    let register = pat.get("/account/register").await;
    assert_eq!(register.status, 200);
    let t = token(&register);

    // Errors are shown on the form, the input kept and escaped.
    let bad = pat
        .post_form(
            "/account/register",
            &form(&[
                ("_token", &t),
                ("username", "<b>x"),
                ("password", "long enough"),
            ]),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(!bad.body.contains("<b>x"), "{}", bad.body);
    assert!(
        unescaped(&bad.body).contains(r#"value="<b>x""#),
        "{}",
        bad.body
    );
    let created = pat
        .post_form(
            "/account/register",
            &form(&[
                ("_token", &t),
                ("username", "pat"),
                ("password", "pats password"),
            ]),
        )
        .await;
    redirects_to(&created, "/account/login");
    let login = pat.get("/account/login").await;
    assert!(login.body.contains("Account pat created"), "{}", login.body);
    let wrong = pat
        .post_form(
            "/account/login",
            &form(&[
                ("_token", &t),
                ("username", "pat"),
                ("password", "not hers"),
            ]),
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains(r#"value="pat""#), "{}", wrong.body);
    let before_login = pat.cookies.clone();
    redirects_to(
        &pat.post_form(
            "/account/login",
            &form(&[
                ("_token", &t),
                ("username", "pat"),
                ("password", "pats password"),
            ]),
        )
        .await,
        "/list",
    );
    assert_ne!(pat.cookies, before_login, "the session id changed at login");

    let list = pat.get("/list").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.headers["cache-control"], "no-store");
    assert!(list.body.contains("Welcome, pat."), "{}", list.body);
    assert!(list.body.contains("Nothing to do."), "{}", list.body);
    let t = token(&list);
    assert_ne!(t, token(&register), "a new token at login");
    // The token from before login is worth nothing now.
    let stale = pat
        .post_form(
            "/list/add",
            &form(&[("_token", &token(&register)), ("title", "x")]),
        )
        .await;
    assert_eq!(stale.status, 403);
    assert!(
        stale.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    for title in ["<script>alert(1)</script>", "milk", "eggs"] {
        redirects_to(
            &pat.post_form("/list/add", &form(&[("_token", &t), ("title", title)]))
                .await,
            "/list",
        );
    }
    let empty = pat
        .post_form("/list/add", &form(&[("_token", &t), ("title", "   ")]))
        .await;
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains("a title is required"), "{}", empty.body);
    let list = pat.get("/list").await;
    assert!(!list.body.contains("<script>alert"), "{}", list.body);
    let items = todos(&list);
    let titles: Vec<&str> = items.iter().map(|(_, title, _)| title.as_str()).collect();
    let titles: Vec<String> = titles.iter().map(|title| unescaped(title)).collect();
    assert_eq!(titles, ["<script>alert(1)</script>", "milk", "eggs"]);
    let (milk, eggs) = (items[1].0.clone(), items[2].0.clone());

    redirects_to(
        &pat.post_form("/list/toggle", &form(&[("_token", &t), ("id", &milk)]))
            .await,
        "/list",
    );
    redirects_to(
        &pat.post_form("/list/delete", &form(&[("_token", &t), ("id", &eggs)]))
            .await,
        "/list",
    );
    let list = pat.get("/list").await;
    assert!(list.body.contains("Deleted eggs."), "{}", list.body);
    let items = todos(&list);
    assert_eq!(items.len(), 2);
    assert_eq!(items[1], (milk.clone(), "milk".to_string(), true));

    // Another user reaches none of pat's todos.
    let mut quinn = Browser::new(base).not_following_redirects();
    let d = token(&quinn.get("/account/register").await);
    let account = [
        ("_token", d.as_str()),
        ("username", "quinn"),
        ("password", "quinns password"),
    ];
    quinn.post_form("/account/register", &form(&account)).await;
    quinn.post_form("/account/login", &form(&account)).await;
    let d = token(&quinn.get("/list").await);
    let foreign = quinn
        .post_form("/list/toggle", &form(&[("_token", &d), ("id", &milk)]))
        .await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    assert!(
        todos(&pat.get("/list").await)[1].2,
        "quinn changed pat's todo"
    );

    redirects_to(
        &pat.post_form("/account/logout", &form(&[("_token", &t)]))
            .await,
        "/account/login",
    );
    redirects_to(&pat.get("/list").await, "/account/login");
}
