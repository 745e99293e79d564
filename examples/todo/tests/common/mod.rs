//! The test harness: the real `todo` binary as a child process behind a real
//! nginx (rendered from the repository's deploy/nginx/nene.conf.template),
//! each on a free loopback port in its own temporary directory, stopped when
//! dropped. Database servers are nene's `tests/common/postgres.rs` and
//! `mariadb.rs`; the HTTP
//! side of a user in `api.rs`; flows shared by every backend in `flows.rs`.

#![allow(dead_code)]

pub mod api;
pub mod flows;
// One copy of each database harness, shared with nene's own tests.
#[path = "../../../../tests/common/mariadb.rs"]
pub mod mariadb;
#[path = "../../../../tests/common/postgres.rs"]
pub mod postgres;
pub mod redis;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// examples/todo: its ini/ and htdocs/ are what the tests serve.
pub const APP_DIR: &str = env!("CARGO_MANIFEST_DIR");

pub fn app_dir() -> &'static Path {
    Path::new(APP_DIR)
}

/// The repository root, for deploy/nginx/nene.conf.template.
pub fn repo_root() -> PathBuf {
    app_dir().join("../..")
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether this test process runs as root (as CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Finds `name` in `extra` directories, on PATH, or in the sbin directories
/// Debian installs servers into; fails the test naming the Debian
/// package when it is missing.
pub fn require_program_in(name: &str, debian_package: &str, extra: &[PathBuf]) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    // `extra` first: a server's own directory beats a wrapper on PATH.
    let candidates = extra.iter().cloned().chain(
        path.split(':')
            .map(PathBuf::from)
            .chain(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from)),
    );
    for dir in candidates {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed; these tests need it. Install it with: \
         sudo apt-get install -y {debian_package}"
    );
}

pub fn require_program(name: &str, debian_package: &str) -> PathBuf {
    require_program_in(name, debian_package, &[])
}

/// Waits until `addr` accepts TCP connections; fails the test, with the
/// log, if `child` exits first or 20 s pass.
pub fn wait_for_tcp(addr: &str, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening on {addr}; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "{what} did not listen on {addr} within 20 s; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Sends `signal` to `pid` (a child this test started).
pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Waits up to `within` for `child` to exit; SIGKILL after that.
pub fn stop_child(child: &mut Child, signal: i32, within: Duration) {
    kill(child.id(), signal);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `todo` command with no NENE_* from the caller's environment, sessions
/// and the working directory (where a relative SQLite path lands) in `dir`.
fn todo_command(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_todo"));
    for (name, _) in std::env::vars() {
        if name.starts_with("NENE_") {
            command.env_remove(name);
        }
    }
    command
        .arg("--ini-dir")
        .arg(app_dir().join("ini"))
        .env("RUST_LOG", "info")
        .env(
            "NENE_SESSION__SAVE_PATH",
            dir.join("sessions").display().to_string(),
        )
        .envs(env.iter().copied())
        .current_dir(dir);
    command
}

/// The `todo` binary serving FastCGI as a child process.
pub struct TodoApp {
    child: Child,
    pub addr: String,
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

impl TodoApp {
    /// `todo serve` on a free port with `NENE_TODO__DATABASE_DSN = dsn` and
    /// extra environment.
    pub fn start(dsn: &str, env: &[(&str, &str)]) -> TodoApp {
        Self::spawn(Some(dsn), env)
    }

    /// `todo serve` with the DSN of ini/site.ini (none in the environment).
    pub fn start_default() -> TodoApp {
        Self::spawn(None, &[])
    }

    fn spawn(dsn: Option<&str>, env: &[(&str, &str)]) -> TodoApp {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join("todo.log");
        let mut command = todo_command(dir.path(), env);
        command
            .arg("serve")
            .arg("--listen")
            .arg(&addr)
            .arg("--htdocs")
            .arg(app_dir().join("htdocs"))
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        if let Some(dsn) = dsn {
            command.env("NENE_TODO__DATABASE_DSN", dsn);
        }
        let mut child = command.spawn().expect("start the todo binary");
        wait_for_tcp(&addr, &mut child, "todo", &log);
        TodoApp {
            child,
            addr,
            log,
            dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The app's working directory (a relative SQLite path lands here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TodoApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `todo ARGS` run to completion in a temporary directory (20 s at most).
pub fn run_todo(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let child = todo_command(dir.path(), env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the todo binary");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(20)).is_err() {
            kill(pid, libc::SIGKILL);
        }
    });
    let output = child.wait_with_output().expect("run the todo binary");
    let _ = done.send(());
    let _ = watchdog.join();
    assert!(
        output.status.code().is_some(),
        "todo {args:?} did not exit within 20 s: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// nginx as a child process, with the repository's site template rendered
/// for this test and wrapped in a minimal nginx.conf.
pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(upstream: &str) -> Nginx {
        let nginx = require_program("nginx", "nginx");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let values: BTreeMap<&str, String> = [
            ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
            ("NENE_UPSTREAM", upstream.to_string()),
            (
                "NENE_HTDOCS",
                app_dir().join("htdocs").display().to_string(),
            ),
            ("NENE_FASTCGI_KEEP_CONN", "on".to_string()),
            ("NENE_MAX_BODY", "8m".to_string()),
        ]
        .into_iter()
        .collect();
        let template = repo_root().join("deploy/nginx/nene.conf.template");
        let mut site = std::fs::read_to_string(&template).expect("the nginx template");
        for (name, value) in &values {
            site = site.replace(&format!("${{{name}}}"), value);
        }
        assert!(!site.contains("${"), "a placeholder was left unrendered");
        let prefix = dir.path();
        std::fs::write(prefix.join("site.conf"), site).unwrap();
        // As root the workers would run as nobody and could not use the
        // temp directories below.
        let user = if is_root() { "user root;" } else { "" };
        let main = format!(
            "{user}
daemon off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {p}/client_body;
    fastcgi_temp_path {p}/fastcgi;
    proxy_temp_path {p}/proxy;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    default_type application/octet-stream;
    types {{ text/html html; application/json json; }}
    include {p}/site.conf;
}}
",
            p = prefix.display()
        );
        std::fs::write(prefix.join("nginx.conf"), main).unwrap();
        let log = prefix.join("error.log");
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(File::create(prefix.join("stderr.log")).unwrap())
            .spawn()
            .expect("start nginx");
        wait_for_tcp(&format!("127.0.0.1:{port}"), &mut child, "nginx", &log);
        Nginx { child, port, dir }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}

/// The app behind nginx: what a browser would talk to.
pub struct Stack {
    pub nginx: Nginx,
    pub app: TodoApp,
}

impl Stack {
    pub fn start(dsn: &str) -> Stack {
        Self::start_with(dsn, &[])
    }

    /// With extra environment for the app (`NENE_SESSION_DSN`, …).
    pub fn start_with(dsn: &str, env: &[(&str, &str)]) -> Stack {
        let app = TodoApp::start(dsn, env);
        let nginx = Nginx::start(&app.addr);
        Stack { nginx, app }
    }

    pub fn base(&self) -> String {
        self.nginx.base()
    }
}
