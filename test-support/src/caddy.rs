//! Caddy (`caddy`, Debian's `caddy`) as a child process in front of nene:
//! the repository's `deploy/caddy/Caddyfile.template` on a free loopback
//! port, with its home, data and config directories in a temporary
//! directory (it writes nothing elsewhere), stopped when dropped.

use std::collections::BTreeMap;
use std::process::{Child, Command};

use crate::web_server::{WebServer, spawn_server, stop_server};
use crate::{free_port, render_template, require_program};

pub struct Caddy {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Caddy {
    /// Caddy serving `docroot` and passing the rest to nene at `upstream`
    /// (`host:port`).
    pub fn start(upstream: &str, docroot: &std::path::Path) -> Caddy {
        let caddy = require_program("caddy", "caddy");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let values: BTreeMap<String, String> = [
            ("CADDY_SITE", format!("http://127.0.0.1:{port}")),
            ("NENE_UPSTREAM", upstream.to_string()),
            ("NENE_HTDOCS", docroot.display().to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        let config = dir.path().join("Caddyfile");
        std::fs::write(
            &config,
            render_template("deploy/caddy/Caddyfile.template", &values),
        )
        .unwrap();
        let mut command = Command::new(caddy);
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--adapter")
            .arg("caddyfile")
            // Caddy keeps its certificates, locks and autosaved config
            // under these; none of the caller's.
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"));
        // Caddy logs to stderr; that is its error log here.
        let log = dir.path().join("caddy.log");
        let child = spawn_server(command, port, "caddy", &log, &log);
        Caddy { child, port, dir }
    }
}

impl WebServer for Caddy {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default()
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        stop_server(&mut self.child);
    }
}
