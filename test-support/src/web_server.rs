//! What the web servers in front of nene have in common in the tests: a
//! PHP-style document root (htdocs plus the `index.php` their front-controller
//! rules look for), the [`WebServer`] view the shared flows of
//! `tests/http/web_servers.rs` take, and starting and stopping a server process.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Nginx, htdocs};

/// A web server in front of nene, as the flows see it.
pub trait WebServer {
    /// `http://127.0.0.1:PORT` + `path`.
    fn url(&self, path: &str) -> String;
    /// The server's own error log, for failure messages.
    fn error_log(&self) -> String;
}

impl WebServer for Nginx {
    fn url(&self, path: &str) -> String {
        Nginx::url(self, path)
    }

    fn error_log(&self) -> String {
        Nginx::error_log(self)
    }
}

/// What `config.php` in [`php_style_docroot`] holds: a server that hands
/// the file out shows it.
pub const PHP_SECRET: &str = "db-password-that-must-never-leave";

/// A copy of htdocs with an empty `index.php`: PHP-style configurations
/// check that the front controller's script exists (nginx's
/// `try_files $fastcgi_script_name`, Caddy's `try_files`, Apache's
/// `DirectoryIndex`) before they pass a request on; and a PHP site's
/// `config.php`, which no server may hand out as a file. World-readable:
/// Apache started as root serves it from children running as www-data.
pub fn php_style_docroot() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(htdocs()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("index.php"),
        "<?php // nene's front controller: the web server's rules need the file, nene never reads it\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.php"),
        format!("<?php $password = '{PHP_SECRET}';\n"),
    )
    .unwrap();
    make_world_readable(dir.path());
    dir
}

/// `dir` 0755 and its files 0644 (a temporary directory is 0700).
pub fn make_world_readable(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Starts `command` with stdout and stderr into `stderr_log`, and waits
/// until it accepts connections on `127.0.0.1:port`; a server that exits
/// first, or does not listen within 10 s, fails the test with both logs.
pub fn spawn_server(
    mut command: Command,
    port: u16,
    what: &str,
    stderr_log: &Path,
    error_log: &Path,
) -> Child {
    let output = File::create(stderr_log).unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap_or_else(|error| panic!("start {what}: {error}"));
    let logs = || {
        format!(
            "{}\n{}",
            std::fs::read_to_string(stderr_log).unwrap_or_default(),
            std::fs::read_to_string(error_log).unwrap_or_default()
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening; its logs:\n{}",
                logs()
            );
        }
        if Instant::now() > deadline {
            stop_server(&mut child);
            panic!(
                "{what} did not listen on port {port} within 10 s; its logs:\n{}",
                logs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, which each server takes as "stop, and stop your children";
/// SIGKILL after 5 s.
pub fn stop_server(child: &mut Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}
