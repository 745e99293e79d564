//! Where nene listens: `host:port` for TCP or `unix:/path/to.sock`, the same
//! spelling nginx's `fastcgi_pass` uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// A listen address, parsed from `server.listen` and printed back the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// `IP:PORT`; with port 0 the kernel picks a free port (as the tests do).
    Tcp(SocketAddr),
    /// `unix:` followed by the socket file's path.
    Unix(PathBuf),
}

/// The text is neither `IP:PORT` nor `unix:` with a path; holds the text for
/// the message.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid listen address {0:?}: expected IP:PORT (e.g. 127.0.0.1:9000) or unix:/path/to.sock"
)]
pub struct ListenAddrError(String);

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ListenAddrError(text.to_string()));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        text.parse::<SocketAddr>()
            .map(ListenAddr::Tcp)
            .map_err(|_| ListenAddrError(text.to_string()))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_unix_forms_parse() {
        assert_eq!(
            "127.0.0.1:9000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            "unix:/run/nene.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/run/nene.sock".into())
        );
        assert!("unix:".parse::<ListenAddr>().is_err());
        assert!("localhost".parse::<ListenAddr>().is_err());
    }
}
