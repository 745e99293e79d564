//! Starting nene on a Unix socket path where something already is, as an
//! operator on a shared host meets it: another user's socket (live, stale, or
//! one nene may not even connect to) is never removed; a stale socket of our
//! own is replaced; a symlink is refused and what it points to left alone; and
//! the new socket is never more open than `server.socket_mode`, even under a
//! umask of 0.
//!
//! The tests that need another user's socket create it as root (as CI runs
//! them) and give it to `nobody`; run as anyone else they say so and pass.

use std::fs::Permissions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nene_test_support::Nene;

/// The uid and gid of `nobody`, the "other user" of these tests.
const NOBODY: u32 = 65534;

/// Whether this test runs as root, which it needs to create a file owned by
/// another user; otherwise it says it is skipped.
fn as_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped, it needs root to create another user's socket");
    }
    root
}

fn chown(path: &Path, uid: u32, gid: u32) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: chown(2) with a NUL-terminated path.
    let rc = unsafe { libc::chown(c_path.as_ptr(), uid, gid) };
    assert_eq!(
        rc,
        0,
        "chown {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// `program` (the nene binary) as `nene serve --listen unix:socket`, run
/// from `cwd` with only the environment a test gives, sessions and htdocs
/// beside the socket.
fn nene_serve(program: &Path, socket: &Path, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    nene_test_support::without_callers_nene_env(&mut command);
    let dir = socket.parent().unwrap();
    command
        .arg("serve")
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .arg("--htdocs")
        .arg(dir)
        .env("NENE_SESSION__SAVE_PATH", dir.join("sessions"))
        .current_dir(cwd);
    command
}

/// `command`, expected to stop by itself; fails the test if nene is still
/// running after 10 s, i.e. it took the path and serves.
fn expect_exit(mut command: Command) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start nene");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "nene took the socket path and kept serving instead of refusing it: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// nene, as this user, started on `socket` and expected to refuse it.
fn serve_expecting_exit(socket: &Path) -> Output {
    let command = nene_serve(
        Path::new(env!("CARGO_BIN_EXE_nene")),
        socket,
        Path::new(nene_test_support::REPO),
    );
    expect_exit(command)
}

/// Asserts nene refused `socket` with exit status 1 and a message naming the
/// path and containing `why`.
fn assert_refused(output: &Output, socket: &Path, why: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("unix:{}", socket.display())),
        "the message names the path: {stderr}"
    );
    assert!(stderr.contains(why), "the message says {why:?}: {stderr}");
}

/// Asserts `listener`'s socket file is still at `socket`, owned by `owner`,
/// and still takes connections.
fn assert_still_serving(listener: &UnixListener, socket: &Path, owner: u32) {
    let meta = std::fs::symlink_metadata(socket).expect("the socket file is still there");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.uid(), owner);
    let _client = UnixStream::connect(socket).expect("the socket still takes connections");
    listener.set_nonblocking(false).unwrap();
    listener
        .accept()
        .expect("its own server accepts the connection");
}

#[test]
fn another_users_live_socket_survives_a_second_nene() {
    if !as_root("another_users_live_socket_survives_a_second_nene") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("theirs.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, Permissions::from_mode(0o600)).unwrap();
    chown(&socket, NOBODY, NOBODY);

    let output = serve_expecting_exit(&socket);

    assert_refused(&output, &socket, "another process is serving");
    assert_still_serving(&listener, &socket, NOBODY);
}

/// The reported attack: nene runs as an unprivileged user in a directory it
/// may write to, where another user serves on a 0600 socket. nene cannot
/// connect (permission denied), which does not make the socket stale.
#[test]
fn an_unprivileged_nene_leaves_a_socket_it_may_not_connect_to() {
    if !as_root("an_unprivileged_nene_leaves_a_socket_it_may_not_connect_to") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), Permissions::from_mode(0o777)).unwrap();
    let socket = dir.path().join("root.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, Permissions::from_mode(0o600)).unwrap();
    // nobody may not be able to reach the build directory; a link to the
    // binary in the shared directory it can.
    let nene = dir.path().join("nene");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_nene"), &nene).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_nene"), &nene).unwrap();
    }

    let mut command = nene_serve(&nene, &socket, dir.path());
    command.uid(NOBODY).gid(NOBODY);
    let output = expect_exit(command);

    assert_refused(&output, &socket, "belongs to another user");
    assert_still_serving(&listener, &socket, 0);
}

#[test]
fn another_users_stale_socket_is_not_ours_to_replace() {
    if !as_root("another_users_stale_socket_is_not_ours_to_replace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("theirs.sock");
    drop(UnixListener::bind(&socket).unwrap());
    chown(&socket, NOBODY, NOBODY);
    let before = std::fs::symlink_metadata(&socket).unwrap();

    let output = serve_expecting_exit(&socket);

    assert_refused(&output, &socket, "belongs to another user (uid 65534)");
    let after = std::fs::symlink_metadata(&socket).expect("their socket file is still there");
    assert_eq!(after.ino(), before.ino(), "it is the same file");
    assert_eq!(after.uid(), NOBODY);
}

#[test]
fn a_stale_socket_of_our_own_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nene.sock");
    // As a crashed nene leaves it: the file, nobody listening.
    drop(UnixListener::bind(&socket).unwrap());

    let nene = Nene::start_unix(&socket, &[]);

    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    UnixStream::connect(&socket).expect("nene serves on it");
    nene.assert_logged("replacing stale socket file");
}

/// At exit nene removes its socket file — but not whatever took the path
/// since (another server restarted on it, an operator's file).
#[test]
fn at_exit_a_path_that_is_no_longer_our_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nene.sock");
    let mut nene = Nene::start_unix(&socket, &[]);
    std::fs::rename(&socket, dir.path().join("moved.sock")).unwrap();
    std::fs::write(&socket, "someone else's").unwrap();
    nene.signal(libc::SIGTERM);
    assert!(
        nene.wait_exit(Duration::from_secs(10)).is_some(),
        "nene exits"
    );
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "someone else's");

    let mut again = Nene::start_unix(&socket.with_file_name("own.sock"), &[]);
    again.signal(libc::SIGTERM);
    assert!(again.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        !socket.with_file_name("own.sock").exists(),
        "its own socket is removed at exit"
    );
}

/// Under a umask of 0 a socket file is created 0777; nene's must still never
/// be more open than its `server.socket_mode`, not even for an instant. The
/// instant is short, so nene is started several times and the path watched
/// in a tight loop each time.
#[test]
fn the_socket_is_never_more_open_than_its_mode_even_with_umask_0() {
    for _ in 0..50 {
        let (modes_seen, mode_when_serving) = start_under_umask_0_with_mode_0660();
        for mode in &modes_seen {
            assert_eq!(
                mode & !0o660,
                0,
                "the socket was seen with mode {mode:o}, more open than 0660 (all seen: {})",
                octal(&modes_seen)
            );
        }
        assert_eq!(
            mode_when_serving, 0o660,
            "by the time it takes connections its mode is set"
        );
    }
}

/// Starts nene on a new socket under umask 0 with `server.socket_mode` 0660;
/// returns every mode the socket file was seen with until nene served on it,
/// and its mode then.
fn start_under_umask_0_with_mode_0660() -> (Vec<u32>, u32) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nene.sock");
    let log = dir.path().join("nene.log");
    let mut command = nene_serve(
        Path::new(env!("CARGO_BIN_EXE_nene")),
        &socket,
        Path::new(nene_test_support::REPO),
    );
    command
        .env("NENE_SERVER__SOCKET_MODE", "0660")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: umask(2) is async-signal-safe and cannot fail.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let mut child = KillOnDrop(command.spawn().expect("start nene"));

    let mut modes_seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for polls in 0u64.. {
        if let Ok(meta) = std::fs::symlink_metadata(&socket) {
            let mode = meta.mode() & 0o7777;
            if modes_seen.last() != Some(&mode) {
                modes_seen.push(mode);
            }
            // Connecting is slow next to lstat; trying it only now and then
            // keeps the watch tight.
            if polls % 64 == 0 && UnixStream::connect(&socket).is_ok() {
                let mode = std::fs::symlink_metadata(&socket).unwrap().mode() & 0o7777;
                return (modes_seen, mode);
            }
        }
        if polls % 64 == 0 {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!(
                    "nene exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nene did not listen within 10 s");
        }
    }
    unreachable!()
}

fn octal(modes: &[u32]) -> String {
    let modes: Vec<String> = modes.iter().map(|mode| format!("{mode:o}")).collect();
    modes.join(", ")
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_symlink_at_the_socket_path_is_refused_and_its_target_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("precious.txt");
    std::fs::write(&target, "data").unwrap();
    std::fs::set_permissions(&target, Permissions::from_mode(0o600)).unwrap();
    let socket = dir.path().join("nene.sock");
    std::os::unix::fs::symlink(&target, &socket).unwrap();

    let output = serve_expecting_exit(&socket);

    assert_refused(&output, &socket, "is not a socket");
    assert_eq!(
        std::fs::metadata(&target).unwrap().mode() & 0o7777,
        0o600,
        "the target's mode is unchanged"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "data");
    assert_eq!(
        std::fs::read_link(&socket).unwrap(),
        target,
        "the link is left"
    );
}

#[test]
fn a_symlink_to_a_stale_socket_elsewhere_is_refused_and_that_socket_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target: PathBuf = elsewhere.path().join("other.sock");
    drop(UnixListener::bind(&target).unwrap());
    std::fs::set_permissions(&target, Permissions::from_mode(0o600)).unwrap();
    let socket = dir.path().join("nene.sock");
    std::os::unix::fs::symlink(&target, &socket).unwrap();

    let mut command = nene_serve(
        Path::new(env!("CARGO_BIN_EXE_nene")),
        &socket,
        Path::new(nene_test_support::REPO),
    );
    command.env("NENE_SERVER__SOCKET_MODE", "0666");
    let output = expect_exit(command);

    assert_refused(&output, &socket, "is not a socket");
    let meta = std::fs::symlink_metadata(&target).expect("the other socket is still there");
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.mode() & 0o7777,
        0o600,
        "the other socket's mode is unchanged"
    );
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
