//! The todo app's HTML pages in a real browser (Debian's Chromium,
//! headless, through nginx, on SQLite): the whole flow with JavaScript
//! off, then what only a browser can tell — the session cookie out of a
//! page script's reach, a title that is a script shown as text, the back
//! button after logout, the 403 page for a form without its token, the
//! status page rendered. A screenshot of the list page is written to
//! `target/browser/todo-list.png`.

mod common;

use common::Stack;
use nene_test_support::webdriver::Chromium;

fn sqlite_stack() -> (Stack, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}/todo.db", dir.path().display());
    (Stack::start(&dsn), dir)
}

/// Registers and logs in `name` through the forms.
async fn sign_up(browser: &Chromium, base: &str, name: &str) {
    browser.open(&format!("{base}/account/register")).await;
    browser.type_into("input[name=username]", name).await;
    browser
        .type_into("input[name=password]", "a long password")
        .await;
    browser.click("form button").await;
    assert!(
        browser
            .source()
            .await
            .contains(&format!("Account {name} created")),
        "{}",
        browser.source().await
    );
    browser.type_into("input[name=username]", name).await;
    browser
        .type_into("input[name=password]", "a long password")
        .await;
    browser.click("main form button").await;
    assert!(
        browser.url().await.ends_with("/list"),
        "{}",
        browser.url().await
    );
}

async fn add(browser: &Chromium, title: &str) {
    browser.type_into("input[name=title]", title).await;
    browser.click("#add").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_browser_without_javascript() {
    let (stack, _dir) = sqlite_stack();
    let base = stack.base();
    let browser = Chromium::without_javascript().await;
    browser.open(&format!("{base}/list")).await;
    assert!(
        browser.url().await.ends_with("/account/login"),
        "{}",
        browser.url().await
    );
    sign_up(&browser, &base, "robin").await;
    assert_eq!(browser.text(".flash").await, "Welcome, robin.");

    for title in ["milk", "eggs", "bread"] {
        add(&browser, title).await;
    }
    assert_eq!(browser.count("#todos li:not(.empty)").await, 3);
    browser.click("#todos li:nth-child(1) .toggle").await;
    assert_eq!(browser.count("#todos li.done").await, 1);
    assert_eq!(browser.text("#todos li.done .title").await, "milk");
    browser.click("#todos li:nth-child(2) .delete").await;
    assert_eq!(browser.text(".flash").await, "Deleted eggs.");
    assert_eq!(browser.count("#todos li:not(.empty)").await, 2);
    // An empty title: the form again, with the message.
    add(&browser, "   ").await;
    assert_eq!(browser.text("#error").await, "a title is required");

    browser.open(&format!("{base}/list")).await;
    browser.click("#logout").await;
    assert!(browser.url().await.ends_with("/account/login"));
    // Back to the list page: it was never stored (no-store), so the
    // browser asks again and a logged-out visitor is sent to log in.
    browser.back().await;
    let page = browser.source().await;
    assert!(
        !page.contains("bread"),
        "the list shown after logout:\n{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_page_script_could_reach_and_what_the_browser_shows() {
    let (stack, _dir) = sqlite_stack();
    let base = stack.base();
    let browser = Chromium::start().await;
    sign_up(&browser, &base, "sam").await;

    // The session cookie is HttpOnly: no script of the page can read it.
    let cookies = browser.run_script("return document.cookie").await;
    assert!(
        !cookies.as_str().unwrap_or_default().contains("NENESESSID"),
        "the session cookie is visible to scripts: {cookies}"
    );

    // A title that is a script is shown as text and never runs.
    let script = "<script>alert(1)</script>";
    add(&browser, script).await;
    assert_eq!(browser.text("#todos li .title").await, script);
    let alert = browser.alert_text().await;
    assert!(alert.is_err(), "an alert opened: {alert:?}");
    add(&browser, "call the plumber").await;
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    browser.screenshot(&shots.join("todo-list.png")).await;
    assert!(
        std::fs::metadata(shots.join("todo-list.png"))
            .unwrap()
            .len()
            > 1000
    );

    // A form without its token (a page of another site would post one
    // like it) is the 403 page, and nothing is added.
    browser
        .run_script(
            "document.querySelector('form[action=\"/list/add\"] input[name=_token]').remove()",
        )
        .await;
    add(&browser, "forged").await;
    assert!(
        browser.source().await.contains("403"),
        "{}",
        browser.source().await
    );
    browser.open(&format!("{base}/list")).await;
    assert!(!browser.source().await.contains("forged"));

    // The status page renders for an operator's browser.
    browser.open(&format!("{base}/status?html")).await;
    assert_eq!(browser.text("table tr:first-child th").await, "pool");
    assert!(browser.count("table tr").await > 10);
}
