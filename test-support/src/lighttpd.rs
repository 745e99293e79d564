//! lighttpd (`/usr/sbin/lighttpd`, Debian's `lighttpd`) as a child process
//! in front of nene: the repository's `deploy/lighttpd/lighttpd.conf.template`
//! on a free loopback port, in a temporary directory, stopped when dropped.

use std::collections::BTreeMap;
use std::process::{Child, Command};

use crate::web_server::{WebServer, spawn_server, stop_server};
use crate::{free_port, render_template, require_program};

pub struct Lighttpd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Lighttpd {
    /// lighttpd serving `docroot` and passing the rest to nene at
    /// `upstream` (`host:port`).
    pub fn start(upstream: &str, docroot: &std::path::Path) -> Lighttpd {
        let lighttpd = require_program("lighttpd", "lighttpd");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let (host, nene_port) = upstream
            .rsplit_once(':')
            .expect("nene's upstream as host:port");
        let values: BTreeMap<String, String> = [
            ("LIGHTTPD_DIR", dir.path().display().to_string()),
            ("LIGHTTPD_PORT", port.to_string()),
            ("NENE_HOST", host.to_string()),
            ("NENE_PORT", nene_port.to_string()),
            ("NENE_HTDOCS", docroot.display().to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        let config = dir.path().join("lighttpd.conf");
        std::fs::write(
            &config,
            render_template("deploy/lighttpd/lighttpd.conf.template", &values),
        )
        .unwrap();
        let mut command = Command::new(lighttpd);
        // -D: in the foreground, as the test's child.
        command.arg("-D").arg("-f").arg(&config);
        let child = spawn_server(
            command,
            port,
            "lighttpd",
            &dir.path().join("stderr.log"),
            &dir.path().join("error.log"),
        );
        Lighttpd { child, port, dir }
    }
}

impl WebServer for Lighttpd {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        stop_server(&mut self.child);
    }
}
