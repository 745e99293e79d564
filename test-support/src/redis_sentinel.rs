//! A real Redis Sentinel set-up for tests: a primary, one replica of it and
//! three `redis-server --sentinel` processes watching them as service
//! `mymaster` (quorum 2, as in production: no single sentinel decides), all
//! on free loopback ports in temporary directories. Failure detection is set
//! to two seconds (`down-after-milliseconds`), so a test that kills the
//! primary sees the replica promoted within a few seconds. Not one second:
//! a sentinel pings every second at most, and with the two equal, a loaded
//! machine saw the sentinels call a just-promoted primary down one second
//! after the switch (its first reply late by milliseconds) and fail over a
//! second time.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;
use crate::{free_port, require_program};

/// The service name the sentinel monitors.
pub const SERVICE: &str = "mymaster";

/// How long set-up may take: the replica's first sync and the sentinel's
/// discovery of it.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// How many sentinels watch the service, and how many must agree that the
/// primary is down.
const SENTINELS: usize = 3;
const QUORUM: usize = 2;

/// A primary, its replica and three sentinels.
pub struct SentinelSetup {
    /// The server that is primary when the set-up starts.
    pub primary: RedisServer,
    /// Its replica, promoted when the primary goes.
    pub replica: RedisServer,
    sentinels: Vec<Child>,
    sentinel_ports: Vec<u16>,
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
        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for at in 0..SENTINELS {
            let port = free_port();
            let own = dir.path().join(format!("sentinel-{at}"));
            std::fs::create_dir(&own).expect("a sentinel directory");
            let config = own.join("sentinel.conf");
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {QUORUM}\n\
                     sentinel down-after-milliseconds {SERVICE} 2000\n\
                     sentinel failover-timeout {SERVICE} 5000\n\
                     sentinel parallel-syncs {SERVICE} 1\n",
                    dir = own.display()
                ),
            )
            .expect("write sentinel.conf");
            sentinels.push(spawn_sentinel(&config));
            sentinel_ports.push(port);
        }
        let setup = SentinelSetup {
            primary,
            replica,
            sentinels,
            sentinel_ports,
            dir,
        };
        // A failover needs every sentinel to know the replica and a
        // majority to know each other (they meet through the primary).
        wait_until("the sentinels know the replica and each other", || {
            setup.sentinel_ports.iter().all(|port| {
                let knows = |args: &[&str]| {
                    ask(*port, args).map_or(0, |reply| match reply {
                        redis::Value::Array(list) => list.len(),
                        _ => 0,
                    })
                };
                knows(&["SENTINEL", "replicas", SERVICE]) == 1
                    && knows(&["SENTINEL", "sentinels", SERVICE]) == SENTINELS - 1
            })
        });
        setup
    }

    /// The first sentinel's port.
    pub fn sentinel_port(&self) -> u16 {
        self.sentinel_ports[0]
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/mymaster`
    /// plus `query` (e.g. `?wait=1`).
    pub fn dsn(&self, query: &str) -> String {
        let sentinels: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}{query}", sentinels.join(","))
    }

    /// The port the first sentinel names as the primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let reply = ask(
            self.sentinel_port(),
            &["SENTINEL", "get-master-addr-by-name", SERVICE],
        )?;
        let (_, port): (String, u16) = redis::from_redis_value(reply).ok()?;
        Some(port)
    }

    /// The sentinels' logs, for failure messages.
    pub fn log(&self) -> String {
        (0..SENTINELS)
            .map(|at| {
                let path = self.dir.path().join(format!("sentinel-{at}/sentinel.log"));
                format!(
                    "--- sentinel {at}\n{}",
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect()
    }
}

/// One sentinel watching one server as [`SERVICE`], with a quorum it cannot
/// reach alone: it never fails over, so it names that server as the
/// primary for as long as it runs, whatever the server says it is (a
/// sentinel with a stale view, or a misconfigured one).
pub struct LoneSentinel {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl LoneSentinel {
    /// Watching `server`'s plain port.
    pub fn watching(server: &RedisServer) -> LoneSentinel {
        Self::start(server.port(), "")
    }

    /// Over TLS only, watching the TLS port of a server from
    /// [`RedisServer::start_tls`] (and speaking TLS to it), with that
    /// server's certificate and CA ([`RedisServer::ca_file`]).
    pub fn watching_tls(server: &RedisServer) -> LoneSentinel {
        let files = server
            .ca_file()
            .parent()
            .expect("the certificates' directory");
        let file = |name: &str| files.join(name).display().to_string();
        let tls = format!(
            "tls-port {{port}}\nport 0\ntls-cert-file {}\ntls-key-file {}\n\
             tls-ca-cert-file {}\ntls-replication yes\ntls-auth-clients no\n",
            file("server.crt"),
            file("server.key"),
            file("ca.crt"),
        );
        Self::start(server.tls_port(), &tls)
    }

    /// `tls`: extra configuration, `{port}` standing for the sentinel's port.
    fn start(watched_port: u16, tls: &str) -> LoneSentinel {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let listen = if tls.is_empty() {
            format!("port {port}\n")
        } else {
            tls.replace("{port}", &port.to_string())
        };
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "{listen}bind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {watched_port} {QUORUM}\n",
                dir = dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let child = spawn_sentinel(&config);
        let sentinel = LoneSentinel { child, port, dir };
        wait_until("the sentinel monitors the server", || {
            sentinel.log().contains("+monitor master")
        });
        sentinel
    }

    /// The port it listens on (TLS only for [`watching_tls`](Self::watching_tls)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for LoneSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-server CONFIG --sentinel`, quiet (it logs to its logfile).
fn spawn_sentinel(config: &std::path::Path) -> Child {
    Command::new(require_program("redis-server", "redis-server"))
        .arg(config)
        .arg("--sentinel")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server --sentinel")
}

/// One command to the sentinel on `port`; `None` when it does not answer.
fn ask(port: u16, args: &[&str]) -> Option<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(&mut connection).ok()
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        for sentinel in &mut self.sentinels {
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
