//! The listening socket: TCP, or a Unix socket file with a chosen mode. A stale
//! socket file of ours (left by a crashed nene) is replaced; a live one, one
//! that cannot be probed, or another user's is not touched; the file has its
//! mode before anyone can connect and is removed when the listener is dropped.
//! Both get the configured listen queue (tokio's own `bind` gives TCP a queue
//! of 128). A socket passed in by systemd or systemfd (inherited.rs) is
//! served as it is, and its file is left for its owner to remove.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixSocket, UnixStream};

use super::inherited::{self, InheritedKind, InheritedSocket};
use super::{ListenAddr, ServerSettings};

/// Why nene cannot listen; a start-up error, printed before exiting.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Creating, binding or listening on the socket fails (address in use,
    /// no permission, missing directory).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: ListenAddr,
        /// The system's reason.
        source: io::Error,
    },
    /// The Unix socket file exists and a process accepts connections on it;
    /// a running server is never displaced.
    #[error(
        "cannot listen on unix:{0}: another process is serving on that socket (stop it or choose another path)"
    )]
    SocketInUse(PathBuf),
    /// The socket file belongs to another user: live or not, it is not ours
    /// to remove.
    #[error(
        "cannot listen on unix:{path}: the socket belongs to another user (uid {owner}); refusing to replace it"
    )]
    SocketNotOurs {
        /// The socket file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
    },
    /// Connecting to the existing socket fails for a reason other than
    /// "nobody listens", so a server may well be behind it.
    #[error(
        "cannot listen on unix:{path}: cannot tell whether the socket is in use ({source}); refusing to replace it"
    )]
    SocketUnknown {
        /// The socket file.
        path: PathBuf,
        /// Why connecting failed.
        source: io::Error,
    },
    /// The socket path exists and is some other kind of file, which nene will
    /// not delete.
    #[error(
        "cannot listen on unix:{0}: the path exists and is not a socket; refusing to replace it"
    )]
    NotASocket(PathBuf),
    /// Between binding and setting its mode, the socket file was replaced by
    /// something else (a symlink, another socket); its mode is not touched.
    #[error(
        "cannot listen on unix:{0}: the socket file was replaced while starting; refusing to set its mode"
    )]
    SocketReplaced(PathBuf),
    /// The Unix socket is bound but its file mode cannot be set, so nginx
    /// might not be able to connect.
    #[error("cannot set mode {mode:o} on unix:{path}: {source}")]
    SocketMode {
        /// The socket file.
        path: PathBuf,
        /// The mode that was to be set (`server.socket_mode`).
        mode: u32,
        /// The system's reason.
        source: io::Error,
    },
    /// The socket passed in `LISTEN_FDS` cannot be served on.
    #[error("cannot use the socket passed in LISTEN_FDS: {0}")]
    Inherited(String),
}

/// The bound socket the accept loop takes connections from.
pub struct Listener {
    socket: Socket,
    /// The descriptor it was passed as, when inherited (for the log).
    inherited_fd: Option<i32>,
    /// Set when the socket is passed on: a Unix socket's file is then left
    /// where it is when the listener goes.
    leave_file: Arc<AtomicBool>,
}

enum Socket {
    /// A TCP listener, `IP:PORT`.
    Tcp(TcpListener),
    /// A Unix socket listener at `path`; the file is removed when this is
    /// dropped if nene made it (`Some`).
    Unix {
        listener: UnixListener,
        path: PathBuf,
        _file_made_here: Option<UnixSocketFile>,
    },
}

/// An accepted connection, with a printable peer for logs.
pub enum Accepted {
    /// A TCP connection and the peer's address.
    Tcp(TcpStream, std::net::SocketAddr),
    /// A Unix socket connection; its peer has no address worth printing.
    Unix(UnixStream),
}

/// Removes the socket file when the listener goes away — only if the path
/// still names the socket nene bound (its device and inode): whatever
/// replaced it since (another server's socket, a file) is not ours.
pub struct UnixSocketFile {
    /// The socket's path.
    path: PathBuf,
    /// The (device, inode) of the file nene bound and set the mode of.
    identity: (u64, u64),
    /// Set when the socket is passed on (upgrade.rs): the file stays.
    leave: Arc<AtomicBool>,
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        if self.leave.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && meta.file_type().is_socket()
            && (meta.dev(), meta.ino()) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Listener {
    /// Binds `settings.listen` with the configured backlog (and, for a Unix
    /// socket, replaces a stale socket file and sets its mode).
    pub async fn bind(settings: &ServerSettings) -> Result<Self, ListenError> {
        let backlog = settings.listen_backlog;
        let leave_file = Arc::new(AtomicBool::new(false));
        let socket = match &settings.listen {
            ListenAddr::Tcp(socket_addr) => bind_tcp(*socket_addr, backlog)
                .map(Socket::Tcp)
                .map_err(|source| ListenError::Bind {
                    addr: settings.listen.clone(),
                    source,
                })?,
            ListenAddr::Unix(path) => {
                bind_unix(path, settings.socket_mode, backlog, leave_file.clone()).await?
            }
        };
        Ok(Listener {
            socket,
            inherited_fd: None,
            leave_file,
        })
    }

    /// Serves on a socket passed in (inherited.rs) instead of binding
    /// `settings.listen`; its queue is the one its owner gave it.
    pub fn inherited(
        passed: InheritedSocket,
        settings: &ServerSettings,
    ) -> Result<Self, ListenError> {
        let unusable =
            |error: io::Error| ListenError::Inherited(format!("fd {}: {error}", passed.fd));
        let socket = match passed.socket {
            InheritedKind::Tcp(tcp) => {
                tcp.set_nonblocking(true).map_err(unusable)?;
                Socket::Tcp(TcpListener::from_std(tcp).map_err(unusable)?)
            }
            InheritedKind::Unix(unix) => {
                let path = inherited::unix_socket_path(&unix, settings.socket_mode)?;
                unix.set_nonblocking(true).map_err(unusable)?;
                Socket::Unix {
                    listener: UnixListener::from_std(unix).map_err(unusable)?,
                    path,
                    _file_made_here: None,
                }
            }
        };
        Ok(Listener {
            socket,
            inherited_fd: Some(passed.fd),
            leave_file: Arc::new(AtomicBool::new(true)),
        })
    }

    /// The address actually bound (for TCP port 0, the port chosen).
    pub fn local_addr(&self) -> ListenAddr {
        match &self.socket {
            Socket::Tcp(listener) => listener
                .local_addr()
                .map(ListenAddr::Tcp)
                .unwrap_or_else(|_| ListenAddr::Tcp(([0, 0, 0, 0], 0).into())),
            Socket::Unix { path, .. } => ListenAddr::Unix(path.clone()),
        }
    }

    /// Where the socket came from, for the start-up line: `` when nene
    /// bound it, ` (passed in as fd 3)` when inherited.
    pub fn origin(&self) -> String {
        self.inherited_fd
            .map(|fd| format!(" (passed in as fd {fd}; server.listen is not used)"))
            .unwrap_or_default()
    }

    /// The listening socket's descriptor (upgrade.rs passes a copy on).
    pub fn raw_fd(&self) -> i32 {
        match &self.socket {
            Socket::Tcp(listener) => listener.as_raw_fd(),
            Socket::Unix { listener, .. } => listener.as_raw_fd(),
        }
    }

    /// A switch that, once set, leaves a Unix socket's file in place when
    /// the listener goes: the socket lives on in the process it was passed
    /// to.
    pub fn leave_file_switch(&self) -> Arc<AtomicBool> {
        self.leave_file.clone()
    }

    /// The raw fd of a TCP listener (for its accept queue on the status page).
    pub fn tcp_fd(&self) -> Option<i32> {
        match &self.socket {
            Socket::Tcp(listener) => Some(listener.as_raw_fd()),
            Socket::Unix { .. } => None,
        }
    }

    /// Waits for the next connection. TCP connections get `TCP_NODELAY`.
    pub async fn accept(&self) -> io::Result<Accepted> {
        match &self.socket {
            Socket::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                // Responses are written whole; Nagle would only delay them.
                stream.set_nodelay(true)?;
                Ok(Accepted::Tcp(stream, peer))
            }
            Socket::Unix { listener, .. } => {
                let (stream, _) = listener.accept().await?;
                Ok(Accepted::Unix(stream))
            }
        }
    }
}

fn bind_tcp(addr: std::net::SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std and tokio do: a restarted nene may bind while old connections
    // sit in TIME_WAIT. (A live listener on the port still refuses it.)
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

async fn bind_unix(
    path: &Path,
    socket_mode: u32,
    backlog: u32,
    leave: Arc<AtomicBool>,
) -> Result<Socket, ListenError> {
    clear_stale_socket(path).await?;
    let bind_error = |source| ListenError::Bind {
        addr: ListenAddr::Unix(path.to_path_buf()),
        source,
    };
    let socket = UnixSocket::new_stream().map_err(bind_error)?;
    // Linux creates the socket file with the mode of the socket's own inode
    // (less the umask), so the file starts out owner-only whatever the umask
    // is. The umask itself is not touched: it is process-wide, and by now the
    // application's tasks run on other threads and may be creating files.
    // After bind(), fchmod() on the socket changes only that inode, never the
    // file, which is why the final mode is set through the path below.
    // SAFETY: fchmod on a descriptor we own.
    if unsafe { libc::fchmod(socket.as_raw_fd(), 0o600) } != 0 {
        return Err(bind_error(io::Error::last_os_error()));
    }
    socket.bind(path).map_err(bind_error)?;
    // Nothing can connect before listen(), so the mode is final first. On
    // any failure the file is left alone: if it was replaced it is not ours,
    // and if not, the next start replaces it as stale.
    let identity = set_socket_mode(path, socket_mode)?;
    let file = UnixSocketFile {
        path: path.to_path_buf(),
        identity,
        leave,
    };
    let listener = socket.listen(backlog).map_err(bind_error)?;
    Ok(Socket::Unix {
        listener,
        path: path.to_path_buf(),
        _file_made_here: Some(file),
    })
}

/// Makes way for the socket: nothing at `path`, or a stale socket file of
/// ours, which is removed. Only a socket that refuses connections
/// (ECONNREFUSED: nobody listens) and belongs to this user is stale; any other
/// failure to connect (no permission, a full queue) says nothing about whether
/// a server is behind it, and another user's socket is never ours to remove.
async fn clear_stale_socket(path: &Path) -> Result<(), ListenError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Nothing there (or an unreadable directory, which bind reports).
        Err(_) => return Ok(()),
    };
    // A symlink is not a socket either: what it points to is not ours to
    // replace or to chmod.
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket(path.to_path_buf()));
    }
    let refused = match UnixStream::connect(path).await {
        Ok(_) => return Err(ListenError::SocketInUse(path.to_path_buf())),
        Err(error) => error,
    };
    if meta.uid() != effective_uid() {
        return Err(ListenError::SocketNotOurs {
            path: path.to_path_buf(),
            owner: meta.uid(),
        });
    }
    if refused.kind() != io::ErrorKind::ConnectionRefused {
        return Err(ListenError::SocketUnknown {
            path: path.to_path_buf(),
            source: refused,
        });
    }
    tracing::info!("replacing stale socket file {}", path.display());
    // If this fails, bind() says why.
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Sets `server.socket_mode` on the socket file just bound, without following
/// a symlink or touching any other file put there in the meantime. The path is
/// opened without following it (O_PATH | O_NOFOLLOW) and the open file checked:
/// a socket, ours, with no other name (a hard link to someone else's socket
/// would have two). The mode is then set through /proc/self/fd, which names
/// exactly that checked file; chmod() on the path itself would follow a symlink
/// swapped in after the check. Returns the file's (device, inode), to
/// recognise it at exit.
fn set_socket_mode(path: &Path, socket_mode: u32) -> Result<(u64, u64), ListenError> {
    let mode_error = |source| ListenError::SocketMode {
        path: path.to_path_buf(),
        mode: socket_mode,
        source,
    };
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
        .map_err(mode_error)?;
    let meta = opened.metadata().map_err(mode_error)?;
    if !meta.file_type().is_socket() || meta.uid() != effective_uid() || meta.nlink() != 1 {
        return Err(ListenError::SocketReplaced(path.to_path_buf()));
    }
    let checked = format!("/proc/self/fd/{}", opened.as_raw_fd());
    std::fs::set_permissions(checked, std::fs::Permissions::from_mode(socket_mode))
        .map_err(mode_error)?;
    Ok((meta.dev(), meta.ino()))
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
