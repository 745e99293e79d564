//! A real Redis Sentinel set-up for tests: a primary, one replica of it and
//! one `redis-server --sentinel` watching them as service `mymaster`, all on
//! free loopback ports in temporary directories. Failure detection is set
//! to one second (`down-after-milliseconds`), so a test that kills the
//! primary sees the replica promoted within a few seconds.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis_server::RedisServer;
use super::{free_port, require_program};

/// The service name the sentinel monitors.
pub const SERVICE: &str = "mymaster";

/// How long set-up may take: the replica's first sync and the sentinel's
/// discovery of it.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A primary, its replica and a sentinel.
pub struct SentinelSetup {
    /// The server that is primary when the set-up starts.
    pub primary: RedisServer,
    /// Its replica, promoted when the primary goes.
    pub replica: RedisServer,
    sentinel: Option<Child>,
    sentinel_port: u16,
    dir: tempfile::TempDir,
}

impl SentinelSetup {
    /// Starts all three and waits until the sentinel knows the replica (it
    /// cannot fail over before).
    pub fn start() -> SentinelSetup {
        let primary = RedisServer::start();
        let primary_port = primary.port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary_port]);
        wait_until("the replica is in sync", || {
            info_field(&replica, "replication", "master_link_status").as_deref() == Some("up")
        });
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sentinel_port = free_port();
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {SERVICE} 1000\n\
                 sentinel failover-timeout {SERVICE} 5000\n\
                 sentinel parallel-syncs {SERVICE} 1\n",
                dir = dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let sentinel = Command::new(require_program("redis-server", "redis-server"))
            .arg(&config)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        let setup = SentinelSetup {
            primary,
            replica,
            sentinel: Some(sentinel),
            sentinel_port,
            dir,
        };
        wait_until("the sentinel knows the replica", || {
            setup
                .ask_sentinel(&["SENTINEL", "replicas", SERVICE])
                .is_some_and(|reply| matches!(reply, redis::Value::Array(list) if !list.is_empty()))
        });
        setup
    }

    /// The sentinel's port.
    pub fn sentinel_port(&self) -> u16 {
        self.sentinel_port
    }

    /// `redis+sentinel://127.0.0.1:PORT/mymaster` plus `query` (e.g. `?wait=1`).
    pub fn dsn(&self, query: &str) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{SERVICE}{query}",
            self.sentinel_port
        )
    }

    /// The port the sentinel names as the primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let reply = self.ask_sentinel(&["SENTINEL", "get-master-addr-by-name", SERVICE])?;
        let (_, port): (String, u16) = redis::from_redis_value(reply).ok()?;
        Some(port)
    }

    /// The sentinel's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sentinel.log")
    }

    fn ask_sentinel(&self, args: &[&str]) -> Option<redis::Value> {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}", self.sentinel_port)).ok()?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query(&mut connection).ok()
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        if let Some(mut sentinel) = self.sentinel.take() {
            let _ = sentinel.kill();
            let _ = sentinel.wait();
        }
    }
}

/// A field of `INFO section`, e.g. `master_link_status`.
fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<String> {
    let redis::Value::BulkString(info) = server.run(&["INFO", section]) else {
        return None;
    };
    String::from_utf8_lossy(&info).lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|value| value.trim().to_string())
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + READY_WITHIN;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {READY_WITHIN:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
