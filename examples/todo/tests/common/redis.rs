//! A throw-away Redis server for session storage: no persistence, a free
//! loopback port.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require_program, stop_child, wait_for_tcp};

pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        let server = require_program("redis-server", "redis-server");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("redis.log");
        let mut child = Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_for_tcp(
            &format!("127.0.0.1:{port}"),
            &mut child,
            "redis-server",
            &log,
        );
        Redis {
            child,
            port,
            _dir: dir,
        }
    }

    /// The session DSN for nene.
    pub fn dsn(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}
