//! A listening socket passed in (systemd's socket activation, systemfd):
//! nene serves on it instead of `server.listen`, and because the socket
//! outlives nene, a restart refuses nothing: requests that arrive while no
//! nene runs wait in its queue for the next one. Through a real nginx, and
//! with systemd's own `systemd-socket-activate`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nene_test_support::browser::Browser;
use nene_test_support::{Nene, Nginx, REPO, free_port, require_program};

/// How many visitors count at once in [`traffic`].
const VISITORS: usize = 4;

/// What one visitor of [`traffic`] saw: its statuses and the last count
/// answered with a 200.
pub(crate) struct Visit {
    browser: Browser,
    statuses: Vec<u16>,
    acknowledged: u64,
}

/// Requests going on until [`Traffic::stop`].
pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    visitors: Vec<tokio::task::JoinHandle<Visit>>,
}

impl Traffic {
    /// What each visitor saw, once the requests in flight are answered.
    pub(crate) async fn stop(self) -> Vec<Visit> {
        self.stop.store(true, Ordering::Relaxed);
        let mut visits = Vec::new();
        for visitor in self.visitors {
            visits.push(visitor.await.unwrap());
        }
        visits
    }
}

/// [`VISITORS`] visitors, each with a session of its own, counting on
/// /session/counter through nginx at `url`, one request at a time each.
pub(crate) fn traffic(url: &str) -> Traffic {
    traffic_of(url, Browser::new)
}

/// [`traffic`] with browsers made by `browser` from `url`.
fn traffic_of(url: &str, browser: fn(&str) -> Browser) -> Traffic {
    let url = url.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let visitors = (0..VISITORS)
        .map(|_| {
            let mut browser = browser(&url);
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut statuses, mut acknowledged) = (Vec::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    let page = browser.get("/session/counter").await;
                    if page.status == 200 {
                        acknowledged = page.json()["count"].as_u64().expect("a count");
                    }
                    statuses.push(page.status);
                }
                Visit {
                    browser,
                    statuses,
                    acknowledged,
                }
            })
        })
        .collect();
    Traffic { stop, visitors }
}

/// Every request of [`traffic`] answered 200, enough of them to span the
/// restarts, and every acknowledged increment stored: each visitor's next
/// count follows its last answered one.
pub(crate) async fn assert_all_answered(visits: Vec<Visit>, nene: &Nene) {
    for mut visit in visits {
        let refused: Vec<&u16> = visit
            .statuses
            .iter()
            .filter(|status| **status != 200)
            .collect();
        assert!(
            refused.is_empty() && visit.statuses.len() > 20,
            "{} requests, not answered 200: {refused:?}\n{}",
            visit.statuses.len(),
            nene.log_text()
        );
        let next = visit.browser.get("/session/counter").await;
        assert_eq!(
            next.json()["count"].as_u64(),
            Some(visit.acknowledged + 1),
            "an acknowledged increment was lost\n{}",
            nene.log_text()
        );
    }
}

/// Restarts of nene on one passed socket under traffic ([`traffic`]).
const RESTARTS: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn restarts_on_a_passed_socket_refuse_no_request_and_lose_no_increment() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = socket.local_addr().unwrap().to_string();
    let unused = format!("127.0.0.1:{}", free_port());
    let serve = ["serve", "--listen", &unused];
    // Sessions outlive each nene: one save path for all of them.
    let sessions = tempfile::tempdir().unwrap();
    let save_path = sessions.path().join("sessions").display().to_string();
    let env = [("NENE_SESSION__SAVE_PATH", save_path.as_str())];
    let mut nene = Nene::start_on_passed_socket(&socket, &upstream, &serve, &env);
    nene.assert_logged("(passed in as fd 3; server.listen is not used)");
    // The address --listen named is not listened on.
    assert!(std::net::TcpStream::connect(&unused).is_err());
    let nginx = Nginx::start(&upstream, true);

    // Requests all along, while each nene stops and the next starts.
    let requests = traffic(&nginx.url(""));
    for _ in 0..RESTARTS {
        tokio::time::sleep(Duration::from_millis(100)).await;
        nene.signal(libc::SIGTERM);
        assert!(
            nene.wait_exit(Duration::from_secs(10)).is_some(),
            "nene stops"
        );
        // A moment with no nene at all: nginx's connections queue on the socket.
        tokio::time::sleep(Duration::from_millis(50)).await;
        nene = Nene::start_on_passed_socket(&socket, &upstream, &serve, &env);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_all_answered(requests.stop().await, &nene).await;
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
    // Not before it listens (nginx would find the port closed: a 502).
    nene_test_support::wait_for_log(&log, "Listening on");
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
async fn nene_dev_restarted_on_a_passed_socket_refuses_no_request() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let unused = format!("127.0.0.1:{}", free_port());
    let dev = ["dev", "--http", &unused];
    let sessions = tempfile::tempdir().unwrap();
    let save_path = sessions.path().join("sessions").display().to_string();
    let env = [("NENE_SESSION__SAVE_PATH", save_path.as_str())];
    let mut nene = Nene::start_on_passed_socket(&socket, &addr, &dev, &env);
    assert!(std::net::TcpStream::connect(&unused).is_err());
    // As `systemfd … cargo watch -x "run -- dev"` restarts it on each save.
    // A connection each (Browser::without_keep_alive says why): what is
    // tested is that none is refused.
    let requests = traffic_of(&format!("http://{addr}"), Browser::without_keep_alive);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        nene.signal(libc::SIGTERM);
        assert!(
            nene.wait_exit(Duration::from_secs(10)).is_some(),
            "nene dev stops"
        );
        nene = Nene::start_on_passed_socket(&socket, &addr, &dev, &env);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_all_answered(requests.stop().await, &nene).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_replaced_one_at_a_time_behind_nginx_refuse_no_request() {
    // compose.yaml's recipe for image deploys, without Docker: two nene
    // behind one nginx upstream, replaced one after the other; nginx sends
    // a request the other instance's way when one refuses
    // (`fastcgi_next_upstream error timeout`, its default).
    let sessions = tempfile::tempdir().unwrap();
    let save_path = sessions.path().join("sessions").display().to_string();
    let addrs = [0, 1].map(|_| format!("127.0.0.1:{}", free_port()));
    let start = |addr: &str| {
        Nene::start_from_env(&[
            ("NENE_LISTEN", addr),
            ("NENE_SESSION__SAVE_PATH", save_path.as_str()),
        ])
    };
    let mut instances = addrs.clone().map(|addr| start(&addr));
    // With its defaults nginx takes a server that refused out of the
    // rotation for fail_timeout (10 s), and once both were, answers 502 "no
    // live upstreams" (measured: 2,253 of 2,391 requests). `max_fails=0`:
    // a refused request goes to the other server at once, every time.
    let servers = addrs.clone().map(|addr| format!("{addr} max_fails=0"));
    let nginx = Nginx::start_balancing(servers.iter().map(String::as_str).collect());
    let requests = traffic(&nginx.url(""));
    for round in 0..4 {
        let at = round % 2;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        instances[at].signal(libc::SIGTERM);
        assert!(instances[at].wait_exit(Duration::from_secs(10)).is_some());
        // A moment with one instance only, as while a container starts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        instances[at] = start(&addrs[at]);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_all_answered(requests.stop().await, &instances[0]).await;
}
