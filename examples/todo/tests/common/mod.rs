//! The test harness: the real `todo` binary as a child process behind a real
//! nginx (rendered from the repository's deploy/nginx/nene.conf.template),
//! each on a free loopback port in its own temporary directory, stopped when
//! dropped. nginx, Redis and the database servers are nene's test harness
//! (the `nene-test-support` crate); the HTTP side of a user in `api.rs`;
//! flows shared by every backend in `flows.rs`.

#![allow(dead_code)]

pub mod api;
pub mod flows;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub use nene_test_support::{
    Nginx, free_port, kill, mariadb, postgres, wait_for_tcp, without_callers_nene_env,
};

/// examples/todo: its ini/ and htdocs/ are what the tests serve.
pub const APP_DIR: &str = env!("CARGO_MANIFEST_DIR");

pub fn app_dir() -> &'static Path {
    Path::new(APP_DIR)
}

/// A `todo` command with no NENE_* from the caller's environment, sessions
/// and the working directory (where a relative SQLite path lands) in `dir`.
fn todo_command(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_todo"));
    without_callers_nene_env(&mut command);
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

/// nginx from the repository's site template, serving the app's htdocs.
fn start_nginx(upstream: &str) -> Nginx {
    let values: BTreeMap<String, String> = [
        ("NGINX_LISTEN", format!("127.0.0.1:{}", free_port())),
        ("NENE_UPSTREAM", upstream.to_string()),
        (
            "NENE_HTDOCS",
            app_dir().join("htdocs").display().to_string(),
        ),
        ("NENE_FASTCGI_KEEP_CONN", "on".to_string()),
        ("NENE_MAX_BODY", "8m".to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    Nginx::start_rendered(&values)
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
        let nginx = start_nginx(&app.addr);
        Stack { nginx, app }
    }

    pub fn base(&self) -> String {
        self.nginx.url("")
    }
}
