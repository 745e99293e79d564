//! nene as an operator runs it: start-up errors, Unix sockets (mode, stale
//! file, removal), logs, and SIGTERM with requests in flight.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use nene_test_support::fcgi_client::*;
use nene_test_support::{Nene, Nginx};

/// Returns once nene has read everything sent so far on `client`: records
/// are handled in order, so the answer to a GET_VALUES sent now comes after
/// the earlier records were taken in.
async fn wait_until_read(client: &mut FcgiClient) {
    client.send(&record(GET_VALUES, 0, &[])).await;
    let answer = client
        .read_record_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.kind, GET_VALUES_RESULT);
}

#[test]
fn an_address_in_use_stops_start_up_with_a_message_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = nene_test_support::run_nene(&["serve", "--listen", &addr], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn a_malformed_listen_address_is_refused_naming_the_variable_and_what_is_accepted() {
    let output = nene_test_support::run_nene(&[], &[("NENE_LISTEN", "localhost")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("env NENE_LISTEN"), "{stderr}");
    assert!(stderr.contains("unix:/path/to.sock"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn start_up_logs_where_it_listens_and_each_request() {
    let nene = Nene::start(&[]);
    let response = get(&nene.addr, "/health").await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = nene.log_text();
    assert!(
        log.contains(&format!("listening on {}", nene.addr)),
        "{log}"
    );
    assert!(log.contains("\"GET /health\" 200"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_record_is_logged_as_a_warning_and_others_are_served() {
    let nene = Nene::start(&[]);
    let mut client = FcgiClient::connect(&nene.addr).await;
    client.send(&[9, 1, 0, 1, 0, 8, 0, 0]).await;
    assert!(client.is_closed_within(Duration::from_secs(5)).await);
    assert_eq!(get(&nene.addr, "/health").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    nene.assert_logged("WARN");
    nene.assert_logged("unsupported FastCGI version 9");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_unix_socket_gets_its_mode_replaces_a_stale_file_and_is_removed_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nene.sock");
    // A stale socket file, as a crashed process leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let mut nene = Nene::start_unix(&socket, &[("NENE_SERVER__SOCKET_MODE", "0600")]);
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // A second nene on the same path refuses to steal the live socket.
    let output = nene_test_support::run_nene(
        &["serve", "--listen", &format!("unix:{}", socket.display())],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("another process is serving"));

    let nginx = Nginx::start(&nene.upstream, true);
    let response = nginx.get("/health").await;
    assert_eq!(response.status(), 200);

    nene.signal(libc::SIGTERM);
    let status = nene.wait_exit(Duration::from_secs(10)).expect("nene exits");
    assert!(status.success());
    assert!(!socket.exists(), "the socket file is removed on exit");
}

/// nginx opens upstream connections in bursts when its kept ones are busy.
/// With nene at its connection cap, a burst of 600 must wait in the listen
/// queue (server.listen_backlog), not be dropped: a dropped SYN costs the
/// client a one-second retry, a refused Unix connect an error.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_connections_at_the_cap_waits_in_a_listen_queue_of_listen_backlog() {
    let env = [
        ("NENE_SERVER__MAX_CONNECTIONS", "1"),
        ("NENE_SERVER__LISTEN_BACKLOG", "1000"),
    ];
    let within = Duration::from_millis(500);

    let nene = Nene::start(&env);
    let _held = tokio::net::TcpStream::connect(&nene.addr).await.unwrap();
    let mut queued = Vec::new();
    for n in 0..600 {
        let connected = tokio::time::timeout(within, tokio::net::TcpStream::connect(&nene.addr));
        match connected.await {
            Ok(Ok(stream)) => queued.push(stream),
            other => panic!("TCP connection {n} of the burst was not queued: {other:?}"),
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nene.sock");
    let _nene = Nene::start_unix(&socket, &env);
    let _held = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let mut queued_unix = Vec::new();
    for n in 0..600 {
        let connected = tokio::time::timeout(within, tokio::net::UnixStream::connect(&socket));
        match connected.await {
            Ok(Ok(stream)) => queued_unix.push(stream),
            other => panic!("Unix connection {n} of the burst was not queued: {other:?}"),
        }
    }
}

#[test]
fn a_regular_file_at_the_socket_path_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, "data").unwrap();
    let output = nene_test_support::run_nene(
        &["serve", "--listen", &format!("unix:{}", path.display())],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a socket"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_request_in_flight_finish_refuses_new_connections_and_exits_0() {
    let mut nene = Nene::start(&[("NENE_SERVER__DRAIN_TIMEOUT", "5s")]);
    // A request in flight: begun, params sent, body still to come.
    let mut client = FcgiClient::connect(&nene.addr).await;
    client.send(&begin(1, RESPONDER, true)).await;
    let pairs = request_params("POST", "/health");
    let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    client.send(&params(1, &pairs)).await;
    wait_until_read(&mut client).await;

    nene.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(&nene.addr).await.is_err(),
        "new connections are refused while draining"
    );
    assert!(
        nene.wait_exit(Duration::from_millis(10)).is_none(),
        "exited before the request finished"
    );

    client.send(&stdin(1, b"body")).await;
    let response = client.response(1).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body_text(), r#"{"status":"ok"}"#);
    let status = nene
        .wait_exit(Duration::from_secs(5))
        .expect("nene exits after draining");
    assert!(status.success(), "{status}");
    nene.assert_logged("SIGTERM received");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_that_runs_out_of_time_still_exits_0() {
    let mut nene = Nene::start(&[("NENE_SERVER__DRAIN_TIMEOUT", "300ms")]);
    let mut client = FcgiClient::connect(&nene.addr).await;
    client.send(&begin(1, RESPONDER, true)).await;
    wait_until_read(&mut client).await;
    nene.signal(libc::SIGINT);
    let status = nene.wait_exit(Duration::from_secs(5)).expect("nene exits");
    assert!(status.success());
    nene.assert_logged("drain time");
    drop(client);
}
