//! nene and a PHP application sharing live sessions, with
//! `session.serialize_handler = php` and `php_serialize`. First nene on a
//! session PHP wrote (the `php` command line encoding and decoding what
//! Redis holds): nene reads PHP's values, counts on, and PHP finds every
//! value it stored unchanged, its object, nested array and reference
//! included. Then a site half on PHP-FPM, half on nene, behind one nginx
//! (deploy/nginx/migration.conf.template): a login on either side is seen
//! on the other, with phpredis' handler, NeNe's PHP Redis handler and
//! shared files; and with phpredis' locking, a counter incremented by both
//! at once loses nothing.

use std::collections::BTreeMap;

use nene_test_support::browser::Browser;
use nene_test_support::php_cli::{hex, run_php, unhex};
use nene_test_support::php_fpm::PhpFpm;
use nene_test_support::redis_server::RedisServer;
use nene_test_support::web_server::{PHP_SECRET, php_style_docroot};
use nene_test_support::{Nene, Nginx, REPO};

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

/// Redis, nene storing sessions there in PHP's `handler` format, nginx.
fn php_format_stack(handler: &str) -> (RedisServer, Nene, Nginx) {
    let redis = RedisServer::start();
    let url = redis.url();
    let nene = Nene::start(&[
        ("NENE_SESSION_DSN", url.as_str()),
        ("NENE_SESSION__SERIALIZE_HANDLER", handler),
    ]);
    let nginx = Nginx::start(&nene.upstream, true);
    (redis, nene, nginx)
}

async fn nene_counts_in_a_php_session(handler: &str) {
    let (redis, _nene, nginx) = php_format_stack(handler);

    // A session id nene issued, then PHP's data stored under it, as a PHP
    // page sharing the store would have.
    let mut browser = nginx.browser();
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
async fn a_php_session_of_100_000_variables_is_counted_in_and_written_back_intact() {
    // 1.5 MB: decoded on a blocking thread and encoded off the async
    // workers (sessions over 256 KiB), through nginx and a real Redis.
    let (redis, nene, nginx) = php_format_stack("php");
    let mut browser = nginx.browser();
    browser.get("/session/counter").await;
    let key = format!("sess_{}", browser.session_id().unwrap());
    let variables: String = (0..100_000).map(|n| format!("k{n}|i:{n};")).collect();
    redis.db(0).set(&key, variables.as_bytes());
    for expected in 1..=3 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 200, "{}", nene.log_text());
        assert_eq!(page.json()["count"], expected);
    }
    // Every variable written back byte for byte, the count after them.
    let stored = redis.db(0).get(&key).unwrap();
    assert_eq!(
        stored,
        format!("{variables}count|i:3;").into_bytes(),
        "the variables PHP stored are kept as they were"
    );
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
    let mut browser = nginx.browser();
    browser.get("/session/counter").await;
    let id = browser.session_id().unwrap();
    let key = format!("sess_{id}");
    // `user` holds an object: whoami reads it as a string.
    let stored = b"user|O:8:\"stdClass\":1:{s:4:\"name\";s:5:\"alice\";}";
    redis.db(0).set(&key, stored);
    let page = browser.get("/session/whoami").await;
    assert_eq!(page.status, 500, "{}", page.body);
    assert_eq!(redis.db(0).get(&key).unwrap(), stored.to_vec());
    nene_test_support::wait_for_log(
        &nene.dir().join("nene.log"),
        "session key `user` holds a PHP object, which nene cannot read",
    );
    // Logout replaces nothing it cannot read: it deletes the session.
    assert_eq!(browser.post_form("/session/logout", "").await.status, 200);
    assert!(!redis.db(0).exists(&key));
}

/// Where the shared sessions live.
#[derive(Clone, Copy, Debug)]
enum Store {
    /// phpredis' own handler (`PHPREDIS_SESSION:` keys, locking on with
    /// `_LOCK` keys), nene with `prefix` and `lock_suffix` to match.
    Phpredis,
    /// NeNe's PHP Redis handler (`sess_` keys, no lock), nene's defaults.
    NeneRedisHandler,
    /// One save_path for both.
    Files,
    /// One save_path for both, in PHP's `1;` layout (one level of
    /// one-character subdirectories, made beforehand as PHP needs).
    FilesNested,
}

/// PHP-FPM serving `/php/…`, nene the rest, one nginx in front.
struct MixedSite {
    nginx: Nginx,
    php: PhpFpm,
    nene: Nene,
    _redis: Option<RedisServer>,
    _save_path: tempfile::TempDir,
    /// The shared document root, with a PHP site's `config.php` in it.
    _docroot: tempfile::TempDir,
}

fn mixed_site(store: Store, format: &str) -> MixedSite {
    let save_path = tempfile::tempdir().unwrap();
    let shared_files = save_path.path().join("sessions");
    std::fs::create_dir(&shared_files).unwrap();
    std::fs::set_permissions(
        &shared_files,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let shared_dir = shared_files.clone();
    let shared_files = match store {
        Store::FilesNested => {
            for c in "0123456789abcdefghijklmnopqrstuv".chars() {
                std::fs::create_dir(shared_dir.join(c.to_string())).unwrap();
            }
            format!("1;{}", shared_dir.display())
        }
        _ => shared_dir.display().to_string(),
    };
    let redis = match store {
        Store::Files | Store::FilesNested => None,
        _ => Some(RedisServer::start()),
    };
    let redis_port = redis
        .as_ref()
        .map(|r| r.port().to_string())
        .unwrap_or_default();
    let phpredis_path = format!("tcp://127.0.0.1:{redis_port}?prefix=PHPREDIS_SESSION:");
    let mut php_values = vec![
        ("session.serialize_handler", format),
        ("session.name", "NENESESSID"),
        ("session.sid_length", "32"),
        ("session.sid_bits_per_character", "5"),
        ("session.use_strict_mode", "1"),
        ("session.cache_limiter", "nocache"),
        ("session.gc_probability", "0"),
    ];
    let mut php_env = vec![];
    match store {
        Store::Phpredis => {
            php_values.extend([
                ("session.save_handler", "redis"),
                ("session.save_path", phpredis_path.as_str()),
                ("redis.session.locking_enabled", "1"),
                ("redis.session.lock_expire", "30"),
                ("redis.session.lock_wait_time", "2000"),
                ("redis.session.lock_retries", "5000"),
            ]);
        }
        Store::NeneRedisHandler => {
            php_env.extend([
                ("SESSION_HANDLER", "nene_redis"),
                ("REDIS_PORT", redis_port.as_str()),
            ]);
        }
        Store::Files | Store::FilesNested => {
            php_values.extend([
                ("session.save_handler", "files"),
                ("session.save_path", shared_files.as_str()),
            ]);
        }
    }
    let php = PhpFpm::start(4, &php_values, &php_env);
    let dsn = match (&redis, store) {
        (Some(redis), Store::Phpredis) => {
            format!(
                "{}?prefix=PHPREDIS_SESSION%3A&lock_suffix=_LOCK",
                redis.url()
            )
        }
        (Some(redis), _) => redis.url(),
        (None, _) => String::new(),
    };
    let nene = Nene::start(&[
        ("NENE_SESSION_DSN", dsn.as_str()),
        ("NENE_SESSION__SAVE_PATH", shared_files.as_str()),
        ("NENE_SESSION__SERIALIZE_HANDLER", format),
        // PHP's locking for a shared save_path (no effect on Redis).
        ("NENE_SESSION__SAVE_PATH_LOCK", "session_file"),
    ]);
    let port = nene_test_support::free_port();
    let docroot = php_style_docroot();
    let values: BTreeMap<String, String> = [
        ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
        ("NENE_UPSTREAM", nene.upstream.clone()),
        ("PHP_UPSTREAM", php.addr()),
        ("PHP_LOCATION", "/php/".to_string()),
        ("PHP_SCRIPT", format!("{REPO}/tests/php/shared_session.php")),
        ("NENE_HTDOCS", docroot.path().display().to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    let nginx = Nginx::start_template("deploy/nginx/migration.conf.template", &values);
    MixedSite {
        nginx,
        php,
        nene,
        _redis: redis,
        _save_path: save_path,
        _docroot: docroot,
    }
}

async fn a_login_on_either_side_is_seen_on_the_other(store: Store, format: &str) {
    let site = mixed_site(store, format);
    let context = || {
        format!(
            "{store:?}/{format}\n{}\n{}",
            site.php.log(),
            site.nene.log_text()
        )
    };

    let mut browser = Browser::new(&site.nginx.url(""));
    let page = browser.post_form("/php/login", "user=alice").await;
    assert_eq!(page.status, 200, "{}: {}", page.body, context());
    assert_eq!(page.json()["user"], "alice", "{}", context());
    let page = browser.get("/session/whoami").await;
    assert_eq!(page.status, 200, "{}: {}", page.body, context());
    assert_eq!(
        page.json()["user"],
        "alice",
        "nene sees PHP's login: {}",
        context()
    );

    let mut browser = Browser::new(&site.nginx.url(""));
    let page = browser.post_form("/session/login", "user=bob").await;
    assert_eq!(page.json()["user"], "bob", "{}", context());
    let page = browser.get("/php/whoami").await;
    assert_eq!(page.status, 200, "{}: {}", page.body, context());
    assert_eq!(
        page.json()["user"],
        "bob",
        "PHP sees nene's login: {}",
        context()
    );
    // And both keep counting in the one session.
    assert_eq!(browser.get("/php/counter").await.json()["count"], 1);
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    assert_eq!(browser.get("/php/counter").await.json()["count"], 3);
    assert_eq!(browser.get("/session/whoami").await.json()["user"], "bob");
    // A .php file outside PHP's location is no file to hand out.
    let page = browser.get("/config.php").await;
    assert!(
        !page.body.contains(PHP_SECRET),
        "served as a file: {}",
        page.body
    );
    assert_eq!(page.status, 404, "{}", context());
}

macro_rules! shared_login {
    ($($name:ident: $store:expr, $format:literal;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                a_login_on_either_side_is_seen_on_the_other($store, $format).await;
            }
        )*
    };
}

shared_login! {
    logins_are_shared_through_phpredis_in_the_php_format: Store::Phpredis, "php";
    logins_are_shared_through_phpredis_with_php_serialize: Store::Phpredis, "php_serialize";
    logins_are_shared_through_nenes_php_handler_in_the_php_format: Store::NeneRedisHandler, "php";
    logins_are_shared_through_nenes_php_handler_with_php_serialize: Store::NeneRedisHandler, "php_serialize";
    logins_are_shared_through_files_in_the_php_format: Store::Files, "php";
    logins_are_shared_through_files_with_php_serialize: Store::Files, "php_serialize";
    logins_are_shared_through_files_in_phps_nested_layout: Store::FilesNested, "php";
}

/// PHP and nene incrementing one counter at once, 100 increments 20 at a
/// time spread over both: exactly +100 when they take the same lock.
async fn php_and_nene_incrementing_one_counter_lose_nothing(store: Store) {
    let site = mixed_site(store, "php");
    let mut browser = Browser::new(&site.nginx.url(""));
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let mut tasks = Vec::new();
    for task in 0..20 {
        let mut browser = browser.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for n in 0..5 {
                let path = if (task + n) % 2 == 0 {
                    "/php/counter"
                } else {
                    "/session/counter"
                };
                if browser.get(path).await.status == 200 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap();
    }
    assert_eq!(ok, 100, "{}\n{}", site.php.log(), site.nene.log_text());
    assert_eq!(
        browser.get("/php/counter").await.json()["count"],
        102,
        "{store:?}"
    );
}

/// phpredis' locking and nene's `lock_suffix=_LOCK` take one lock.
#[tokio::test(flavor = "multi_thread")]
async fn php_and_nene_incrementing_one_counter_at_once_lose_nothing_with_phpredis_locking() {
    php_and_nene_incrementing_one_counter_lose_nothing(Store::Phpredis).await;
}

/// PHP's flock on `sess_{id}` and nene's `save_path_lock = session_file`
/// take one lock.
#[tokio::test(flavor = "multi_thread")]
async fn php_and_nene_incrementing_one_counter_at_once_lose_nothing_in_a_shared_save_path() {
    php_and_nene_incrementing_one_counter_lose_nothing(Store::Files).await;
}
