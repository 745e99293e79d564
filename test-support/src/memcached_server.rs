//! A real `memcached` for tests: started on a free loopback port with an
//! 8 MiB item size limit (`-I 8m`: the contract writes 1 MiB sessions, over
//! memcached's default 1 MiB limit with the item's overhead), killed when
//! dropped. Tests can kill it and bring it back on the same port (`kill`,
//! `restart`), stall it (`pause`, `resume`), and look at items directly
//! (`get`, `keys`, `ttl`, `set`) to check what a handler stored.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require_program};

/// How long a test waits for memcached to answer after starting it.
const START_WITHIN: Duration = Duration::from_secs(10);

/// A running (or deliberately killed) `memcached`.
pub struct MemcachedServer {
    /// The process; `None` between `kill` and `restart`.
    child: Option<Child>,
    /// Kept across restarts so DSNs stay valid.
    port: u16,
    /// Extra arguments (`-I 1m`), repeated on restart.
    extra_args: Vec<String>,
}

impl MemcachedServer {
    pub fn start() -> MemcachedServer {
        Self::start_with(&["-I", "8m"])
    }

    /// A server with these arguments on top of the address and port, e.g.
    /// `["-I", "1m"]` for memcached's default item size limit.
    pub fn start_with(extra_args: &[&str]) -> MemcachedServer {
        let mut server = MemcachedServer {
            child: None,
            port: free_port(),
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// `memcached://127.0.0.1:{port}`, no options.
    pub fn url(&self) -> String {
        format!("memcached://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL, as a crash or OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL memcached");
            child.wait().expect("reap memcached");
        }
    }

    /// Starts the server again on the same port, with no data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Stops the server without closing its connections (SIGSTOP), as a
    /// stuck or swapping memcached would look.
    pub fn pause(&self) {
        crate::freeze(self.pid());
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        crate::thaw(self.pid());
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running memcached").id()
    }

    /// The value of `key`, read behind the handler's back.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut connection = self.connection();
        let header = connection.command(&format!("mg {key} v\r\n"));
        if header == "EN" {
            return None;
        }
        let size: usize = header
            .strip_prefix("VA ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|size| size.parse().ok())
            .unwrap_or_else(|| panic!("mg {key}: {header}"));
        let mut value = vec![0; size + 2];
        connection.reader.read_exact(&mut value).unwrap();
        value.truncate(size);
        Some(value)
    }

    /// How long `key` has left, as memcached counts it (`None`: missing;
    /// `Some(None)`: it never expires).
    pub fn ttl(&self, key: &str) -> Option<Option<Duration>> {
        let header = self.connection().command(&format!("mg {key} t\r\n"));
        if header == "EN" {
            return None;
        }
        let seconds: i64 = header
            .split(' ')
            .find_map(|flag| flag.strip_prefix('t'))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("mg {key} t: {header}"));
        Some(u64::try_from(seconds).ok().map(Duration::from_secs))
    }

    /// Stores `value` under `key` for `exptime` seconds, as another client would.
    pub fn set(&self, key: &str, value: &[u8], exptime: u64) {
        let mut connection = self.connection();
        let mut command = format!("ms {key} {} T{exptime}\r\n", value.len()).into_bytes();
        command.extend_from_slice(value);
        command.extend_from_slice(b"\r\n");
        connection.stream.write_all(&command).unwrap();
        assert_eq!(connection.line(), "HD", "ms {key}");
    }

    /// Every key on the server, sorted: `lru_crawler metadump hash`, a
    /// walk of the hash table. (`metadump all` walks the LRU lists instead
    /// and misses an item that is moving between them: a session read
    /// again a moment before, which once made a CI run see none.)
    pub fn keys(&self) -> Vec<String> {
        let mut connection = self.connection();
        let mut line = connection.command("lru_crawler metadump hash\r\n");
        // One walk runs at a time: the crawler may still be finishing the
        // previous one, or on its own rounds.
        for _ in 0..100 {
            if !line.starts_with("BUSY") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            line = connection.command("lru_crawler metadump hash\r\n");
        }
        let mut keys = Vec::new();
        while line != "END" {
            let key = line
                .strip_prefix("key=")
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_else(|| panic!("metadump: {line}"));
            keys.push(
                percent_encoding::percent_decode_str(key)
                    .decode_utf8()
                    .unwrap()
                    .into_owned(),
            );
            line = connection.line();
        }
        keys.sort();
        keys
    }

    fn connection(&self) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to memcached");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Connection {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn spawn(&mut self) {
        let program = require_program("memcached", "memcached");
        let mut command = Command::new(program);
        command
            .args(["-l", "127.0.0.1", "-p", &self.port.to_string(), "-U", "0"])
            .args(["-m", "64"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // memcached refuses to run as root unless told to.
            command.args(["-u", "root"]);
        }
        let mut child = command.spawn().expect("start memcached");
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let mut connection = Connection {
                    reader: BufReader::new(stream.try_clone().unwrap()),
                    stream,
                };
                if connection.command("mn\r\n") == "MN" {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("memcached exited with {status} before answering: {stderr}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "memcached did not answer on port {} within {START_WITHIN:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The harness's own connection: text lines in, text lines out.
struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn command(&mut self, line: &str) -> String {
        self.stream.write_all(line.as_bytes()).unwrap();
        self.line()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches(['\r', '\n']).to_string()
    }
}
