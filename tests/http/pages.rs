//! HTML pages with forms through nginx, as a PHP site has them (the example
//! application's `/notes`): the CSRF token a form carries as a hidden
//! field, the 403 for a POST without it or with another session's, the
//! token in `X-CSRF-Token` instead, POST/redirect/GET with a flash message
//! shown once, a rejected input shown again escaped.

use nene_test_support::browser::Page;
use nene_test_support::nene_behind_nginx;

/// The value of the form's hidden `_token` field.
fn hidden_token(page: &Page) -> String {
    let marker = r#"name="_token" value=""#;
    let start = page
        .body
        .find(marker)
        .unwrap_or_else(|| panic!("no token field in:\n{}", page.body))
        + marker.len();
    page.body[start..].split('"').next().unwrap().to_string()
}

fn form(token: &str, note: &str) -> String {
    let note: String = form_urlencoded::byte_serialize(note.as_bytes()).collect();
    format!("_token={token}&note={note}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_with_its_token_is_saved_and_the_flash_message_shows_once() {
    let (_nene, nginx) = nene_behind_nginx(&[]);
    let mut browser = nginx.browser().not_following_redirects();
    let page = browser.get("/notes").await;
    assert_eq!(page.status, 200);
    let token = hidden_token(&page);
    assert_eq!(token.len(), 64, "{token}");
    assert_eq!(
        hidden_token(&browser.get("/notes").await),
        token,
        "one token a session"
    );

    let saved = browser
        .post_form("/notes", &form(&token, "<b>milk</b> & eggs"))
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.headers["location"], "/notes");
    let after = browser.get("/notes").await;
    assert!(
        after
            .body
            .contains(r#"<p class="success">Saved: &lt;b&gt;milk&lt;/b&gt; &amp; eggs</p>"#),
        "{}",
        after.body
    );
    let again = browser.get("/notes").await;
    assert!(
        !again.body.contains("Saved:"),
        "shown twice:\n{}",
        again.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_without_the_sessions_token_is_refused_before_the_handler() {
    let (_nene, nginx) = nene_behind_nginx(&[]);
    let mut browser = nginx.browser().not_following_redirects();
    let token = hidden_token(&browser.get("/notes").await);
    let mut stranger = nginx.browser().not_following_redirects();
    let strangers_token = hidden_token(&stranger.get("/notes").await);
    assert_ne!(token, strangers_token);

    let wrong = "0".repeat(64);
    for body in [
        "note=hello".to_string(),
        form("", "hello"),
        form(&wrong, "hello"),
        form(&strangers_token, "hello"),
        form(&token[..63], "hello"),
    ] {
        let refused = browser.post_form("/notes", &body).await;
        assert_eq!(refused.status, 403, "{body}: {}", refused.body);
        assert!(refused.body.contains("Forbidden"), "{}", refused.body);
    }
    // A visitor whose session never got a token is refused too.
    let mut newcomer = nginx.browser();
    assert_eq!(
        newcomer
            .post_form("/notes", &form(&token, "x"))
            .await
            .status,
        403
    );
    // Nothing was saved: no message waits.
    assert!(!browser.get("/notes").await.body.contains("Saved:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_may_come_in_a_header_and_bad_input_shows_the_form_again() {
    let (nene, nginx) = nene_behind_nginx(&[]);
    let mut browser = nginx.browser().not_following_redirects();
    let token = hidden_token(&browser.get("/notes").await);
    let cookie = browser
        .cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |token: String| {
        client
            .post(nginx.url("/notes"))
            .header("cookie", cookie.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-csrf-token", token)
            .body("note=from+a+script")
            .send()
    };
    assert_eq!(post(token.clone()).await.unwrap().status(), 303);
    // The header, when sent, is the token that counts.
    assert_eq!(post("0".repeat(64)).await.unwrap().status(), 403);

    let quoted = browser
        .post_form("/notes", &form(&token, "  \"quoted\"  "))
        .await;
    assert_eq!(quoted.status, 303);
    let blank = browser.post_form("/notes", &form(&token, "   ")).await;
    assert_eq!(blank.status, 422);
    assert!(
        blank.body.contains("A note cannot be empty."),
        "{}",
        blank.body
    );
    assert!(
        blank.body.contains(r#"<input name="note" value="   ">"#),
        "{}",
        blank.body
    );
    let shown = browser.get("/notes").await;
    assert!(
        shown.body.contains("Saved: from a script")
            && shown.body.contains("Saved: &quot;quoted&quot;"),
        "{}\n{}",
        shown.body,
        nene.log_text()
    );
}
