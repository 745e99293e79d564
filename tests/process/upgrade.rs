//! Graceful upgrade in place on SIGUSR2, through a real nginx under
//! traffic: nene checks the binary at its path, drains, and executes it in
//! its own process on the same socket, so no request is refused; a binary
//! whose check fails (here: a broken ini) leaves the old one serving.

use std::path::Path;
use std::time::{Duration, Instant};

use nene_test_support::{Nene, Nginx, REPO, nene_behind_nginx};

use crate::passed_socket::{assert_all_answered, traffic};

/// A copy of the repository's ini files, which a test may then break.
fn ini_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["system.ini", "site.ini"] {
        std::fs::copy(
            Path::new(REPO).join("ini").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    dir
}

/// nene reading its ini files from an [`ini_copy`], behind nginx.
fn nene_on_an_ini_copy() -> (tempfile::TempDir, Nene, Nginx) {
    let ini = ini_copy();
    let ini_dir = ini.path().display().to_string();
    let (nene, nginx) = nene_behind_nginx(&[("NENE_INI_DIR", &ini_dir)]);
    (ini, nene, nginx)
}

/// Until `nene`'s log holds `text` `times` times (at most 20 s).
async fn logged(nene: &Nene, text: &str, times: usize) {
    let until = Instant::now() + Duration::from_secs(20);
    while nene.log_text().matches(text).count() < times {
        assert!(
            Instant::now() < until,
            "never logged {text:?}:\n{}",
            nene.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Upgrades in a row under traffic.
const UPGRADES: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn upgrades_in_place_under_traffic_refuse_no_request_and_lose_no_increment() {
    let (_ini, nene, nginx) = nene_on_an_ini_copy();
    let pid = nene.pid();
    let requests = traffic(&nginx.url(""));
    for upgrade in 1..=UPGRADES {
        tokio::time::sleep(Duration::from_millis(100)).await;
        nene.signal(libc::SIGUSR2);
        // The same process, now the binary started again, on the socket it
        // had (the first time from a socket it bound, then from one it was
        // passed itself).
        logged(&nene, "passed in as fd 3", upgrade).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(nene.pid(), pid);
    assert_all_answered(requests.stop().await, &nene).await;
    // Each drain ended at once: nothing was in flight long.
    assert_eq!(
        nene.log_text().matches("all connections drained").count(),
        UPGRADES
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_binary_that_fails_its_check_leaves_the_old_one_serving() {
    let (ini, nene, nginx) = nene_on_an_ini_copy();
    // A deploy that broke the configuration.
    std::fs::write(ini.path().join("site.ini"), "[session\n").unwrap();
    nene.signal(libc::SIGUSR2);
    logged(&nene, "upgrade refused, still serving", 1).await;
    let log = nene.log_text();
    assert!(log.contains("`check` failed"), "{log}");
    assert!(
        log.contains("site.ini"),
        "the check's own words name the file: {log}"
    );
    assert_eq!(log.matches("listening on").count(), 1, "{log}");
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_on_a_unix_socket_keeps_the_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nene.sock");
    let nene = Nene::start_unix(&path, &[]);
    let nginx = Nginx::start(&nene.upstream, true);
    nene.signal(libc::SIGUSR2);
    logged(&nene, "passed in as fd 3", 1).await;
    // The old process's exit left the file for the new one.
    assert!(path.exists());
    let mut browser = nginx.browser();
    assert_eq!(
        browser.get("/health").await.status,
        200,
        "{}",
        nene.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_during_the_upgrade_check_stops_nene() {
    // A session backend that accepts and never answers: the new binary's
    // check waits for it, long enough to send SIGTERM meanwhile.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dsn = format!(
        "redis://{}?timeout=3s&connect_timeout=3s",
        silent.local_addr().unwrap()
    );
    let mut nene = Nene::start(&[("NENE_SESSION_DSN", &dsn)]);
    nene.signal(libc::SIGUSR2);
    logged(&nene, "before upgrading", 1).await;
    nene.signal(libc::SIGTERM);
    let status = nene.wait_exit(Duration::from_secs(2));
    assert!(
        status.is_some_and(|status| status.success()),
        "{}",
        nene.log_text()
    );
    assert!(!nene.log_text().contains("passed in as fd 3"));
}
