//! One Redis server nene talks to, and how a connection to it is opened.
//! nene opens the stream itself (TCP, Unix socket or TLS) and hands it to
//! the redis crate wrapped in [`BoundedReplies`]: the crate buffers a whole
//! reply before it decodes it and has no bound of its own, so a broken
//! proxy or a hostile peer that declares gigabytes and streams them would
//! otherwise grow nene's memory until it dies. The bound is the largest
//! session nene keeps (`session.max_size`) plus [`REPLY_MARGIN`].

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, RedisConnectionInfo, RedisResult};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::bounded_replies::BoundedReplies;
use super::tls::{TlsConfig, over_tls};

/// What a reply may take beyond `session.max_size`: the framing around a
/// session (a few dozen bytes), a hand-off notice's token, a page of
/// listed keys. A reply larger than the largest session plus this is no
/// reply nene asked for.
pub(super) const REPLY_MARGIN: u64 = 1024 * 1024;

/// Where a server listens.
#[derive(Clone, Debug)]
pub(super) enum Address {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    /// `host:port` (`[v6]:port`), or the socket's path.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One server and everything needed to open a connection to it.
#[derive(Clone)]
pub(super) struct Endpoint {
    pub(super) address: Address,
    /// TLS settings for `rediss://` (TCP only).
    pub(super) tls: Option<TlsConfig>,
    /// Database, user name and password sent when a connection opens.
    pub(super) login: RedisConnectionInfo,
    /// Bound on opening the stream (the DSN's `connect_timeout`).
    pub(super) connect_timeout: Duration,
}

/// The stream under a connection, whichever kind it is.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Endpoint {
    /// A multiplexed connection whose commands wait at most
    /// `response_timeout` for their reply, and which refuses (and drops)
    /// any reply over `max_reply` bytes.
    pub(super) async fn multiplexed(
        &self,
        response_timeout: Duration,
        max_reply: u64,
    ) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new().set_response_timeout(Some(response_timeout));
        let stream = self.stream(max_reply).await?;
        let (connection, driver) =
            MultiplexedConnection::new_with_config(&self.login, stream, config).await?;
        // The driver ends when the last clone of the connection is dropped.
        tokio::spawn(driver);
        Ok(connection)
    }

    /// A subscriber connection (release notices), bounded like
    /// [`multiplexed`](Self::multiplexed).
    pub(super) async fn pubsub(&self, max_reply: u64) -> RedisResult<PubSub> {
        PubSub::new(&self.login, self.stream(max_reply).await?).await
    }

    /// The stream, opened within `connect_timeout` and bounded.
    async fn stream(&self, max_reply: u64) -> io::Result<BoundedReplies<Box<dyn Stream>>> {
        let open = async {
            let stream: Box<dyn Stream> = match &self.address {
                Address::Tcp { host, port } => {
                    let tcp = TcpStream::connect((host.as_str(), *port)).await?;
                    tcp.set_nodelay(true)?;
                    match &self.tls {
                        None => Box::new(tcp),
                        Some(config) => over_tls(config, host, tcp).await?,
                    }
                }
                Address::Unix(path) => Box::new(UnixStream::connect(path).await?),
            };
            Ok(BoundedReplies::new(stream, max_reply))
        };
        tokio::time::timeout(self.connect_timeout, open)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no connection within connect_timeout ({:?})",
                        self.connect_timeout
                    ),
                ))
            })
    }
}
