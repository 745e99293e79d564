//! Request bodies and params under load: a body over
//! `client_body_buffer_size` goes to an unnamed file in `upload_tmp_dir`
//! while it arrives and is gone when its request ends, however it ends; a
//! full temp directory is a 503 with a log line; params are counted and
//! their names checked; every byte held in memory comes from one budget.
//!
//! The spill files have no name (O_TMPFILE), so "a file in upload_tmp_dir"
//! is a descriptor of the server's pointing into it, read from
//! /proc/PID/fd.

use std::path::Path;
use std::time::{Duration, Instant};

use nene::fastcgi::ConnectionLimits;
use nene_test_support::Nene;
use nene_test_support::fcgi_client::{
    ABORT_REQUEST, END_REQUEST, FcgiClient, RESPONDER, Response, begin, head_from_pairs, record,
    request_params, stdin,
};
use nene_test_support::in_process::InProcess;

const THRESHOLD: usize = 64 * 1024;

/// Descriptors of process `pid` ("self" for this one) open on files in `dir`.
fn files_open_in(pid: &str, dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .count()
}

/// Waits up to 3 s for `pid` to have exactly `count` files open in `dir`
/// (letting the runtime run: the in-process server shares it).
async fn wait_for_open_files(pid: &str, dir: &Path, count: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let open = files_open_in(pid, dir);
        if open == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {open} files open in upload_tmp_dir, expected {count}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn server(dir: &Path, adjust: impl FnOnce(&mut ConnectionLimits)) -> InProcess {
    let mut limits = ConnectionLimits {
        client_body_buffer_size: THRESHOLD,
        upload_tmp_dir: dir.to_path_buf(),
        receive_timeout: Duration::from_secs(1),
        ..nene::config::Settings::defaults().server.limits
    };
    adjust(&mut limits);
    InProcess::start(limits).await
}

/// BEGIN_REQUEST and params of `POST uri`, with CONTENT_LENGTH when
/// `declared` is given, and no body yet.
fn post_head(id: u16, uri: &str, declared: Option<usize>) -> Vec<u8> {
    let mut pairs = request_params("POST", uri);
    if let Some(length) = declared {
        pairs.push((b"CONTENT_LENGTH".to_vec(), length.to_string().into_bytes()));
    }
    head_from_pairs(id, &pairs, true)
}

/// Sends the head of `POST /echo-body` as request `id` (with CONTENT_LENGTH
/// `declared`, if given) and `part`, the start of its body.
async fn send_head_and_first_part(
    client: &mut FcgiClient,
    id: u16,
    declared: Option<usize>,
    part: &[u8],
) {
    client.send(&post_head(id, "/echo-body", declared)).await;
    client.send(&body_part(id, part)).await;
}

/// A new connection to `server` that has sent `POST /echo-body` and the
/// first 100,000 bytes of `body`, once the spill file is open in `dir`
/// (`what` names the moment).
async fn connect_mid_body(server: &InProcess, dir: &Path, body: &[u8], what: &str) -> FcgiClient {
    let mut client = FcgiClient::connect(&server.addr).await;
    send_head_and_first_part(&mut client, 1, Some(body.len()), &body[..100_000]).await;
    wait_for_open_files("self", dir, 1, what).await;
    client
}

/// Asserts that 100 ms on, still no file is open in `dir` (`message` says
/// what spilled otherwise).
async fn assert_no_file_a_while_on(dir: &Path, message: &str) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(files_open_in("self", dir), 0, "{message}");
}

/// STDIN records carrying `body`, without the empty one that ends it.
fn body_part(id: u16, body: &[u8]) -> Vec<u8> {
    body.chunks(65535)
        .flat_map(|chunk| record(nene_test_support::fcgi_client::STDIN, id, chunk))
        .collect()
}

/// Bytes that differ along their length, so a reordered or dropped chunk
/// shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_body_over_the_threshold_is_in_a_file_while_it_arrives_and_gone_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), |_| {}).await;
    let mut client = FcgiClient::connect(&server.addr).await;

    // Declared within the threshold: held in memory, no file.
    let small = patterned(1000);
    send_head_and_first_part(&mut client, 1, Some(small.len()), &small[..500]).await;
    assert_no_file_a_while_on(dir.path(), "a small body spilled").await;
    client.send(&stdin(1, &small[500..])).await;
    let response = client.response(1).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), &small[..]);

    // Declared at exactly the threshold: still memory.
    let at_threshold = patterned(THRESHOLD);
    send_head_and_first_part(&mut client, 4, Some(THRESHOLD), &at_threshold[..500]).await;
    assert_no_file_a_while_on(dir.path(), "a body declared at the threshold spilled").await;
    client.send(&stdin(4, &at_threshold[500..])).await;
    let response = client.response(4).await;
    assert!(response.body() == &at_threshold[..]);

    // Declared over it: in a file from its first byte, read back intact.
    let large = patterned(200_000);
    send_head_and_first_part(&mut client, 2, Some(large.len()), &large[..1000]).await;
    wait_for_open_files("self", dir.path(), 1, "declared large body, first bytes").await;
    client.send(&stdin(2, &large[1000..])).await;
    let response = client.response(2).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.body() == &large[..],
        "the spilled body came back changed"
    );
    wait_for_open_files("self", dir.path(), 0, "declared large body, answered").await;

    // Not declared: in memory up to the threshold, in a file past it.
    send_head_and_first_part(&mut client, 3, None, &large[..THRESHOLD]).await;
    assert_no_file_a_while_on(dir.path(), "spilled at the threshold").await;
    client
        .send(&body_part(3, &large[THRESHOLD..THRESHOLD + 1]))
        .await;
    wait_for_open_files("self", dir.path(), 1, "undeclared body one byte over").await;
    client.send(&stdin(3, &large[THRESHOLD + 1..])).await;
    let response = client.response(3).await;
    assert!(
        response.body() == &large[..],
        "the undeclared body came back changed"
    );
    wait_for_open_files("self", dir.path(), 0, "undeclared body, answered").await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn aborted_abandoned_timed_out_and_panicking_requests_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), |_| {}).await;
    let body = patterned(300_000);

    // FCGI_ABORT_REQUEST mid-body: answered, its file closed.
    let mut client = connect_mid_body(&server, dir.path(), &body, "before the abort").await;
    client.send(&record(ABORT_REQUEST, 1, &[])).await;
    let end = client
        .read_record_within(Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!((end.kind, end.id), (END_REQUEST, 1));
    wait_for_open_files("self", dir.path(), 0, "after ABORT_REQUEST").await;

    // The client goes away mid-body.
    let client = connect_mid_body(&server, dir.path(), &body, "before the client left").await;
    drop(client);
    wait_for_open_files("self", dir.path(), 0, "after the client left").await;

    // The client stalls mid-body past receive_timeout (1 s here).
    let mut client = connect_mid_body(&server, dir.path(), &body, "before the timeout").await;
    assert!(client.is_closed_within(Duration::from_secs(3)).await);
    wait_for_open_files("self", dir.path(), 0, "after the timeout").await;

    // The handler panics without reading its spilled body.
    let mut client = FcgiClient::connect(&server.addr).await;
    client.send(&post_head(1, "/panic", Some(body.len()))).await;
    client.send(&stdin(1, &body)).await;
    assert_eq!(client.response(1).await.status(), 500);
    wait_for_open_files("self", dir.path(), 0, "after the panic").await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn too_many_params_are_431_and_an_empty_name_is_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), |limits| limits.max_params = 40).await;
    let send = |pairs: Vec<(Vec<u8>, Vec<u8>)>| {
        let addr = server.addr.clone();
        async move {
            let borrowed: Vec<(&[u8], &[u8])> = pairs
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            nene_test_support::fcgi_client::request_with_params(&addr, &borrowed)
                .await
                .status()
        }
    };
    let with_headers = |count: usize| {
        let mut pairs = request_params("GET", "/hello");
        for i in pairs.len()..count {
            pairs.push((format!("HTTP_X_{i}").into_bytes(), b"v".to_vec()));
        }
        pairs
    };
    assert_eq!(send(with_headers(40)).await, 200);
    assert_eq!(send(with_headers(41)).await, 431);
    let mut empty_name = request_params("GET", "/hello");
    empty_name.push((Vec::new(), b"value".to_vec()));
    assert_eq!(send(empty_name).await, 400);
}

#[tokio::test]
async fn a_request_the_budget_cannot_hold_is_503_and_the_budget_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    // Room for one request's 60 KiB of params, not two.
    let server = server(dir.path(), |limits| limits.max_buffered_bytes = 100_000).await;
    let padded = |id: u16| {
        let mut pairs = request_params("GET", "/hello");
        pairs.push((b"HTTP_X_PAD".to_vec(), vec![b'p'; 60_000]));
        head_from_pairs(id, &pairs, true)
    };
    let mut holder = FcgiClient::connect(&server.addr).await;
    holder.send(&padded(1)).await;
    // Its params are in; its body never ends: it holds 60 KB of budget.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = FcgiClient::connect(&server.addr).await;
    refused.send(&padded(1)).await;
    refused.send(&stdin(1, b"")).await;
    assert_eq!(refused.response(1).await.status(), 503);
    holder.send(&stdin(1, b"")).await;
    assert_eq!(holder.response(1).await.status(), 200);
    let mut after = FcgiClient::connect(&server.addr).await;
    after.send(&padded(1)).await;
    after.send(&stdin(1, b"")).await;
    assert_eq!(after.response(1).await.status(), 200);
}

/// A body declared larger than client_body_buffer_size goes to a file and
/// costs the budget nothing: it is accepted even when the budget could not
/// hold it in memory.
#[tokio::test]
async fn a_declared_body_that_spills_takes_no_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), |limits| limits.max_buffered_bytes = 150_000).await;
    let large = patterned(200_000);
    let mut client = FcgiClient::connect(&server.addr).await;
    client
        .send(&post_head(1, "/echo-body", Some(large.len())))
        .await;
    client.send(&stdin(1, &large)).await;
    let response = client.response(1).await;
    assert_eq!(response.status(), 200);
    assert!(response.body() == &large[..]);
}

/// nene (the example application, whose `POST /upload/raw` streams the body
/// and answers its length and SHA-1) with `upload_tmp_dir` at `dir` and
/// `env`, its command adjusted by `adjust`.
fn nene_with_tmp_dir(
    dir: &Path,
    env: &[(&str, &str)],
    adjust: impl FnOnce(&mut std::process::Command),
) -> Nene {
    let dir = dir.display().to_string();
    let mut env = env.to_vec();
    env.push(("NENE_SERVER__UPLOAD_TMP_DIR", &dir));
    env.push(("NENE_ACCESS__LOG", "off"));
    Nene::start_adjusted(&env, adjust)
}

/// A whole `POST /upload/raw` of `body` as records, for sending in parts.
fn raw_upload(id: u16, body: &[u8]) -> Vec<u8> {
    let mut out = post_head(id, "/upload/raw", Some(body.len()));
    out.extend(stdin(id, body));
    out
}

/// The process's peak resident memory (VmHWM) in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in /proc status")
}

/// A temporary directory on tmpfs when there is one: its pages are not in
/// any process's RSS, and a gigabyte written there costs no disk I/O.
fn memory_backed_tempdir() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// A full disk, without root or a mount: nene's writes past 1 MiB fail with
/// EFBIG (SIGXFSZ ignored, so the kernel reports the error instead of
/// stopping the process) — the same failed write ENOSPC is.
fn disk_full_past_1_mib(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls:
    // setrlimit(2) and signal(2).
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024 * 1024,
                rlim_max: 1024 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// Sends `request` (as request 1) on a new connection to `nene` and returns
/// its response.
async fn send_on_new_connection(nene: &Nene, request: &[u8]) -> Response {
    let mut client = FcgiClient::connect(&nene.addr).await;
    client.send(request).await;
    client.response(1).await
}

/// Asserts that `response` is a 503 and that nene logged `line`.
fn assert_503_and_logged(nene: &Nene, response: &Response, line: &str) {
    assert_eq!(response.status(), 503, "{}", response.body_text());
    nene.assert_logged(line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_temp_directory_is_503_with_a_log_line_and_never_reaches_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let nene = nene_with_tmp_dir(dir.path(), &[], disk_full_past_1_mib);
    let too_big = patterned(2 * 1024 * 1024);
    let response = send_on_new_connection(&nene, &raw_upload(1, &too_big)).await;
    assert_503_and_logged(&nene, &response, "cannot write its body to upload_tmp_dir");
    // What fits is still served, and intact.
    let fits = patterned(512 * 1024);
    let response = send_on_new_connection(&nene, &raw_upload(1, &fits)).await;
    assert_eq!(response.status(), 200);
    assert!(response.body_text().contains(&crate::sha1_hex(&fits)));
    wait_for_open_files(&nene.pid().to_string(), dir.path(), 0, "after both").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_file_the_disk_cannot_take_is_503_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The form stays in memory (under client_body_buffer_size): what fails
    // is writing the uploaded file itself.
    let nene = nene_with_tmp_dir(
        dir.path(),
        &[
            ("NENE_SERVER__CLIENT_BODY_BUFFER_SIZE", "2M"),
            ("NENE_SERVER__UPLOAD_MAX_FILESIZE", "4M"),
        ],
        disk_full_past_1_mib,
    );
    let boundary = "nene-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\r\n"
    )
    .into_bytes();
    form.extend(patterned(1536 * 1024));
    form.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let mut pairs = request_params("POST", "/upload");
    pairs.push((
        b"CONTENT_LENGTH".to_vec(),
        form.len().to_string().into_bytes(),
    ));
    pairs.push((
        b"CONTENT_TYPE".to_vec(),
        format!("multipart/form-data; boundary={boundary}").into_bytes(),
    ));
    let request = nene_test_support::fcgi_client::request_from_pairs(1, &pairs, &form, false);
    let response = send_on_new_connection(&nene, &request).await;
    assert_503_and_logged(
        &nene,
        &response,
        "upload refused: the upload could not be stored",
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a half-written upload was left"
    );
}

#[test]
fn an_unusable_upload_tmp_dir_stops_start_up_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let under_a_file = file.join("uploads").display().to_string();
    for command in [&["check"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let output =
            nene_test_support::run_nene(command, &[("NENE_SERVER__UPLOAD_TMP_DIR", &under_a_file)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.contains("server.upload_tmp_dir") && stderr.contains(&under_a_file),
            "{command:?}: {stderr}"
        );
    }
    // A missing directory is created, private to nene.
    let missing = dir.path().join("new/uploads");
    let output = nene_test_support::run_nene(
        &["check"],
        &[(
            "NENE_SERVER__UPLOAD_TMP_DIR",
            &missing.display().to_string(),
        )],
    );
    assert_eq!(output.status.code(), Some(0));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&missing).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_bodies_at_once_stay_out_of_memory() {
    const CLIENTS: usize = 150;
    const BODY: usize = 8 * 1024 * 1024;
    nene_test_support::raise_open_file_limit(CLIENTS * 2);
    let dir = memory_backed_tempdir();
    let nene = nene_with_tmp_dir(dir.path(), &[], |_| {});
    let body = patterned(BODY);
    let expected = crate::sha1_hex(&body);
    let request = std::sync::Arc::new(raw_upload(1, &body));
    // Every client sends its head and the first 1 MiB, waits until all have,
    // then sends the rest: every body is in flight at once.
    let all_started = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let request = request.clone();
        let all_started = all_started.clone();
        let addr = nene.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = FcgiClient::connect(&addr).await;
            let split = 1024 * 1024;
            client.send(&request[..split]).await;
            all_started.wait().await;
            client.send(&request[split..]).await;
            client.response(1).await
        }));
    }
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.body_text());
        assert!(response.body_text().contains(&expected));
    }
    let peak_mib = peak_rss_kib(nene.pid()) / 1024;
    eprintln!("150 concurrent 8 MiB bodies: nene's peak RSS {peak_mib} MiB");
    assert!(peak_mib < 100, "nene's peak RSS was {peak_mib} MiB");
    wait_for_open_files(&nene.pid().to_string(), dir.path(), 0, "after all").await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multiplexing_peer_holding_requests_open_gains_little_memory() {
    let dir = memory_backed_tempdir();
    // As many requests on one connection as the worst case: an
    // operator may raise the default.
    let nene = nene_with_tmp_dir(
        dir.path(),
        &[("NENE_SERVER__MAX_REQUESTS_PER_CONNECTION", "64")],
        |_| {},
    );
    let pid = nene.pid();
    // A first request, so that the runtime's threads and buffers exist.
    let warm = nene_test_support::fcgi_client::get(&nene.addr, "/health").await;
    assert_eq!(warm.status(), 200);
    let before = nene_test_support::rss_kib(pid);

    // Sixteen 8 MiB bodies, each short of its final empty STDIN record.
    let body = patterned(8 * 1024 * 1024);
    let mut bodies = FcgiClient::connect(&nene.addr).await;
    for id in 1..=16u16 {
        bodies
            .send(&post_head(id, "/upload/raw", Some(body.len())))
            .await;
        bodies.send(&body_part(id, &body)).await;
    }
    // Sixty-four requests of 64 KiB of empty-name pairs, params unfinished.
    let empty_pairs = vec![0u8; 64 * 1024];
    let mut pairs = FcgiClient::connect(&nene.addr).await;
    for id in 1..=64u16 {
        let mut bytes = begin(id, RESPONDER, true);
        for chunk in empty_pairs.chunks(32 * 1024) {
            bytes.extend(record(nene_test_support::fcgi_client::PARAMS, id, chunk));
        }
        pairs.send(&bytes).await;
    }
    // Still served, with all of that held open.
    assert_eq!(
        nene_test_support::fcgi_client::get(&nene.addr, "/health")
            .await
            .status(),
        200
    );
    wait_for_open_files(&pid.to_string(), dir.path(), 16, "16 bodies held").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grown_mib = nene_test_support::rss_kib(pid).saturating_sub(before) / 1024;
    eprintln!("16 held 8 MiB bodies + 64 held 64 KiB params: RSS grew {grown_mib} MiB");
    assert!(grown_mib < 20, "nene's RSS grew by {grown_mib} MiB");
    drop((bodies, pairs));
    wait_for_open_files(&pid.to_string(), dir.path(), 0, "after both left").await;
}
