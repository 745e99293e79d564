//! The test harness: starts a real nginx (rendered from the repository's own
//! config template) and nene as a child process on free loopback ports, each
//! in a temporary directory, and stops them when dropped. Apache, lighttpd
//! and Caddy are started alike from their templates in `deploy/`
//! (`apache.rs`, `lighttpd.rs`, `caddy.rs`).

pub mod apache;
pub mod browser;
pub mod caddy;
pub mod compose;
pub mod dockerfile;
pub mod fault_proxy;
pub mod fcgi_client;
pub mod in_process;
pub mod lighttpd;
pub mod mariadb;
pub mod memcached_server;
pub mod openmetrics;
pub mod otlp_receiver;
pub mod php_cli;
pub mod php_fpm;
pub mod postgres;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod web_server;
pub mod webdriver;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root: this crate's directory without its
/// `/test-support` (a path without `..`, which PHP-FPM refuses in a script's
/// path).
pub const REPO: &str = parent_dir(env!("CARGO_MANIFEST_DIR"));

/// `path` without its last component, at compile time.
const fn parent_dir(path: &'static str) -> &'static str {
    let bytes = path.as_bytes();
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1] != b'/' {
        end -= 1;
    }
    let (parent, _) = bytes.split_at(end.saturating_sub(1));
    match std::str::from_utf8(parent) {
        Ok(parent) => parent,
        Err(_) => panic!("the crate's directory is not UTF-8"),
    }
}

/// The `nene` binary cargo built for this test run. Only the nene
/// package's own test crates see `CARGO_BIN_EXE_nene` when they compile, so
/// the harness finds it as cargo lays it out: a test runs as
/// `target/<profile>/deps/<test>-<hash>`, the binary is
/// `target/<profile>/nene`.
pub fn nene_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    let profile_dir = test
        .parent()
        .and_then(Path::parent)
        .expect("a test binary under target/<profile>/deps");
    let nene = profile_dir.join("nene");
    assert!(
        nene.is_file(),
        "{} is missing: run the tests with `cargo test` from the repository, which builds it",
        nene.display()
    );
    nene
}

pub fn htdocs() -> PathBuf {
    Path::new(REPO).join("htdocs")
}

/// The text of the log file at `path` once it contains `needle`: access
/// and slow log lines are written in batches (within
/// `nene::ops::FLUSH_INTERVAL`), so a test waits for them. Panics with the
/// text after 3 s.
#[track_caller]
pub fn wait_for_log(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never showed {needle:?}; it has:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nothing listens on right now, for a server a test starts.
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`, 32768 on
/// Debian), walking it with one counter per process: a port the kernel hands
/// out by `bind(…:0)` is released before the server binds it, and in that gap
/// any outgoing connection may take it as its source port (a Redis cluster bus
/// port was lost that way in CI: "Address already in use"). Below the range
/// only listeners compete, and two threads never get the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(usize::MAX);
    const LOWEST: u16 = 20_000;
    let highest = ephemeral_range_start().saturating_sub(1);
    if highest <= LOWEST {
        return kernel_chosen_port();
    }
    let span = usize::from(highest - LOWEST) + 1;
    // A start of its own per process, so two test binaries run side by side
    // by hand do not walk the same ports in step.
    let _ = NEXT.compare_exchange(
        usize::MAX,
        std::process::id() as usize * 7919 % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = LOWEST + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    kernel_chosen_port()
}

/// The first port the kernel uses for outgoing connections (32768 if unknown).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn kernel_chosen_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Finds `name` in `extra` directories, on PATH, or in the sbin
/// directories Debian installs servers into; fails the test, naming the
/// Debian package, when it is missing.
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

/// Finds a program on PATH or in the sbin directories Debian installs
/// servers into; fails the test, naming the package, when it is missing.
pub fn require_program(name: &str, debian_package: &str) -> PathBuf {
    require_program_in(name, debian_package, &[])
}

/// Whether this test process runs as root (as CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `signal` to `pid` (a child this test started).
pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Stops process `pid` (SIGSTOP), as a server that hangs, and returns once
/// every thread of it shows as stopped: kill(2) returns before a thread
/// running on another core has stopped, and until then it may still answer.
pub fn freeze(pid: u32) {
    kill(pid, libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(5);
    let all_stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .all(|task| {
                let stat =
                    std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
                // The state follows the parenthesised command name.
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
            })
    };
    while !all_stopped() {
        assert!(Instant::now() < deadline, "process {pid} did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Lets a frozen process go on (SIGCONT).
pub fn thaw(pid: u32) {
    kill(pid, libc::SIGCONT);
}

/// Waits up to `within` for `child` to exit after `signal`; SIGKILL after that.
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

/// Makes `fd` the child's fd 3, where systemd's socket activation passes
/// the first socket (`LISTEN_FDS`), open across exec.
pub fn pass_as_fd3(command: &mut Command, fd: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls: dup2
    // (which leaves the copy without FD_CLOEXEC) and fcntl.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits until `addr` accepts TCP connections, or panics after 20 s
/// (a database server's first start on two busy cores).
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
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on {addr} within 20 s");
}

fn wait_for_unix(path: &Path, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "nene exited with {status}; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nene did not listen on {} within 10 s", path.display());
}

/// Waits up to 20 s until `ask` (a query such as `SELECT 1`) succeeds: a
/// database server that accepts TCP connections may still be starting up.
/// Panics naming `what`, with the last error and the server's `log`.
pub(crate) fn wait_until_answering(what: &str, log: &Path, ask: impl Fn() -> Output) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = ask();
        if output.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never answered: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// nene running as a child process.
pub struct Nene {
    child: Child,
    /// The FastCGI address as nginx's fastcgi_pass spells it.
    pub upstream: String,
    /// TCP address, when listening on TCP.
    pub addr: String,
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

impl Nene {
    /// nene on a free loopback TCP port, with extra environment variables
    /// (`NENE_SERVER__MAX_BODY_BYTES`, `NENE_SESSION_DSN`, …).
    pub fn start(env: &[(&str, &str)]) -> Nene {
        let addr = format!("127.0.0.1:{}", free_port());
        Self::spawn(&addr, env)
    }

    /// nene on a Unix socket at `path`.
    pub fn start_unix(path: &Path, env: &[(&str, &str)]) -> Nene {
        Self::spawn(&format!("unix:{}", path.display()), env)
    }

    /// nene configured by `env` alone, as a container's environment
    /// configures it: no `--listen` or `--htdocs`; `NENE_LISTEN` in `env` says
    /// where it listens, and htdocs is the default, relative to the repository.
    pub fn start_from_env(env: &[(&str, &str)]) -> Nene {
        let listen = env
            .iter()
            .find(|(name, _)| *name == "NENE_LISTEN")
            .map(|(_, value)| value.to_string())
            .expect("NENE_LISTEN in the environment");
        Self::spawn_with(&listen, false, env)
    }

    /// nene on a free loopback TCP port with its command adjusted by
    /// `adjust` before it starts (e.g. a `pre_exec` that lowers a limit).
    pub fn start_adjusted(env: &[(&str, &str)], adjust: impl FnOnce(&mut Command)) -> Nene {
        let addr = format!("127.0.0.1:{}", free_port());
        Self::spawn_adjusted(&addr, true, env, adjust)
    }

    fn spawn(listen: &str, env: &[(&str, &str)]) -> Nene {
        Self::spawn_with(listen, true, env)
    }

    fn spawn_with(listen: &str, command_line: bool, env: &[(&str, &str)]) -> Nene {
        Self::spawn_adjusted(listen, command_line, env, |_| {})
    }

    fn spawn_adjusted(
        listen: &str,
        command_line: bool,
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Nene {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nene.log");
        let mut command = nene_command(dir.path(), &log, env);
        command.arg("serve");
        if command_line {
            command
                .arg("--listen")
                .arg(listen)
                .arg("--htdocs")
                .arg(htdocs());
        }
        adjust(&mut command);
        let mut child = command.spawn().expect("start nene");
        match listen.strip_prefix("unix:") {
            Some(path) => wait_for_unix(Path::new(path), &mut child, &log),
            None => wait_for_tcp(listen, &mut child, "nene", &log),
        }
        Nene {
            child,
            upstream: listen.to_string(),
            addr: listen.to_string(),
            log,
            dir,
        }
    }

    /// nene run with `args` (`serve …` or `dev …`) on a listening socket
    /// this test holds, passed in as fd 3 with `LISTEN_FDS=1` as systemd
    /// and systemfd pass one (no `LISTEN_PID`, as `systemfd --no-pid`).
    /// `addr` is the socket's address. Ready once its log says it serves
    /// on the socket: connecting would prove nothing, the socket accepts
    /// into its queue while no nene runs.
    pub fn start_on_passed_socket(
        socket: &impl std::os::fd::AsRawFd,
        addr: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Nene {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nene.log");
        let mut command = nene_command(dir.path(), &log, env);
        command
            .args(args)
            .env("LISTEN_FDS", "1")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES");
        pass_as_fd3(&mut command, socket.as_raw_fd());
        let mut child = command.spawn().expect("start nene");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("passed in as fd 3")
        {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "nene exited with {status}; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nene did not start within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nene {
            child,
            upstream: addr.to_string(),
            addr: addr.to_string(),
            log,
            dir,
        }
    }

    /// `nene dev`: the development web server on a free loopback port,
    /// serving `htdocs`; `addr` is its HTTP address.
    pub fn start_dev(htdocs: &Path, env: &[(&str, &str)]) -> Nene {
        let addr = format!("127.0.0.1:{}", free_port());
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nene.log");
        let mut command = nene_command(dir.path(), &log, env);
        command
            .arg("dev")
            .arg("--http")
            .arg(&addr)
            .arg("--htdocs")
            .arg(htdocs);
        let mut child = command.spawn().expect("start nene dev");
        wait_for_tcp(&addr, &mut child, "nene dev", &log);
        Nene {
            child,
            upstream: String::new(),
            addr,
            log,
            dir,
        }
    }

    /// An application's own binary (built on nene) serving FastCGI on a
    /// free loopback port, run from `cwd` (its `ini/` and `htdocs/`).
    pub fn start_program(program: &Path, cwd: &Path, env: &[(&str, &str)]) -> Nene {
        let addr = format!("127.0.0.1:{}", free_port());
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let mut command = program_command(program, cwd, dir.path(), &log, env);
        command.arg("serve").arg("--listen").arg(&addr);
        let mut child = command.spawn().expect("start the application");
        wait_for_tcp(&addr, &mut child, "the application", &log);
        Nene {
            child,
            upstream: addr.clone(),
            addr,
            log,
            dir,
        }
    }

    /// The directory of this nene's log and (by default) session files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts that nene's log holds `text` within 3 s (access and slow log
    /// lines are written in batches, [`wait_for_log`]; a CI run once
    /// looked before the batch was written); a failure shows the log.
    #[track_caller]
    pub fn assert_logged(&self, text: &str) {
        wait_for_log(&self.log, text);
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits up to `within` for nene to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Nene {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nene binary with only the environment a test gives (no NENE_* of
/// the caller's), sessions under `dir`, stderr into `log`, run from the
/// repository; the subcommand and its flags are the caller's.
fn nene_command(dir: &Path, log: &Path, env: &[(&str, &str)]) -> Command {
    program_command(&nene_binary(), Path::new(REPO), dir, log, env)
}

/// Like [`nene_command`] for any binary built on nene, run from `cwd`.
fn program_command(
    program: &Path,
    cwd: &Path,
    dir: &Path,
    log: &Path,
    env: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(program);
    without_callers_nene_env(&mut command);
    command
        .env("RUST_LOG", "info")
        .env(
            "NENE_SESSION__SAVE_PATH",
            dir.join("sessions").display().to_string(),
        )
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap());
    command
}

/// The text of the repository's template at `template` (a path from the
/// repository's root) with its `${NAME}` placeholders set to `values`, as
/// `envsubst` sets them from the environment; a placeholder without a value
/// fails the test.
pub fn render_template(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut text = std::fs::read_to_string(Path::new(REPO).join(template))
        .unwrap_or_else(|error| panic!("the template {template}: {error}"));
    for (name, value) in values {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    // Only upper-case names are placeholders: lighttpd's own `${url.path}`
    // stays.
    let left = text.split("${").skip(1).find(|rest| {
        rest.split_once('}').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
    });
    assert!(
        left.is_none(),
        "a placeholder in {template} was left unrendered:\n{text}"
    );
    text
}

/// nginx running as a child process with a config rendered from
/// `deploy/nginx/nene.conf.template`.
pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

pub struct NginxOptions<'a> {
    /// Servers of the `nene` upstream (host:port or unix:/path).
    pub upstreams: Vec<&'a str>,
    pub keep_conn: bool,
    pub max_body: &'a str,
}

impl Nginx {
    pub fn start(upstream: &str, keep_conn: bool) -> Nginx {
        Self::start_with(NginxOptions {
            upstreams: vec![upstream],
            keep_conn,
            max_body: "8m",
        })
    }

    /// nginx passing requests round robin to `upstreams`, its FastCGI
    /// connections kept.
    pub fn start_balancing(upstreams: Vec<&str>) -> Nginx {
        Self::start_with(NginxOptions {
            upstreams,
            keep_conn: true,
            max_body: "8m",
        })
    }

    pub fn start_with(options: NginxOptions<'_>) -> Nginx {
        let port = free_port();
        let mut servers = options.upstreams.iter();
        let first = servers.next().expect("at least one upstream");
        let mut upstream = first.to_string();
        for server in servers {
            // One line: the template names its placeholders in comments too.
            upstream.push_str(&format!("; server {server}"));
        }
        let keep_conn = if options.keep_conn { "on" } else { "off" };
        let values: BTreeMap<String, String> = [
            ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
            ("NENE_UPSTREAM", upstream),
            ("NENE_HTDOCS", htdocs().display().to_string()),
            ("NENE_FASTCGI_KEEP_CONN", keep_conn.to_string()),
            ("NENE_MAX_BODY", options.max_body.to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        Self::start_rendered(&values)
    }

    /// nginx with the template's `${NAME}` placeholders set to `values`,
    /// as the nginx image's envsubst sets them from its environment.
    /// `NGINX_LISTEN` must be `127.0.0.1:PORT`; a placeholder without a
    /// value fails the test.
    pub fn start_rendered(values: &BTreeMap<String, String>) -> Nginx {
        Self::start_template("deploy/nginx/nene.conf.template", values)
    }

    /// nginx with another of the repository's templates (a path from the
    /// repository's root), rendered like [`Self::start_rendered`]. Debian's
    /// `fastcgi_params` sits next to the config, as in the nginx image.
    pub fn start_template(template: &str, values: &BTreeMap<String, String>) -> Nginx {
        let nginx = require_program("nginx", "nginx");
        let dir = tempfile::tempdir().unwrap();
        let port: u16 = values
            .get("NGINX_LISTEN")
            .and_then(|listen| listen.strip_prefix("127.0.0.1:"))
            .and_then(|port| port.parse().ok())
            .expect("NGINX_LISTEN = 127.0.0.1:PORT");
        let site = render_template(template, values);
        let prefix = dir.path();
        std::fs::write(prefix.join("site.conf"), site).unwrap();
        // Debian's own files, which PHP-style configs include by these
        // relative names (resolved against the config's directory).
        std::fs::create_dir(prefix.join("snippets")).unwrap();
        for file in [
            "fastcgi_params",
            "fastcgi.conf",
            "snippets/fastcgi-php.conf",
        ] {
            std::fs::copy(Path::new("/etc/nginx").join(file), prefix.join(file)).unwrap_or_else(
                |error| panic!("Debian's /etc/nginx/{file} (apt-get install nginx): {error}"),
            );
        }
        // As root, workers would otherwise run as nobody and could not use
        // the temp directories below.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let main = format!(
            "{user}
daemon off;
worker_processes 2;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {p}/client_body;
    fastcgi_temp_path {p}/fastcgi;
    proxy_temp_path {p}/proxy;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    default_type application/octet-stream;
    types {{ text/html html; text/plain txt; text/css css; }}
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// A browser of its own on this nginx.
    pub fn browser(&self) -> browser::Browser {
        browser::Browser::new(&self.url(""))
    }

    /// `GET path` through this nginx, on a client of its own.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        get(&self.url(path)).await
    }

    /// `POST path` with `body` through this nginx, on a client of its own.
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        post(&self.url(path), body).await
    }

    /// `nginx -s reload`: SIGHUP to the master, which starts new workers and
    /// lets the old ones finish what they have.
    pub fn reload(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGHUP);
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nene started with `env`, behind nginx (FastCGI connections kept).
pub fn nene_behind_nginx(env: &[(&str, &str)]) -> (Nene, Nginx) {
    let nene = Nene::start(env);
    let nginx = Nginx::start(&nene.upstream, true);
    (nene, nginx)
}

/// `command` without the NENE_* (and OpenTelemetry's OTEL_*) variables of
/// whoever runs the tests, so that only what a test sets configures the
/// nene it starts.
pub fn without_callers_nene_env(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("NENE_") || name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
}

/// `nene` run to completion with `args` and `env` (no inherited NENE_*),
/// from the repository directory.
pub fn run_nene(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(nene_binary());
    without_callers_nene_env(&mut command);
    // Sessions never land in the repository's own var/ directory.
    // A directory nene creates itself (0700): an existing save_path must be
    // private to it.
    let sessions = tempfile::tempdir().unwrap();
    let child = command
        .args(args)
        .env("NENE_SESSION__SAVE_PATH", sessions.path().join("sessions"))
        .envs(env.iter().copied())
        .current_dir(REPO)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nene");
    // A command expected to stop must not hang the suite if it serves instead.
    let pid = child.id() as i32;
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        // SAFETY: kill(2) on our child's pid; harmless if it already exited.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    });
    let output = child.wait_with_output().expect("run nene");
    drop(watchdog);
    assert!(
        output.status.code().is_some(),
        "nene {args:?} did not exit within 20 s: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `GET url` on a client of its own.
pub async fn get(url: &str) -> reqwest::Response {
    http_client().get(url).send().await.unwrap()
}

/// `POST url` with `body` on a client of its own.
pub async fn post(url: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    http_client().post(url).body(body).send().await.unwrap()
}

/// An HTTP client that does not follow redirects or use proxies.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Raises this test process's soft open-file limit with nene's own
/// start-up code, for tests that hold many connections; fails the test when
/// the hard limit is too low for `connections`.
pub fn raise_open_file_limit(connections: usize) {
    use nene::server::OpenFileLimit;
    match nene::server::raise_open_file_limit(connections) {
        Ok(OpenFileLimit::Enough { .. } | OpenFileLimit::Raised { .. }) => {}
        Ok(OpenFileLimit::TooLow { hard, wanted, .. }) => panic!(
            "this test needs {wanted} open files but the hard limit is {hard}; raise it (ulimit -Hn)"
        ),
        Err(error) => panic!("{error}"),
    }
}

/// A process's resident memory in KiB, from /proc/PID/status.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc status")
}
