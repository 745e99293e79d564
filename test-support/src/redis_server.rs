//! A real `redis-server` for tests: started on a free loopback port (and a
//! Unix socket) in a temporary directory with persistence off, killed when
//! dropped. Tests can stall it (`pause`), kill it and bring it back on the
//! same port (`kill`, `restart`), serve TLS with a throw-away CA
//! (`start_tls`), and look at keys directly (`db(n)`) to check what a
//! handler stored.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require_program};

/// How long a test waits for `redis-server` to answer after starting it.
const START_WITHIN: Duration = Duration::from_secs(10);

/// A running (or deliberately killed) `redis-server`.
pub struct RedisServer {
    /// The process; `None` between `kill` and `restart`.
    child: Option<Child>,
    /// The plain-TCP port, kept across restarts so DSNs stay valid.
    port: u16,
    /// The TLS port and the CA that signed its certificate, for `start_tls`.
    tls: Option<(u16, PathBuf)>,
    /// Extra arguments (ACL users, TLS files), repeated on restart.
    extra_args: Vec<String>,
    /// The `--requirepass` among them, which the harness's own connections
    /// (readiness, assertions) authenticate with.
    password: Option<String>,
    /// `redis-server` as found on this machine.
    program: PathBuf,
    /// Working directory, socket and log; removed on drop.
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// A server with extra command-line arguments, e.g.
    /// `["--requirepass", "secret"]` or
    /// `["--user", "app", "on", ">secret", "~*", "+@all"]`.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let password = extra_args
            .windows(2)
            .find(|pair| pair[0] == "--requirepass")
            .map(|pair| pair[1].to_string());
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            tls: None,
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
            password,
            program: require_program("redis-server", "redis-server"),
            dir,
        };
        server.spawn();
        server
    }

    /// A server that also listens with TLS on a second port, with a
    /// certificate for 127.0.0.1 signed by a CA made for this test
    /// ([`RedisServer::ca_file`]). The plain port stays open for assertions.
    pub fn start_tls() -> RedisServer {
        Self::start_tls_with(&[])
    }

    /// [`start_tls`](Self::start_tls) with more `redis-server` arguments.
    pub fn start_tls_with(more_args: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = make_certificates(dir.path());
        let tls_port = free_port();
        let file = |name: &str| dir.path().join(name).display().to_string();
        let extra_args: Vec<String> = [
            "--tls-port".to_string(),
            tls_port.to_string(),
            "--tls-cert-file".to_string(),
            file("server.crt"),
            "--tls-key-file".to_string(),
            file("server.key"),
            "--tls-ca-cert-file".to_string(),
            file("ca.crt"),
            "--tls-auth-clients".to_string(),
            "no".to_string(),
        ]
        .into_iter()
        .chain(more_args.iter().map(|arg| arg.to_string()))
        .collect();
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            tls: Some((tls_port, ca)),
            extra_args,
            password: None,
            program: require_program("redis-server", "redis-server"),
            dir,
        };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:{port}`, DB 0, no options (and no password: add
    /// it yourself for a `--requirepass` server).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Unix socket the server also listens on.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The TLS port of a server from [`RedisServer::start_tls`].
    pub fn tls_port(&self) -> u16 {
        self.tls.as_ref().expect("a server from start_tls").0
    }

    /// The PEM CA certificate that signed the TLS server's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.tls.as_ref().expect("a server from start_tls").1
    }

    /// Stalls every client for `ms` milliseconds (`CLIENT PAUSE`), as an
    /// overloaded or stuck Redis would.
    pub fn pause(&self, ms: u64) {
        let mut connection = self.connection();
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .query(&mut connection)
            .expect("CLIENT PAUSE");
    }

    /// Stops the server without closing its connections (SIGSTOP), as a
    /// hung or swapping Redis would look; a replica so stopped acknowledges
    /// nothing.
    pub fn freeze(&self) {
        crate::freeze(self.child.as_ref().expect("a running redis-server").id());
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        crate::thaw(self.child.as_ref().expect("a running redis-server").id());
    }

    /// Runs one command on DB 0, e.g. `["ACL", "SETUSER", "app", ">new"]`.
    pub fn run(&self, args: &[&str]) -> redis::Value {
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command
            .query(&mut self.connection())
            .unwrap_or_else(|error| panic!("{args:?}: {error}"))
    }

    /// How many times this server ran `command` (`INFO commandstats`;
    /// scripts' own calls included).
    pub fn calls(&self, command: &str) -> u64 {
        let redis::Value::BulkString(info) = self.run(&["INFO", "commandstats"]) else {
            panic!("INFO is a bulk string");
        };
        String::from_utf8_lossy(&info)
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the server runs (it was not killed, or was restarted).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server with SIGKILL, as a crash or OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL redis-server");
            child.wait().expect("reap redis-server");
        }
    }

    /// Starts the server again on the same port(s), with no data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts the server again on the same port(s), with no data, as a
    /// replica of the server on `port` (as an operator brings a failed
    /// primary back after a failover).
    pub fn restart_as_replica_of(&mut self, port: u16) {
        self.kill();
        self.extra_args.extend([
            "--replicaof".to_string(),
            "127.0.0.1".to_string(),
            port.to_string(),
        ]);
        self.spawn();
    }

    /// A view of database `n` for assertions.
    pub fn db(&self, n: u16) -> Db {
        let mut connection = self.connection();
        let _: () = redis::cmd("SELECT")
            .arg(n)
            .query(&mut connection)
            .expect("SELECT");
        Db { connection }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    fn connection(&self) -> redis::Connection {
        let connection = self
            .try_connection(Duration::from_secs(2))
            .expect("a connection to the test server");
        connection
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        connection
    }

    /// A connection as the harness's own client, authenticated when the
    /// server has a `--requirepass`.
    fn try_connection(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        use redis::IntoConnectionInfo;
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        let info = ("127.0.0.1", self.port)
            .into_connection_info()?
            .set_redis_settings(settings);
        redis::Client::open(info)?.get_connection_with_timeout(timeout)
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let mut command = Command::new(&self.program);
        command
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            // A replica is synced at once, not after Redis' default wait of
            // 5 s for more replicas to share the transfer: until its first
            // sync, a replica holds nothing, yet the sentinels may promote
            // it (they did, in a failover right after another on a starved
            // CI machine, and every session was gone). A node brought back
            // as a replica is then empty for milliseconds, not seconds.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(dir)
            .arg("--unixsocket")
            .arg(self.socket_path())
            .args(["--unixsocketperm", "700"])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("start redis-server");
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Ok(mut connection) = self.try_connection(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut connection).is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "redis-server exited with {status} before answering PING; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "redis-server did not answer PING on port {} within {START_WITHIN:?}; its log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One database of the test server, seen directly (not through nene).
pub struct Db {
    connection: redis::Connection,
}

impl Db {
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection)
            .expect("GET")
    }

    pub fn set(&mut self, key: &str, value: &[u8]) {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query(&mut self.connection)
            .expect("SET");
    }

    pub fn exists(&mut self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query::<i64>(&mut self.connection)
            .expect("EXISTS")
            > 0
    }

    /// Seconds to live: -1 without expiry, -2 when the key is missing.
    pub fn ttl(&mut self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(key)
            .query(&mut self.connection)
            .expect("TTL")
    }

    pub fn expire(&mut self, key: &str, seconds: u64) {
        let _: i64 = redis::cmd("EXPIRE")
            .arg(key)
            .arg(seconds)
            .query(&mut self.connection)
            .expect("EXPIRE");
    }

    /// Key names matching a glob pattern, sorted.
    pub fn keys(&mut self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.connection)
            .expect("KEYS");
        keys.sort();
        keys
    }
}

/// Writes `ca.crt`, `server.crt` and `server.key` (ECDSA P-256, valid for
/// 127.0.0.1 and localhost) into `dir` with the `openssl` command; returns
/// the CA certificate's path.
fn make_certificates(dir: &Path) -> PathBuf {
    let openssl = require_program("openssl", "openssl");
    let run = |args: &[&str]| {
        let output = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &new_key,
        &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
        &["-subj", "/CN=nene test CA"],
        &["-addext", "basicConstraints=critical,CA:TRUE"],
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]
    .concat());
    run(&[
        &["req"][..],
        &new_key,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    dir.join("ca.crt")
}
