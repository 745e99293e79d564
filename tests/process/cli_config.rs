//! Bootstrap from outside: `nene config` shows every value with where it came
//! from (and never a password), `nene check` answers in one line, and every
//! kind of bad configuration stops start-up with a message naming its source.

use nene_test_support::redis_server::RedisServer;

use nene_test_support::run_nene;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ini_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn nene_config_shows_each_value_and_its_source_default_file_line_or_env() {
    let dir = ini_dir(&[
        ("system.ini", "[session]\n\ngc_maxlifetime = 600\n"),
        ("site.ini", "[site]\ntitle = \"Shop\"\n"),
    ]);
    let ini = dir.path().to_str().unwrap();
    let output = run_nene(
        &["config", "--ini-dir", ini],
        &[("NENE_SESSION__NAME", "SHOPSESSID")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let system_ini = format!("{ini}/system.ini:3");
    assert!(
        text.contains(&format!("SESSION_GC_MAXLIFETIME = \"600\" ; {system_ini}")),
        "{text}"
    );
    assert!(
        text.contains("SESSION_NAME = \"SHOPSESSID\" ; env NENE_SESSION__NAME"),
        "{text}"
    );
    assert!(
        text.contains("SESSION_COOKIE_PATH = \"/\" ; default"),
        "{text}"
    );
    assert!(
        text.contains(&format!("SITE_TITLE = \"Shop\" ; {ini}/site.ini:2")),
        "{text}"
    );
}

#[test]
fn nene_config_and_check_never_print_the_dsn_password() {
    let dsn = "redis://app:s3cr3t-pw@127.0.0.1:1/0";
    let config = run_nene(&["config"], &[("NENE_SESSION_DSN", dsn)]);
    assert!(config.status.success(), "{}", stderr(&config));
    let text = stdout(&config);
    assert!(
        text.contains("SESSION_DSN = \"redis://app:***@127.0.0.1:1/0\" ; env NENE_SESSION_DSN"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t-pw"));

    // Nothing listens on port 1: check fails in one line, without the password.
    let check = run_nene(&["check"], &[("NENE_SESSION_DSN", dsn)]);
    assert_eq!(check.status.code(), Some(1));
    let all = format!("{}{}", stdout(&check), stderr(&check));
    assert!(!all.contains("s3cr3t-pw"), "{all}");
    assert!(stderr(&check).contains("unreachable"), "{all}");
}

#[test]
fn nene_config_masks_secrets_by_name_and_url_passwords_in_any_value() {
    let config = run_nene(
        &["config"],
        &[
            ("NENE_DB__PASS", "hunter2-pass"),
            ("NENE_SMTP__PWD", "hunter2-pwd"),
            ("NENE_API__KEY", "hunter2-key"),
            ("NENE_APP__PRIVATE_KEY", "hunter2-private"),
            ("NENE_OAUTH__CLIENT_SECRET", "hunter2-secret"),
            (
                "NENE_DATABASE__URL",
                "postgres://shop:hunter2-url@db.internal/shop",
            ),
            ("NENE_NEWS__FEED", "https://news.example/feed.xml"),
            ("NENE_SITE__MOTTO", "plain words"),
        ],
    );
    assert!(config.status.success(), "{}", stderr(&config));
    let text = stdout(&config);
    assert!(!text.contains("hunter2"), "{text}");
    for name in [
        "DB_PASS",
        "SMTP_PWD",
        "API_KEY",
        "APP_PRIVATE_KEY",
        "OAUTH_CLIENT_SECRET",
    ] {
        assert!(
            text.contains(&format!("{name} = \"***\"")),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains("DATABASE_URL = \"postgres://shop:***@db.internal/shop\""),
        "{text}"
    );
    // What holds no secret is shown as configured.
    assert!(
        text.contains("NEWS_FEED = \"https://news.example/feed.xml\""),
        "{text}"
    );
    assert!(text.contains("SITE_MOTTO = \"plain words\""), "{text}");
}

#[test]
fn a_misspelt_site_constant_in_the_environment_is_named_with_the_declared_one() {
    // ini/site.ini declares `[site] title`.
    let config = run_nene(&["config"], &[("NENE_SITE__TITEL", "Shop")]);
    assert!(config.status.success(), "{}", stderr(&config));
    assert!(
        stderr(&config).contains(
            "NENE_SITE__TITEL sets SITE_TITEL, which no ini file declares; did you mean SITE_TITLE?"
        ),
        "{}",
        stderr(&config)
    );
    // The correct name, and a constant only the environment sets, are quiet.
    let quiet = run_nene(
        &["config"],
        &[("NENE_SITE__TITLE", "Shop"), ("NENE_MAIL__PASSWORD", "x")],
    );
    assert!(
        !stderr(&quiet).contains("did you mean"),
        "{}",
        stderr(&quiet)
    );
}

#[test]
fn nene_config_says_when_a_passed_socket_would_replace_server_listen() {
    let plain = stdout(&run_nene(&["config"], &[]));
    assert!(!plain.contains("LISTEN_FDS"), "{plain}");
    let passed = stdout(&run_nene(&["config"], &[("LISTEN_FDS", "1")]));
    assert!(
        passed.contains("LISTEN_FDS=1 is set: nene serve and nene dev started with this environment serve on the socket passed in"),
        "{passed}"
    );
}

#[test]
fn nene_check_passes_with_file_sessions() {
    let output = run_nene(&["check"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("ok: "), "{}", stdout(&output));
    assert_eq!(stdout(&output).lines().count(), 1);
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
}

#[test]
fn an_unknown_dsn_scheme_stops_start_up_with_the_password_redacted() {
    for dsn in [
        "memcached://u:topsecret@cache:11211",
        "mongodb://u:topsecret@db/x",
        "postgre://u:topsecret@db/x",
        "redis:/nohost",
    ] {
        for command in ["serve", "check"] {
            let output = run_nene(&[command], &[("NENE_SESSION_DSN", dsn)]);
            assert_eq!(output.status.code(), Some(1), "{dsn} {command}");
            let message = stderr(&output);
            assert!(!message.contains("topsecret"), "{message}");
            assert!(
                message.contains("redis://"),
                "says what is accepted: {message}"
            );
        }
    }
}

/// One way to misconfigure nene, and what the message must say.
struct BadConfig {
    files: &'static [(&'static str, &'static str)],
    env: &'static [(&'static str, &'static str)],
    /// A directory in place of this ini file (unreadable).
    directory_instead_of: Option<&'static str>,
    expected: &'static [&'static str],
}

#[test]
fn every_kind_of_bad_configuration_stops_start_up_naming_its_source() {
    let cases = [
        // Wrong type in a file.
        BadConfig {
            files: &[("system.ini", "[session]\ngc_maxlifetime = soon\n")],
            env: &[],
            directory_instead_of: None,
            expected: &[
                "system.ini:2",
                "session.gc_maxlifetime",
                "\"soon\"",
                "a whole number",
            ],
        },
        // Out of range, from the environment.
        BadConfig {
            files: &[],
            env: &[("NENE_SESSION__GC_DIVISOR", "0")],
            directory_instead_of: None,
            expected: &["env NENE_SESSION__GC_DIVISOR", "from 1 to"],
        },
        // Unknown key, with a did-you-mean.
        BadConfig {
            files: &[("system.ini", "[session]\ncookie_htponly = on\n")],
            env: &[],
            directory_instead_of: None,
            expected: &[
                "unknown setting session.cookie_htponly",
                "did you mean session.cookie_httponly?",
            ],
        },
        BadConfig {
            files: &[],
            env: &[("NENE_SESION__NAME", "x")],
            directory_instead_of: None,
            expected: &["env NENE_SESION__NAME", "did you mean NENE_SESSION__NAME?"],
        },
        // SameSite=None without Secure.
        BadConfig {
            files: &[],
            env: &[("NENE_SESSION__COOKIE_SAMESITE", "None")],
            directory_instead_of: None,
            expected: &["needs session.cookie_secure = on"],
        },
        // An ini file that exists but cannot be read.
        BadConfig {
            files: &[],
            env: &[],
            directory_instead_of: Some("site.ini"),
            expected: &["cannot read ini file", "site.ini"],
        },
    ];
    for (index, case) in cases.iter().enumerate() {
        let dir = ini_dir(case.files);
        if let Some(name) = case.directory_instead_of {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let ini = dir.path().to_str().unwrap();
        let output = run_nene(
            &["serve", "--ini-dir", ini, "--listen", "127.0.0.1:0"],
            case.env,
        );
        assert_eq!(
            output.status.code(),
            Some(1),
            "case {index}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "one clear line: {message}");
        for needle in case.expected {
            assert!(
                message.contains(needle),
                "case {index}: {needle:?} not in {message}"
            );
        }
    }
}

#[test]
fn the_readme_lists_every_setting() {
    let output = run_nene(&["config", "--table"], &[]);
    let table = stdout(&output);
    assert!(table.lines().count() > 30, "{table}");
    let readme = std::fs::read_to_string(format!("{}/README.md", nene_test_support::REPO)).unwrap();
    assert!(
        readme.contains(table.trim_end()),
        "README.md's settings table is out of date; paste `nene config --table` into it"
    );
}

#[test]
fn nene_check_reaches_a_live_redis() {
    let redis = RedisServer::start();
    let output = run_nene(&["check"], &[("NENE_SESSION_DSN", &redis.url())]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("session backend redis answered"),
        "{}",
        stdout(&output)
    );
}

/// The cookie's domain and path go into every Set-Cookie header as they are:
/// one that would add attributes of its own or could not be sent stops
/// start-up, naming the setting, instead of reaching a response.
#[test]
fn a_cookie_domain_or_path_that_would_forge_the_header_stops_start_up() {
    let cases = [
        (
            "NENE_SESSION__COOKIE_DOMAIN",
            "example.com; SameSite=None",
            "session.cookie_domain",
        ),
        (
            "NENE_SESSION__COOKIE_DOMAIN",
            "exa mple.com",
            "session.cookie_domain",
        ),
        (
            "NENE_SESSION__COOKIE_PATH",
            "/app\u{1}",
            "session.cookie_path",
        ),
        (
            "NENE_SESSION__COOKIE_PATH",
            "/app; Domain=evil.example",
            "session.cookie_path",
        ),
        ("NENE_SESSION__COOKIE_PATH", "app", "session.cookie_path"),
    ];
    for (variable, value, setting) in cases {
        let output = run_nene(&["check"], &[(variable, value)]);
        assert_eq!(output.status.code(), Some(1), "{variable}={value:?}");
        let text = stderr(&output);
        assert!(text.contains(setting), "{variable}={value:?}: {text}");
    }
    for (variable, value) in [
        ("NENE_SESSION__COOKIE_DOMAIN", ".shop.example.com"),
        ("NENE_SESSION__COOKIE_PATH", "/shop/"),
    ] {
        let output = run_nene(&["config"], &[(variable, value)]);
        assert!(
            output.status.success(),
            "{variable}={value:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn serving_without_ini_files_warns_naming_the_directory_it_looked_in() {
    // An application started outside its crate's directory finds none of
    // its ini files; its site constants are then all missing.
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().display().to_string();
    let nene = nene_test_support::Nene::start(&[("NENE_INI_DIR", dir.as_str())]);
    let log = nene_test_support::wait_for_log(&nene.log, "no ini files");
    let line = log
        .lines()
        .find(|line| line.contains("no ini files"))
        .unwrap();
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains(&dir), "{line}");
}
