//! Apache 2.4 (`/usr/sbin/apache2`, Debian's `apache2`) as a child process in
//! front of nene: the repository's `deploy/apache/apache2.conf.template`
//! with one of its two site files, on a free loopback port, in a temporary
//! directory, stopped when dropped.

use std::collections::BTreeMap;
use std::process::{Child, Command};

use crate::web_server::{WebServer, make_world_readable, spawn_server, stop_server};
use crate::{free_port, render_template, require_program};

/// How the site hands requests to nene.
#[derive(Clone, Copy, Debug)]
pub enum ApacheSite {
    /// `ProxyPass "/" "fcgi://…/" enablereuse=on`: `nene-proxypass.conf`.
    ProxyPass,
    /// `<FilesMatch \.php$> SetHandler "proxy:fcgi://…"` with
    /// `FallbackResource /index.php`: `nene-handler.conf`.
    PhpHandler,
}

pub struct Apache {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Apache {
    /// Apache serving `docroot` (see `php_style_docroot`) and passing the
    /// rest to nene at `upstream` (`host:port`).
    pub fn start(site: ApacheSite, upstream: &str, docroot: &std::path::Path) -> Apache {
        let apache2 = require_program("apache2", "apache2");
        let dir = tempfile::tempdir().unwrap();
        // Started as root, the children run as www-data and open files here.
        make_world_readable(dir.path());
        let port = free_port();
        let site_template = match site {
            ApacheSite::ProxyPass => "deploy/apache/nene-proxypass.conf.template",
            ApacheSite::PhpHandler => "deploy/apache/nene-handler.conf.template",
        };
        let site_file = dir.path().join("site.conf");
        let values: BTreeMap<String, String> = [
            ("APACHE_DIR", dir.path().display().to_string()),
            ("APACHE_LISTEN", format!("127.0.0.1:{port}")),
            ("APACHE_RUN_USER", "www-data".to_string()),
            ("APACHE_RUN_GROUP", "www-data".to_string()),
            ("APACHE_SITE", site_file.display().to_string()),
            ("NENE_UPSTREAM", upstream.to_string()),
            ("NENE_HTDOCS", docroot.display().to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        std::fs::write(&site_file, render_template(site_template, &values)).unwrap();
        let main = dir.path().join("apache2.conf");
        std::fs::write(
            &main,
            render_template("deploy/apache/apache2.conf.template", &values),
        )
        .unwrap();
        let mut command = Command::new(apache2);
        // Not apache2ctl: no /etc/apache2/envvars, no Debian layout.
        command.arg("-f").arg(&main).arg("-DFOREGROUND");
        let child = spawn_server(
            command,
            port,
            "apache2",
            &dir.path().join("stderr.log"),
            &dir.path().join("error.log"),
        );
        Apache { child, port, dir }
    }
}

impl WebServer for Apache {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        stop_server(&mut self.child);
    }
}
