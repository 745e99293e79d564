//! PHP-FPM as a child process on a free loopback port, for tests where a
//! PHP application and nene share sessions: Debian's `php-fpm8.x` with the
//! distribution's extensions (phpredis), a static pool, and the pool's
//! `php_value` settings and environment given by the test.

#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

pub struct PhpFpm {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Debian names the binary after its PHP version: the newest one installed.
fn php_fpm_binary() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/sbin")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with("php-fpm"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PHP-FPM is not installed: apt-get install -y php-fpm php-redis php-cli")
    })
}

impl PhpFpm {
    /// A pool of `children` workers with these `php_value` settings and
    /// environment variables.
    pub fn start(children: usize, php_values: &[(&str, &str)], env: &[(&str, &str)]) -> PhpFpm {
        let binary = php_fpm_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let p = dir.path().display();
        let mut pool = format!(
            "[global]\npid = {p}/php-fpm.pid\nerror_log = {p}/php-fpm.log\ndaemonize = no\n\n\
             [test]\nlisten = 127.0.0.1:{port}\npm = static\npm.max_children = {children}\n\
             catch_workers_output = yes\nphp_admin_value[error_log] = {p}/php-errors.log\n\
             php_admin_value[log_errors] = on\n"
        );
        for (name, value) in php_values {
            // Quoted: values such as phpredis' save_path hold `=` and `?`.
            pool.push_str(&format!("php_value[{name}] = \"{value}\"\n"));
        }
        for (name, value) in env {
            pool.push_str(&format!("env[{name}] = {value}\n"));
        }
        let config = dir.path().join("php-fpm.conf");
        std::fs::write(&config, pool).unwrap();
        let mut command = Command::new(binary);
        command.arg("--nodaemonize").arg("-y").arg(&config);
        if unsafe { libc::geteuid() } == 0 {
            command.arg("--allow-to-run-as-root");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start php-fpm");
        let fpm = PhpFpm { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "php-fpm did not start: {}",
                fpm.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        fpm
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// PHP-FPM's own log and the pool's PHP error log.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "{}{}{}",
            read("php-fpm.log"),
            read("stderr.log"),
            read("php-errors.log")
        )
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGQUIT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
