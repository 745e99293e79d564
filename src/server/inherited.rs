//! A listening socket handed to nene by the process that started it:
//! systemd's socket activation (`LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`), or `systemfd` while developing. The socket outlives
//! nene there, so a restart refuses no connection: they wait in its queue
//! until the next nene accepts them (docs/decisions/0024).
//!
//! The descriptors are taken with the `listenfd` crate, which also unsets
//! the protocol's variables so that a process nene starts does not take
//! them for its own. Unsetting the environment is only sound while the
//! process has one thread, so [`take_inherited`] runs first thing, before
//! the runtime or the log writer start theirs.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use super::listener::ListenError;

/// The name of nene's socket in `LISTEN_FDNAMES` when several are passed
/// (systemd: `FileDescriptorName=nene` in the socket unit).
pub const SOCKET_NAME: &str = "nene";

/// A listening socket passed in, and where it came from for the log.
pub struct InheritedSocket {
    /// The socket itself.
    pub socket: InheritedKind,
    /// Its descriptor number, for the start-up line.
    pub fd: RawFd,
}

/// TCP or Unix, as passed.
pub enum InheritedKind {
    /// A TCP listening socket.
    Tcp(std::net::TcpListener),
    /// A Unix stream listening socket.
    Unix(std::os::unix::net::UnixListener),
}

/// The socket passed in, if any; an error when the variables name sockets
/// nene cannot serve on (several without one named [`SOCKET_NAME`], one
/// that is not a listening stream socket).
pub fn take_inherited() -> Result<Option<InheritedSocket>, ListenError> {
    let names = std::env::var("LISTEN_FDNAMES").ok();
    if names.is_some() {
        // SAFETY: called before nene starts any thread (see the module's
        // comment); nothing else reads the environment concurrently.
        unsafe { std::env::remove_var("LISTEN_FDNAMES") };
    }
    let mut passed = listenfd::ListenFd::from_env();
    let index = match (passed.len(), names.as_deref()) {
        (0, _) => return Ok(None),
        (1, _) => 0,
        (count, names) => which_is_ours(count, names)?,
    };
    let fd = first_fd() + RawFd::try_from(index).unwrap_or(0);
    check_listening(fd)?;
    let socket = match passed.take_tcp_listener(index) {
        Ok(Some(tcp)) => InheritedKind::Tcp(tcp),
        _ => match passed.take_unix_listener(index) {
            Ok(Some(unix)) => InheritedKind::Unix(unix),
            _ => {
                return Err(refused(format!(
                    "fd {fd} is neither a TCP nor a Unix stream socket"
                )));
            }
        },
    };
    Ok(Some(InheritedSocket { socket, fd }))
}

/// The index of nene's socket among `count` passed, by its name.
fn which_is_ours(count: usize, names: Option<&str>) -> Result<usize, ListenError> {
    let named: Vec<usize> = names
        .unwrap_or_default()
        .split(':')
        .enumerate()
        .filter(|(_, name)| *name == SOCKET_NAME)
        .map(|(index, _)| index)
        .collect();
    match named.as_slice() {
        [index] if *index < count => Ok(*index),
        _ => Err(refused(format!(
            "LISTEN_FDS passes {count} sockets and LISTEN_FDNAMES ({}) does not name exactly one `{SOCKET_NAME}`; nene serves on one (systemd: FileDescriptorName={SOCKET_NAME})",
            names.unwrap_or("unset")
        ))),
    }
}

/// Where the passed descriptors start: 3 in systemd's protocol
/// (`LISTEN_FDS_FIRST_FD` is listenfd's own extension, honoured as it is).
fn first_fd() -> RawFd {
    std::env::var("LISTEN_FDS_FIRST_FD")
        .ok()
        .and_then(|first| first.parse().ok())
        .unwrap_or(3)
}

/// A socket that is not listening would fail every accept: refuse it at
/// start-up instead.
fn check_listening(fd: RawFd) -> Result<(), ListenError> {
    let mut listening: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes into `listening`; an
    // fd that is not a socket (or not open) only makes it fail.
    let answered = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut listening).cast(),
            &raw mut length,
        )
    };
    if answered != 0 {
        let error = io::Error::last_os_error();
        return Err(refused(format!("fd {fd} is not a socket ({error})")));
    }
    if listening == 0 {
        return Err(refused(format!(
            "fd {fd} is a socket that is not listening"
        )));
    }
    Ok(())
}

fn refused(reason: String) -> ListenError {
    ListenError::Inherited(reason)
}

/// The file of an inherited Unix socket, checked as nene checks one it
/// binds: a socket file at its path, with `server.socket_mode` (a
/// different mode is only warned about: the socket's owner chose it).
pub fn unix_socket_path(
    listener: &std::os::unix::net::UnixListener,
    socket_mode: u32,
) -> Result<PathBuf, ListenError> {
    let address = listener
        .local_addr()
        .map_err(|error| refused(format!("fd {}: {error}", listener.as_raw_fd())))?;
    let Some(path) = address.as_pathname() else {
        return Err(refused(format!(
            "fd {} is a Unix socket with no path (abstract or unnamed); nginx cannot reach it",
            listener.as_raw_fd()
        )));
    };
    let meta = std::fs::symlink_metadata(path)
        .map_err(|error| refused(format!("{}: {error}", path.display())))?;
    if !meta.file_type().is_socket() {
        return Err(refused(format!(
            "{} is no longer the socket's file",
            path.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode != socket_mode {
        tracing::warn!(
            "the inherited socket {} has mode {mode:o}, server.socket_mode says {socket_mode:o} (nene leaves it as its owner set it)",
            path.display()
        );
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn among_several_sockets_nene_takes_the_one_named_nene() {
        assert_eq!(which_is_ours(3, Some("admin:nene:metrics")).unwrap(), 1);
        for names in [None, Some("a:b"), Some("nene:nene"), Some("a:b:c:nene")] {
            let message = which_is_ours(3, names).unwrap_err().to_string();
            assert!(message.contains("FileDescriptorName=nene"), "{message}");
        }
    }

    #[test]
    fn a_socket_that_does_not_listen_is_refused() {
        let connected = std::os::unix::net::UnixStream::pair().unwrap().0;
        let message = check_listening(connected.as_raw_fd())
            .unwrap_err()
            .to_string();
        assert!(message.contains("not listening"), "{message}");
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(check_listening(listening.as_raw_fd()).is_ok());
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(check_listening(file.as_raw_fd()).is_err());
    }
}
