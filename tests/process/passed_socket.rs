//! A listening socket passed in (systemd's socket activation, systemfd):
//! nene serves on it instead of `server.listen`, and because the socket
//! outlives nene, a restart refuses nothing: requests that arrive while no
//! nene runs wait in its queue for the next one. Through a real nginx, and
//! with systemd's own `systemd-socket-activate`.

use std::time::{Duration, Instant};

use nene_test_support::browser::Browser;
use nene_test_support::{Nene, Nginx, REPO, free_port, require_program};

/// GET /health through `nginx` until `until`, one request at a time; the
/// statuses.
pub(crate) fn traffic(nginx: &Nginx, until: Instant) -> tokio::task::JoinHandle<Vec<u16>> {
    let url = nginx.url("");
    tokio::spawn(async move {
        let mut browser = Browser::new(&url);
        let mut statuses = Vec::new();
        while Instant::now() < until {
            statuses.push(browser.get("/health").await.status);
        }
        statuses
    })
}

/// Every request of [`traffic`] answered 200, and enough of them to have
/// spanned the restart.
pub(crate) fn assert_all_answered(statuses: Vec<u16>, nene: &Nene) {
    let refused: Vec<&u16> = statuses.iter().filter(|status| **status != 200).collect();
    assert!(
        refused.is_empty() && statuses.len() > 100,
        "{} requests, not answered 200: {refused:?}\n{}",
        statuses.len(),
        nene.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_on_a_passed_socket_refuses_no_request() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = socket.local_addr().unwrap().to_string();
    let unused = format!("127.0.0.1:{}", free_port());
    let serve = ["serve", "--listen", &unused];
    let mut first = Nene::start_on_passed_socket(&socket, &upstream, &serve, &[]);
    let log = first.log_text();
    assert!(
        log.contains("(passed in as fd 3; server.listen is not used)"),
        "{log}"
    );
    // The address --listen named is not listened on.
    assert!(std::net::TcpStream::connect(&unused).is_err());
    let nginx = Nginx::start(&upstream, true);

    // Requests all along, while one nene stops and the next starts.
    let requests = traffic(&nginx, Instant::now() + Duration::from_secs(4));
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.signal(libc::SIGTERM);
    assert!(
        first.wait_exit(Duration::from_secs(10)).is_some(),
        "the first nene stops"
    );
    // A moment with no nene at all: nginx's connections queue on the socket.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = Nene::start_on_passed_socket(&socket, &upstream, &serve, &[]);
    assert_all_answered(requests.await.unwrap(), &second);
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_socket_activation_hands_nene_its_socket() {
    let activate = require_program("systemd-socket-activate", "systemd");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nene.log");
    let nene = nene_test_support::nene_binary();
    let mut child = std::process::Command::new(activate)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--fdname=nene")
        .arg("--setenv=RUST_LOG=info")
        .arg(&nene)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .current_dir(REPO)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start systemd-socket-activate");
    // systemd-socket-activate starts nene on the first connection.
    let nginx = Nginx::start(&format!("127.0.0.1:{port}"), true);
    let mut browser = Browser::new(&nginx.url(""));
    let page = browser.get("/health").await;
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(page.status, 200, "{log}");
    assert!(log.contains("passed in as fd 3"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nene_dev_serves_http_on_a_passed_socket_across_a_restart() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let unused = format!("127.0.0.1:{}", free_port());
    let dev = ["dev", "--http", &unused];
    for _restart in 0..2 {
        let mut nene = Nene::start_on_passed_socket(&socket, &addr, &dev, &[]);
        let page = Browser::new(&format!("http://{addr}")).get("/health").await;
        assert_eq!(page.status, 200, "{}", nene.log_text());
        assert!(std::net::TcpStream::connect(&unused).is_err());
        nene.signal(libc::SIGTERM);
        assert!(nene.wait_exit(Duration::from_secs(10)).is_some());
    }
}

#[test]
fn a_passed_socket_that_is_not_listening_stops_start_up_naming_it() {
    use std::os::fd::AsRawFd;
    let (connected, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut command = std::process::Command::new(nene_test_support::nene_binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .current_dir(REPO)
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_PID");
    nene_test_support::pass_as_fd3(&mut command, connected.as_raw_fd());
    let output = command.output().expect("run nene");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "cannot use the socket passed in LISTEN_FDS: fd 3 is a socket that is not listening"
        ),
        "{stderr}"
    );
}
