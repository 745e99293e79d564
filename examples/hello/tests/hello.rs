//! The hello example as its README section runs it: `cargo run -- dev` from
//! examples/hello, then two visits with the cookie sent back.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example's binary serving HTTP on a free loopback port; killed on drop.
struct Hello {
    child: Child,
    addr: String,
    _sessions: tempfile::TempDir,
}

impl Hello {
    fn start() -> Hello {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let sessions = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hello"))
            .args(["dev", "--http", &addr])
            .env("NENE_SESSION__SAVE_PATH", sessions.path().join("sessions"))
            .env_remove("NENE_SESSION_DSN")
            .env_remove("NENE_SITE__TITLE")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the hello example");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "hello did not listen on {addr}");
            assert!(child.try_wait().unwrap().is_none(), "hello exited");
            std::thread::sleep(Duration::from_millis(20));
        }
        Hello {
            child,
            addr,
            _sessions: sessions,
        }
    }

    /// GET `path` with `cookie`; the answer's head and body.
    fn get(&self, path: &str, cookie: &str) -> (String, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn greets_with_the_site_title_and_counts_visits_in_the_session() {
    let hello = Hello::start();
    let (head, body) = hello.get("/hello", "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "Hello from Hello on nene! Visit number 1.\n");
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (_, again) = hello.get("/hello", &cookie);
    assert_eq!(again, "Hello from Hello on nene! Visit number 2.\n");
    let (_, stranger) = hello.get("/hello", "");
    assert_eq!(stranger, "Hello from Hello on nene! Visit number 1.\n");
    let (missing, _) = hello.get("/goodbye", "");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}
