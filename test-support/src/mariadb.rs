//! A throw-away MariaDB server for tests: mariadb-install-db in a
//! temporary directory, `mariadbd` on a free loopback port (and a Unix
//! socket for the harness's root), a `todo` user with a password owning a
//! `todo` database; more databases for it on request (`database`), so one
//! server can serve many tests. Shared by nene's tests and the todo
//! example's (which includes this file by path).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, is_root, require_program, stop_child, wait_for_tcp, wait_until_answering};

/// The password of the app's user; the tests check it never shows.
pub const PASSWORD: &str = "maria-Secret-pw1";

pub struct MariaDb {
    child: Option<Child>,
    server: PathBuf,
    client: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl MariaDb {
    pub fn start() -> MariaDb {
        let install = require_program("mariadb-install-db", "mariadb-server");
        let server = require_program("mariadbd", "mariadb-server");
        let client = require_program("mariadb", "mariadb-client");
        let dir = tempfile::tempdir().unwrap();
        let mut db = MariaDb {
            child: None,
            server,
            client,
            dir,
            port: free_port(),
        };
        std::fs::create_dir(db.tmp()).unwrap();
        let mut command = Command::new(install);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", db.data().display()))
            // Its own temporary directory: bootstraps sharing /tmp collide
            // on their `#sql-temptable-…` files when several run at once
            // ("Unknown table 'mysql.tmp_user_sys'"), as the test binaries do.
            .arg(format!("--tmpdir={}", db.tmp().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            command.arg("--user=root");
        }
        let output = command.output().expect("run mariadb-install-db");
        assert!(
            output.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        db.start_again();
        db.sql(&format!(
            "CREATE DATABASE todo; \
             CREATE USER 'todo'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON todo.* TO 'todo'@'127.0.0.1';"
        ));
        db
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("mariadb.log")
    }

    /// The DSN the app is given: the password user over TCP.
    pub fn dsn(&self) -> String {
        format!("mariadb://todo:{PASSWORD}@127.0.0.1:{}/todo", self.port)
    }

    /// Starts the server on its port (first start, or after `stop`).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "MariaDB is already running");
        let log = self.log();
        let mut command = Command::new(&self.server);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--tmpdir={}", self.tmp().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mariadb.pid").display()
            ))
            .args([
                "--skip-log-bin",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
            ])
            .args([
                "--innodb-flush-log-at-trx-commit=2",
                "--innodb-log-file-size=16M",
            ])
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        if is_root() {
            command.arg("--user=root");
        }
        let mut child = command.spawn().expect("start mariadbd");
        wait_for_tcp(
            &format!("127.0.0.1:{}", self.port),
            &mut child,
            "mariadbd",
            &log,
        );
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        wait_until_answering("MariaDB", &self.log(), || self.sql_output("SELECT 1"));
    }

    fn sql_output(&self, sql: &str) -> std::process::Output {
        Command::new(&self.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "-e", sql])
            .output()
            .expect("run the mariadb client")
    }

    /// Runs SQL as root over the Unix socket.
    pub fn sql(&self, sql: &str) {
        let output = self.sql_output(sql);
        assert!(
            output.status.success(),
            "mariadb {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A fresh database `name` the `todo` user owns, and its DSN: one
    /// server serves many tests, each in a database of its own.
    pub fn database(&self, name: &str) -> String {
        self.sql(&format!(
            "CREATE DATABASE {name}; GRANT ALL ON {name}.* TO 'todo'@'127.0.0.1';"
        ));
        format!("mariadb://todo:{PASSWORD}@127.0.0.1:{}/{name}", self.port)
    }

    /// The rows `sql` selects (as root), tab-separated, one line each.
    pub fn query(&self, sql: &str) -> String {
        let output = Command::new(&self.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .expect("run the mariadb client");
        assert!(
            output.status.success(),
            "mariadb {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Kills the server at once (an outage; `start_again` brings it back).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(5));
        }
    }

    /// Its temporary directory (data, socket, log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A clean shutdown: connections are ended, the port closes.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGTERM, Duration::from_secs(20));
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(5));
        }
    }
}
