//! An application written outside this repository, as a new user writes
//! one: `cargo new shop`, depend on nene by path, register a controller,
//! `fn main` is one call. Built by the test in a temporary directory with
//! only nene's public API, then served through a real nginx with sessions,
//! its own site constant, the client's address, and the status page.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use nene_test_support::browser::Browser;
use nene_test_support::fcgi_client::request_with_params;
use nene_test_support::{Nene, Nginx, REPO, free_port};
use serde_json::json;

const MAIN_RS: &str = r#"
use axum::Json;
use axum::routing::{get, post};
use nene::{Constants, Controller, Dispatcher, NotFoundPage, RequestInfo, Session, SessionError};
use serde_json::{Value, json};

async fn basket(session: Session, constants: Constants, info: RequestInfo)
    -> Result<Json<Value>, SessionError>
{
    let items = session.get::<u32>("items").await?.unwrap_or(0);
    Ok(Json(json!({
        "shop": constants.get("SHOP_NAME"),
        "items": items,
        "client": info.client_ip.map(|ip| ip.to_string()),
    })))
}

async fn add(session: Session) -> Result<Json<Value>, SessionError> {
    let items = session.get::<u32>("items").await?.unwrap_or(0) + 1;
    session.insert("items", items).await?;
    Ok(Json(json!({ "items": items })))
}

fn main() -> std::process::ExitCode {
    nene::run(|constants| {
        Dispatcher::builder(NotFoundPage::load(&constants.settings().htdocs))
            .controller(
                "basket",
                Controller::new()
                    .action("index", get(basket))
                    .action("add", post(add)),
            )
            .build()
    })
}
"#;

/// Writes the crate `shop` under `dir` and builds it with cargo, offline,
/// pinned to this repository's lock file. Returns the binary.
fn build_shop(dir: &Path) -> std::path::PathBuf {
    let manifest = format!(
        r#"[package]
name = "shop"
version = "0.1.0"
edition = "2024"

[dependencies]
nene = {{ path = "{repo}" }}
axum = {{ version = "0.8", default-features = false, features = ["json"] }}
serde_json = "1"

[workspace]
"#,
        repo = REPO
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("ini")).unwrap();
    std::fs::create_dir_all(dir.join("htdocs")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN_RS).unwrap();
    std::fs::write(dir.join("ini/site.ini"), "[shop]\nname = \"Corner Shop\"\n").unwrap();
    std::fs::write(
        dir.join("htdocs/404.html"),
        "<h1>no such page in the shop</h1>\n",
    )
    .unwrap();
    std::fs::copy(Path::new(REPO).join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    // Its own target directory (kept between runs under ours, so only the
    // first run compiles nene's dependencies), never our build lock.
    let target = Path::new(REPO).join("target/external-app");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // Without debug info: nothing reads it, and the build is the longest
    // part of the process crate's run (69 → 61 s from nothing, measured).
    let output = Command::new(cargo)
        .args(["build", "--offline", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .current_dir(dir)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "the outside crate does not build against nene's public API:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // nene is a path (or git) dependency here, so cargo shows its warnings
    // in the application's build: there must be none.
    let printed = String::from_utf8_lossy(&output.stderr);
    assert!(
        !printed.contains("warning"),
        "building an application prints warnings:\n{printed}"
    );
    target.join("debug/shop")
}

#[tokio::test]
async fn an_application_outside_the_repository_is_served_through_nginx() {
    let project = tempfile::tempdir().unwrap();
    let shop = build_shop(project.path());
    let app = Nene::start_program(&shop, project.path(), &[]);
    let port = free_port();
    let values: BTreeMap<String, String> = [
        ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
        ("NENE_UPSTREAM", app.upstream.clone()),
        (
            "NENE_HTDOCS",
            project.path().join("htdocs").display().to_string(),
        ),
        ("NENE_FASTCGI_KEEP_CONN", "on".to_string()),
        ("NENE_MAX_BODY", "8m".to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    let nginx = Nginx::start_rendered(&values);
    let mut browser = Browser::new(&nginx.url(""));

    let first = browser.get("/basket").await;
    assert_eq!(
        first.json(),
        json!({"shop": "Corner Shop", "items": 0, "client": "127.0.0.1"})
    );
    for expected in 1..=3 {
        let added = browser.post_form("/basket/add", "").await;
        assert_eq!(added.json(), json!({ "items": expected }));
    }
    assert!(browser.session_id().is_some(), "no session cookie was set");
    assert_eq!(browser.get("/basket").await.json()["items"], 3);

    // The application's own 404 page, and nene's operations pages.
    let missing = browser.get("/basket/nowhere").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("no such page in the shop"));
    let status = browser.get("/status").await;
    assert_eq!(status.status, 200);
    assert!(status.body.contains("pool:"), "{}", status.body);
    assert_eq!(browser.get("/ping").await.body.trim(), "pong");

    // Its binary has nene's subcommands too.
    let config = Command::new(&shop)
        .arg("config")
        .current_dir(project.path())
        .env_remove("NENE_SESSION_DSN")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&config.stdout);
    assert!(printed.contains("SHOP_NAME = \"Corner Shop\""), "{printed}");
    let version = Command::new(&shop).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(version.starts_with("shop (on nene "), "{version}");

    // Built with nene's default features: files, memory and Redis (with
    // Sentinel). A DSN for a backend it left out stops start-up naming the
    // feature that brings it in, password masked; it never falls back to
    // files.
    for (dsn, feature) in [
        ("rediss://:hunter2@127.0.0.1:6380", "redis-tls"),
        (
            "rediss+sentinel://:hunter2@127.0.0.1:26379/shop",
            "redis-tls",
        ),
        ("redis+cluster://:hunter2@127.0.0.1:7000", "redis-cluster"),
        ("memcached://127.0.0.1:11211", "memcached"),
        ("sqlite://sessions.db", "sqlite"),
        ("mysql://shop:hunter2@127.0.0.1/shop", "mysql"),
        ("postgres://shop:hunter2@127.0.0.1/shop", "postgres"),
    ] {
        let check = Command::new(&shop)
            .arg("check")
            .current_dir(project.path())
            .env("NENE_SESSION_DSN", dsn)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success(), "{dsn}: {said}");
        assert!(
            said.contains(&format!("nene's `{feature}` feature")),
            "{dsn}: {said}"
        );
        assert!(!said.contains("hunter2"), "{said}");
    }
    assert!(
        !project.path().join("sessions.db").exists(),
        "nothing was created for a backend not compiled in"
    );
    // Traces are a feature too: asked for without it, start-up stops.
    let check = Command::new(&shop)
        .arg("check")
        .current_dir(project.path())
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{said}");
    assert!(said.contains("the `otel` feature"), "{said}");

    // Under a sub-path (`server.layers_num = 1`): the dispatcher skips the
    // segment by itself; the application calls nothing for it.
    let nested = Nene::start_program(&shop, project.path(), &[("NENE_SERVER__LAYERS_NUM", "1")]);
    let response = request_with_params(
        &nested.addr,
        &[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/shop/basket"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200, "{}", response.body_text());
    assert!(
        response.body_text().contains("Corner Shop"),
        "{}",
        response.body_text()
    );
}
