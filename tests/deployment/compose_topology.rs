//! Deployment as an operator meets it: compose.yaml wires nginx → app →
//! Redis with health checks and the DSN default of docs/decisions/0006; the same
//! topology runs here without Docker (real nginx from the same template, nene
//! with the environment compose gives the app, a real redis-server) and
//! carries a session; and `nene ping`, the app's healthcheck, says in one
//! line whether nene answers.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use nene_test_support::browser::Browser;
use nene_test_support::compose::{ComposeFile, Service, dotenv, interpolate};
use nene_test_support::dockerfile::Dockerfile;
use nene_test_support::redis_server::RedisServer;
use nene_test_support::{Nene, Nginx, REPO, free_port, htdocs, run_nene};

/// How compose names the Redis service's address inside the stack.
const COMPOSE_REDIS: &str = "redis:6379";

/// The FastCGI address nginx is given for the app, e.g. `app:9000`: the
/// service name and the port the app's NENE_LISTEN binds.
fn app_upstream(compose: &ComposeFile) -> String {
    let listen = compose.service("app").environment()["NENE_LISTEN"].clone();
    let port = listen.rsplit_once(':').expect("NENE_LISTEN = IP:PORT").1;
    format!("app:{port}")
}

/// A service's environment after Compose's interpolation with `set` (the
/// operator's shell and .env).
fn container_environment(service: &Service<'_>, set: &[(&str, &str)]) -> BTreeMap<String, String> {
    let set: BTreeMap<&str, &str> = set.iter().copied().collect();
    service
        .environment()
        .into_iter()
        .map(|(name, value)| (name, interpolate(&value, &set)))
        .collect()
}

/// The target of the volume whose short form starts with `source:`.
fn mount_target(service: &Service<'_>, source: &str) -> String {
    let volumes = service.volumes();
    let volume = volumes
        .iter()
        .find(|volume| volume.starts_with(&format!("{source}:")))
        .unwrap_or_else(|| panic!("{} mounts no {source}: {volumes:?}", service.name()));
    volume.split(':').nth(1).unwrap().to_string()
}

fn setting_default(dotted: &str) -> &'static str {
    let (section, key) = dotted.split_once('.').unwrap();
    nene::config::table::find(section, key)
        .unwrap_or_else(|| panic!("no setting {dotted}"))
        .default
}

fn duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or_else(|_| panic!("not a duration: {text:?}"))
}

#[test]
fn compose_starts_nginx_after_a_healthy_app_and_the_app_after_a_healthy_redis() {
    let compose = ComposeFile::load();
    assert_eq!(compose.service_names(), ["app", "nginx", "redis"]);

    let nginx = compose.service("nginx");
    let image = nginx.text("image").unwrap_or_default();
    assert!(image.starts_with("nginx:"), "nginx image {image:?}");
    assert_eq!(
        nginx.depends_on_condition("app").as_deref(),
        Some("service_healthy")
    );

    let app = compose.service("app");
    assert!(
        !app.get("build").is_null(),
        "the app is built from the repository"
    );
    let test = app.healthcheck_test();
    assert!(
        test == ["CMD", "nene", "ping"] || test == ["CMD-SHELL", "nene ping"],
        "the app's healthcheck is `nene ping`: {test:?}"
    );
    assert_eq!(
        app.depends_on_condition("redis").as_deref(),
        Some("service_healthy")
    );

    let redis = compose.service("redis");
    assert_eq!(redis.text("image").as_deref(), Some("redis:7-alpine"));
    let test = redis.healthcheck_test().join(" ");
    assert!(
        test.contains("redis-cli ping"),
        "redis healthcheck {test:?}"
    );
}

#[test]
fn the_app_uses_redis_unless_the_operator_sets_the_dsn_empty_for_file_sessions() {
    let compose = ComposeFile::load();
    let app = compose.service("app");
    assert_eq!(
        app.environment()["NENE_SESSION_DSN"],
        "${NENE_SESSION_DSN-redis://redis:6379}"
    );
    let dsn = |set: &[(&str, &str)]| container_environment(&app, set)["NENE_SESSION_DSN"].clone();
    assert_eq!(dsn(&[]), "redis://redis:6379", "unset: the stack's Redis");
    assert_eq!(dsn(&[("NENE_SESSION_DSN", "")]), "", "set empty: files");
    assert_eq!(
        dsn(&[("NENE_SESSION_DSN", "redis://cache:6379/2")]),
        "redis://cache:6379/2"
    );

    // .env.example, copied as it is, keeps the defaults and documents both
    // variables.
    let example = std::fs::read_to_string(format!("{REPO}/.env.example")).unwrap();
    assert!(example.contains("NENE_SESSION_DSN=") && example.contains("NGINX_PORT="));
    let copied = dotenv(&example);
    let copied: Vec<(&str, &str)> = copied
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(dsn(&copied), "redis://redis:6379");

    // File sessions land in a named volume at session.save_path, resolved
    // against the image's working directory.
    assert!(compose.volume_names().contains(&"sessions".to_string()));
    let workdir = Dockerfile::load()
        .runtime("WORKDIR")
        .pop()
        .expect("a WORKDIR");
    let save_path = setting_default("session.save_path");
    assert_eq!(
        mount_target(&app, "sessions"),
        format!("{}/{save_path}", workdir.trim_end_matches('/'))
    );
}

#[test]
fn nginx_renders_the_repository_template_with_every_placeholder_set_by_compose() {
    let compose = ComposeFile::load();
    let nginx = compose.service("nginx");
    let template_target = mount_target(&nginx, "./deploy/nginx/nene.conf.template");
    assert!(
        template_target.starts_with("/etc/nginx/templates/")
            && template_target.ends_with(".template"),
        "the image's envsubst renders only /etc/nginx/templates/*.template: {template_target}"
    );

    let environment = nginx.environment();
    let template =
        std::fs::read_to_string(format!("{REPO}/deploy/nginx/nene.conf.template")).unwrap();
    for placeholder in template.split("${").skip(1) {
        let name = placeholder.split('}').next().unwrap();
        assert!(
            environment.contains_key(name),
            "${{{name}}} in the template is not set in the nginx service's environment"
        );
    }
    assert_eq!(environment["NENE_UPSTREAM"], app_upstream(&compose));
    assert_eq!(environment["NENE_HTDOCS"], mount_target(&nginx, "./htdocs"));
    assert_eq!(
        environment["NENE_MAX_BODY"].to_ascii_uppercase(),
        setting_default("server.max_body_bytes"),
        "nginx's body limit is nene's"
    );
    assert_eq!(
        nginx.ports(),
        [format!(
            "${{NGINX_PORT:-8080}}:{}",
            environment["NGINX_LISTEN"]
        )]
    );
}

/// With no Docker here, the build is checked by reading it: cargo reads
/// every workspace member's manifest even for `-p nene`, and builds the
/// sources of the members nene depends on (the FastCGI crate).
#[test]
fn the_image_build_copies_every_workspace_manifest_and_the_fastcgi_sources() {
    let dockerfile = Dockerfile::load();
    let copies: Vec<String> = dockerfile
        .instructions
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| i.arguments.clone())
        .collect();
    let manifest =
        std::fs::read_to_string(format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let members = manifest
        .lines()
        .find_map(|line| line.strip_prefix("members = "))
        .expect("a workspace members list");
    let members: Vec<&str> = members
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|member| member.trim().trim_matches('"'))
        .filter(|member| *member != ".")
        .collect();
    assert!(members.contains(&"fastcgi"), "{members:?}");
    for member in members {
        assert!(
            copies
                .iter()
                .any(|copy| copy.starts_with(&format!("{member}/Cargo.toml "))),
            "the Dockerfile copies no {member}/Cargo.toml: {copies:?}"
        );
    }
    assert!(
        copies.iter().any(|copy| copy.starts_with("fastcgi/src ")),
        "{copies:?}"
    );
}

#[test]
fn the_image_runs_nene_serve_unprivileged_and_compose_waits_longer_than_its_drain() {
    let dockerfile = Dockerfile::load();
    assert!(dockerfile.stages().len() >= 2, "a multi-stage build");
    assert!(
        dockerfile
            .all_runs()
            .contains("cargo build --release --locked")
    );
    let user = dockerfile.runtime("USER").pop().expect("a USER");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert_eq!(dockerfile.runtime("CMD"), [r#"["nene", "serve"]"#]);
    assert_eq!(dockerfile.runtime("STOPSIGNAL"), ["SIGTERM"]);
    let app_port = app_upstream(&ComposeFile::load())
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    assert_eq!(dockerfile.runtime("EXPOSE"), [app_port]);
    let copied = dockerfile.runtime("COPY").join("\n");
    assert!(
        copied.contains("ini/") && copied.contains("htdocs/"),
        "{copied}"
    );

    let grace = ComposeFile::load()
        .service("app")
        .text("stop_grace_period")
        .expect("a stop_grace_period for the app");
    assert!(
        duration(&grace) > duration(setting_default("server.drain_timeout")),
        "stop_grace_period {grace} must outlast server.drain_timeout"
    );

    let ignored = std::fs::read_to_string(format!("{REPO}/.dockerignore")).unwrap();
    assert!(
        ignored
            .lines()
            .any(|line| line.trim_matches('/') == "target")
    );
}

/// The stack compose describes, on this machine: redis-server, nene with
/// the app service's environment and nginx with the nginx service's, each
/// container address replaced by a loopback one.
struct Stack {
    redis: RedisServer,
    nene: Nene,
    nginx: Nginx,
}

impl Stack {
    /// `set`: the operator's shell and .env, as Compose interpolates them.
    fn start(set: &[(&str, &str)]) -> Stack {
        let compose = ComposeFile::load();
        let redis = RedisServer::start();

        let app = compose.service("app");
        let nene_addr = format!("127.0.0.1:{}", free_port());
        let container_listen = app.environment()["NENE_LISTEN"].clone();
        let local_redis = format!("127.0.0.1:{}", redis.port());
        let app_env: Vec<(String, String)> = container_environment(&app, set)
            .into_iter()
            .map(|(name, value)| {
                let value = value
                    .replace(COMPOSE_REDIS, &local_redis)
                    .replace(&container_listen, &nene_addr);
                (name, value)
            })
            .collect();
        let app_env: Vec<(&str, &str)> = app_env
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let nene = Nene::start_from_env(&app_env);

        let nginx = compose.service("nginx");
        let container_port = nginx.ports()[0].rsplit(':').next().unwrap().to_string();
        let listen = format!("127.0.0.1:{}", free_port());
        let upstream = app_upstream(&compose);
        let docroot = mount_target(&nginx, "./htdocs");
        let values: BTreeMap<String, String> = container_environment(&nginx, set)
            .into_iter()
            .map(|(name, value)| {
                let local = if value == container_port {
                    listen.clone()
                } else if value == upstream {
                    nene.addr.clone()
                } else if value == docroot {
                    htdocs().display().to_string()
                } else {
                    value
                };
                (name, local)
            })
            .collect();
        let nginx = Nginx::start_rendered(&values);
        Stack { redis, nene, nginx }
    }

    fn browser(&self) -> Browser {
        Browser::new(&self.nginx.url(""))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_topology_without_docker_keeps_a_visitors_session_in_redis() {
    let stack = Stack::start(&[]);
    let mut browser = stack.browser();

    let health = browser.get("/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    let robots = browser.get("/robots.txt").await;
    assert_eq!(robots.status, 200, "static files come from htdocs");

    for expected in 1..=3 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["count"], expected);
    }
    let id = browser.session_id().expect("a session cookie");
    let key = format!("sess_{id}");
    let mut db = stack.redis.db(0);
    assert_eq!(db.get(&key).as_deref(), Some(&br#"{"count":3}"#[..]));
    assert!(db.ttl(&key) > 0, "Redis expires the session");
    stack.nene.assert_logged("session handler redis");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_dsn_set_empty_the_same_topology_keeps_sessions_in_files() {
    let stack = Stack::start(&[("NENE_SESSION_DSN", "")]);
    let mut browser = stack.browser();
    for expected in 1..=2 {
        assert_eq!(
            browser.get("/session/counter").await.json()["count"],
            expected
        );
    }
    let id = browser.session_id().expect("a session cookie");
    let file = stack.nene.dir().join("sessions").join(format!("sess_{id}"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap_or_default(),
        r#"{"count":2}"#
    );
    assert!(
        stack.redis.db(0).keys("*").is_empty(),
        "Redis is running but unused"
    );
}

/// The one line a command printed, once its exit status is `code`.
fn line_exiting_with(output: &Output, code: i32) -> String {
    let line = one_line(output);
    assert_eq!(output.status.code(), Some(code), "{line}");
    line
}

/// Asserts that a command succeeded with one line, starting with `start`.
fn assert_succeeded_with_a_line_starting(output: &Output, start: &str) {
    let line = line_exiting_with(output, 0);
    assert!(line.starts_with(start), "{line}");
}

fn one_line(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(text.lines().count(), 1, "exactly one line: {text:?}");
    text.trim_end().to_string()
}

#[test]
fn nene_ping_says_ok_when_nene_answers_200_over_tcp() {
    let nene = Nene::start(&[]);
    let output = run_nene(&["ping", &nene.addr], &[]);
    let line = line_exiting_with(&output, 0);
    assert!(
        line.starts_with(&format!(
            "ok: {} answered 200 to GET /health in ",
            nene.addr
        )) && line.ends_with(" ms"),
        "{line}"
    );
    // nene's own ping path can be asked instead.
    let output = run_nene(&["ping", &nene.addr, "--path", "/ping"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", one_line(&output));
}

#[test]
fn nene_ping_reaches_nene_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nene.sock");
    let _nene = Nene::start_unix(&socket, &[]);
    let addr = format!("unix:{}", socket.display());
    let output = run_nene(&["ping", &addr], &[]);
    assert_succeeded_with_a_line_starting(&output, &format!("ok: {addr} answered 200"));
}

#[test]
fn without_an_address_nene_ping_asks_the_configured_listen_address_as_the_container_does() {
    let nene = Nene::start(&[]);
    let port = nene.addr.rsplit_once(':').unwrap().1;
    // The app's NENE_LISTEN binds every interface; ping goes to loopback.
    let output = run_nene(&["ping"], &[("NENE_LISTEN", &format!("0.0.0.0:{port}"))]);
    assert_succeeded_with_a_line_starting(&output, &format!("ok: 127.0.0.1:{port} "));
}

#[test]
fn nene_ping_fails_in_one_line_against_a_closed_port_within_its_timeout() {
    let closed = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let output = run_nene(&["ping", &closed, "--timeout", "1s"], &[]);
    let line = line_exiting_with(&output, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        line.starts_with(&format!("nene ping: cannot connect to {closed}: ")),
        "{line}"
    );
}

#[test]
fn nene_ping_gives_up_on_a_server_that_accepts_but_never_answers() {
    // The kernel completes the connection; nobody ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let output = run_nene(&["ping", &addr, "--timeout", "500ms"], &[]);
    let elapsed = started.elapsed();
    let line = line_exiting_with(&output, 1);
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(
        line,
        format!("nene ping: {addr} did not answer GET /health within 500ms")
    );
}

#[test]
fn nene_ping_fails_when_the_path_answers_404() {
    let nene = Nene::start(&[]);
    let output = run_nene(&["ping", &nene.addr, "--path", "/no/such"], &[]);
    let line = line_exiting_with(&output, 1);
    assert!(
        line.starts_with(&format!(
            "nene ping: {} answered 404 to GET /no/such in ",
            nene.addr
        )),
        "{line}"
    );
}
