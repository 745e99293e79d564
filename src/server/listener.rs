//! The listening socket: TCP, or a Unix socket file with a chosen mode. A stale
//! socket file left by a crashed nene is replaced; a live one is not stolen;
//! the file is removed when the listener is dropped. Both get the configured
//! listen queue (tokio's own `bind` gives TCP a queue of 128).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixSocket, UnixStream};

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
    /// The socket path exists and is some other kind of file, which nene will
    /// not delete.
    #[error(
        "cannot listen on unix:{0}: the path exists and is not a socket; refusing to replace it"
    )]
    NotASocket(PathBuf),
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
}

/// The bound socket the accept loop takes connections from.
pub enum Listener {
    /// A TCP listener, `IP:PORT`.
    Tcp(TcpListener),
    /// A Unix socket listener and its file, removed when this is dropped.
    Unix(UnixListener, UnixSocketFile),
}

/// An accepted connection, with a printable peer for logs.
pub enum Accepted {
    /// A TCP connection and the peer's address.
    Tcp(TcpStream, std::net::SocketAddr),
    /// A Unix socket connection; its peer has no address worth printing.
    Unix(UnixStream),
}

/// Removes the socket file when the listener goes away.
pub struct UnixSocketFile(PathBuf);

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Listener {
    /// Binds `settings.listen` with the configured backlog (and, for a Unix
    /// socket, replaces a stale socket file and sets its mode).
    pub async fn bind(settings: &ServerSettings) -> Result<Self, ListenError> {
        let backlog = settings.listen_backlog;
        match &settings.listen {
            ListenAddr::Tcp(socket_addr) => bind_tcp(*socket_addr, backlog)
                .map(Listener::Tcp)
                .map_err(|source| ListenError::Bind {
                    addr: settings.listen.clone(),
                    source,
                }),
            ListenAddr::Unix(path) => bind_unix(path, settings.socket_mode, backlog).await,
        }
    }

    /// The address actually bound (for TCP port 0, the port chosen).
    pub fn local_addr(&self) -> ListenAddr {
        match self {
            Listener::Tcp(listener) => listener
                .local_addr()
                .map(ListenAddr::Tcp)
                .unwrap_or_else(|_| ListenAddr::Tcp(([0, 0, 0, 0], 0).into())),
            Listener::Unix(_, file) => ListenAddr::Unix(file.0.clone()),
        }
    }

    /// The raw fd of a TCP listener (for its accept queue on the status page).
    pub fn tcp_fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        match self {
            Listener::Tcp(listener) => Some(listener.as_raw_fd()),
            Listener::Unix(..) => None,
        }
    }

    /// Waits for the next connection. TCP connections get `TCP_NODELAY`.
    pub async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                // Responses are written whole; Nagle would only delay them.
                stream.set_nodelay(true)?;
                Ok(Accepted::Tcp(stream, peer))
            }
            Listener::Unix(listener, _) => {
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

async fn bind_unix(path: &Path, socket_mode: u32, backlog: u32) -> Result<Listener, ListenError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(ListenError::SocketInUse(path.to_path_buf()));
            }
            tracing::info!("replacing stale socket file {}", path.display());
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => return Err(ListenError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    let listener = UnixSocket::new_stream()
        .and_then(|socket| {
            socket.bind(path)?;
            socket.listen(backlog)
        })
        .map_err(|source| ListenError::Bind {
            addr: ListenAddr::Unix(path.to_path_buf()),
            source,
        })?;
    let file = UnixSocketFile(path.to_path_buf());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket_mode)).map_err(
        |source| ListenError::SocketMode {
            path: path.to_path_buf(),
            mode: socket_mode,
            source,
        },
    )?;
    Ok(Listener::Unix(listener, file))
}
