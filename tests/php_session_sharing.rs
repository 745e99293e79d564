//! nene on a session a PHP application wrote, through a real nginx and
//! redis-server, with `session.serialize_handler = php` and
//! `php_serialize`: nene reads PHP's values, counts on in the same
//! session, and PHP (the `php` command line decoding what Redis holds)
//! finds every value it stored unchanged — its object, nested array and
//! reference included.

mod common;

use std::process::Command;

use common::browser::Browser;
use common::redis_server::RedisServer;
use common::{Nene, Nginx};

/// What PHP stores for a logged-in user with a cart object, a nested
/// array, a float and a reference, in `handler`'s format, and PHP code that
/// checks a decoded session still holds exactly those values.
fn php_session(handler: &str) -> (Vec<u8>, &'static str) {
    let setup = "$cart = new stdClass; $cart->items = ['sku-1' => 2]; \
                 $_SESSION['user'] = 'alice'; $_SESSION['cart'] = $cart; \
                 $_SESSION['prefs'] = ['theme' => 'dark', 'sizes' => [1, 2.5, null]]; \
                 $_SESSION['ratio'] = 0.1; $_SESSION['alias'] = &$_SESSION['prefs'];";
    let check = "$cart = new stdClass; $cart->items = ['sku-1' => 2]; \
                 $ok = $_SESSION['user'] === 'alice' && $_SESSION['cart'] == $cart \
                 && get_class($_SESSION['cart']) === 'stdClass' \
                 && $_SESSION['prefs'] === ['theme' => 'dark', 'sizes' => [1, 2.5, null]] \
                 && $_SESSION['ratio'] === 0.1 && $_SESSION['alias'] === $_SESSION['prefs'];";
    let script = format!(
        "<?php ob_start(); ini_set('session.use_cookies', '0'); ini_set('session.cache_limiter', ''); \
         ini_set('session.serialize_handler', '{handler}'); session_start(); {setup} \
         $bytes = session_encode(); session_abort(); ob_end_clean(); echo bin2hex($bytes);"
    );
    let stored = run_php(&script);
    (unhex(stored.trim()), check)
}

fn run_php(script: &str) -> String {
    let php = common::require_program("php", "php-cli");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.php");
    std::fs::write(&path, script).unwrap();
    let output = Command::new(php)
        .arg("-d")
        .arg(format!("session.save_path={}", dir.path().display()))
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("Warning"),
        "{stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether PHP, decoding `stored` in `handler`'s format, finds what `check`
/// expects, and the counter nene kept.
fn php_agrees(handler: &str, stored: &[u8], check: &str, count: u64) -> bool {
    let script = format!(
        "<?php ob_start(); ini_set('session.use_cookies', '0'); ini_set('session.cache_limiter', ''); \
         ini_set('session.serialize_handler', '{handler}'); session_start(); \
         session_decode(hex2bin('{}')); {check} $ok = $ok && $_SESSION['count'] === {count}; \
         session_abort(); ob_end_clean(); echo $ok ? 'same' : 'changed';",
        hex(stored)
    );
    run_php(&script) == "same"
}

async fn nene_counts_in_a_php_session(handler: &str) {
    let redis = RedisServer::start();
    let url = redis.url();
    let nene = Nene::start(&[
        ("NENE_SESSION_DSN", url.as_str()),
        ("NENE_SESSION__SERIALIZE_HANDLER", handler),
    ]);
    let nginx = Nginx::start(&nene.upstream, true);

    // A session id nene issued, then PHP's data stored under it, as a PHP
    // page sharing the store would have.
    let mut browser = Browser::new(&nginx.url(""));
    browser.get("/session/counter").await;
    let id = browser.session_id().unwrap();
    let key = format!("sess_{id}");
    let (php_bytes, check) = php_session(handler);
    redis.db(0).set(&key, &php_bytes);

    assert_eq!(
        browser.get("/session/whoami").await.json()["user"],
        "alice",
        "nene reads the user PHP stored"
    );
    assert_eq!(
        redis.db(0).get(&key).unwrap(),
        php_bytes,
        "a read-only request writes nothing back"
    );
    for expected in 1..=10 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["count"], expected);
    }
    let stored = redis.db(0).get(&key).unwrap();
    assert!(
        php_agrees(handler, &stored, check, 10),
        "PHP finds its values changed: {}",
        String::from_utf8_lossy(&stored)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nene_counts_in_a_session_php_wrote_in_the_php_format_and_php_finds_its_values_intact() {
    nene_counts_in_a_php_session("php").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nene_counts_in_a_session_php_wrote_with_php_serialize_and_php_finds_its_values_intact() {
    nene_counts_in_a_php_session("php_serialize").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_reading_a_php_object_gets_a_clear_error_and_the_object_stays() {
    let redis = RedisServer::start();
    let url = redis.url();
    let nene = Nene::start(&[
        ("NENE_SESSION_DSN", url.as_str()),
        ("NENE_SESSION__SERIALIZE_HANDLER", "php"),
    ]);
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = Browser::new(&nginx.url(""));
    browser.get("/session/counter").await;
    let id = browser.session_id().unwrap();
    let key = format!("sess_{id}");
    // `user` holds an object: whoami reads it as a string.
    let stored = b"user|O:8:\"stdClass\":1:{s:4:\"name\";s:5:\"alice\";}";
    redis.db(0).set(&key, stored);
    let page = browser.get("/session/whoami").await;
    assert_eq!(page.status, 500, "{}", page.body);
    assert_eq!(redis.db(0).get(&key).unwrap(), stored.to_vec());
    common::wait_for_log(
        &nene.dir().join("nene.log"),
        "session key `user` holds a PHP object, which nene cannot read",
    );
    // Logout replaces nothing it cannot read: it deletes the session.
    assert_eq!(browser.post_form("/session/logout", "").await.status, 200);
    assert!(!redis.db(0).exists(&key));
}
