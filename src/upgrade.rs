//! Graceful upgrade in place, on SIGUSR2 (PHP-FPM's and nginx's signal for
//! it): nene first runs the binary now at its own path with `check` (the
//! configuration parses, the session backend answers); if that fails, it
//! logs why and keeps serving. If it passes, nene drains as on SIGTERM and
//! then executes that binary in its own process, handing it the listening
//! socket as systemd would (`LISTEN_FDS`, fd 3; server/inherited.rs).
//! Connections that arrive meanwhile wait in the socket's queue: none is
//! refused (docs/decisions/0025).
//!
//! In place (the same process id) rather than a child that outlives its
//! parent, so that it works unchanged under systemd (the main process
//! stays), from a shell, and as a container's PID 1 or under `tini` (whose
//! child must not exit).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::server::Listener;

/// How long the new binary's `check` may take: it connects to the session
/// backend, whose own `connect_timeout` and `timeout` bound it well below.
const CHECK_WITHIN: Duration = Duration::from_secs(30);

/// The lowest descriptor the kept copy of the socket takes: above fd 3,
/// where the new binary is to find it.
const KEPT_FD_FROM: libc::c_int = 10;

/// What an upgrade needs, taken at start-up.
pub(crate) struct Upgrade {
    /// The binary's path when nene started: after a deploy, the new binary.
    exe: PathBuf,
    /// The command line nene was started with, passed on unchanged.
    args: Vec<OsString>,
    /// `--ini-dir`, for the new binary's `check`.
    ini_dir: PathBuf,
    /// A copy of the listening socket, open across the drain (which closes
    /// the listener itself) and closed on exec unless passed on.
    socket: OwnedFd,
}

impl Upgrade {
    /// Ready to upgrade `listener`'s process; `None` (with a warning) when
    /// the binary's path or a copy of the socket cannot be had.
    pub(crate) fn prepare(listener: &Listener, ini_dir: PathBuf) -> Option<Upgrade> {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(error) => {
                tracing::warn!("graceful upgrade (SIGUSR2) unavailable: {error}");
                return None;
            }
        };
        // SAFETY: F_DUPFD_CLOEXEC on the listener's own open descriptor;
        // the copy is owned below.
        let copy = unsafe { libc::fcntl(listener.raw_fd(), libc::F_DUPFD_CLOEXEC, KEPT_FD_FROM) };
        if copy < 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!("graceful upgrade (SIGUSR2) unavailable: {error}");
            return None;
        }
        Some(Upgrade {
            exe,
            args: std::env::args_os().collect(),
            ini_dir,
            // SAFETY: `copy` is a new descriptor nothing else owns.
            socket: unsafe { OwnedFd::from_raw_fd(copy) },
        })
    }

    /// The binary an upgrade starts.
    pub(crate) fn exe(&self) -> &std::path::Path {
        &self.exe
    }

    /// Runs the binary at nene's path with `check`; the error says why it
    /// would not start (its own words).
    pub(crate) async fn check_new_binary(&self) -> Result<(), String> {
        let checked = tokio::process::Command::new(&self.exe)
            .arg("--ini-dir")
            .arg(&self.ini_dir)
            .arg("check")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(CHECK_WITHIN, checked).await {
            Err(_) => Err(format!("`check` did not finish within {CHECK_WITHIN:?}")),
            Ok(Err(error)) => Err(format!("cannot run {}: {error}", self.exe.display())),
            Ok(Ok(output)) if output.status.success() => Ok(()),
            Ok(Ok(output)) => Err(format!(
                "`check` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        }
    }

    /// Replaces this process with the binary at nene's path, serving on the
    /// same socket; returns only if that fails. Call once nothing else runs
    /// (the runtime is shut down).
    pub(crate) fn exec(self) -> std::io::Error {
        // SAFETY: dup2 onto fd 3 of this process, whose other threads are
        // stopped; the copy on 3 is open across exec (dup2 clears
        // FD_CLOEXEC), the kept one closes with it.
        if unsafe { libc::dup2(self.socket.as_raw_fd(), 3) } < 0 {
            return std::io::Error::last_os_error();
        }
        let mut command = std::process::Command::new(&self.exe);
        if let Some((program, rest)) = self.args.split_first() {
            command.arg0(program).args(rest);
        }
        command
            .env("LISTEN_FDS", "1")
            .env("LISTEN_PID", std::process::id().to_string())
            .env("LISTEN_FDNAMES", crate::server::SOCKET_NAME)
            .exec()
    }
}
