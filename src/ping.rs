//! `nene ping`: a one-request FastCGI client for healthchecks. It connects to
//! a FastCGI address (TCP or a Unix socket), sends one responder request — a
//! GET of one path, with `FCGI_KEEP_CONN` off — reads the records back until
//! `END_REQUEST`, and reports the CGI status. The compose healthcheck, a
//! systemd or monitoring probe run it to ask nene itself, without nginx,
//! whether it serves.
//!
//! The default path is `/health` (an application route: it goes through the
//! front controller like any request). nene's own ping path (`ping.path`,
//! answered before the application) or any other route can be asked with
//! `--path`.
//!
//! It speaks through the protocol layer's encoder and record codec, so the
//! client and the server agree on the wire format by construction; it knows
//! nothing of sessions or applications.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout_at;
use tokio_util::codec::FramedRead;

use crate::fastcgi::{
    ProtocolError, RecordCodec, RecordType, encode_name_value, encode_record, encode_stream,
};
use crate::server::ListenAddr;

/// The one request on the connection; nothing is multiplexed.
const REQUEST_ID: u16 = 1;
/// FastCGI's responder role, the one nene serves.
const ROLE_RESPONDER: u16 = 1;
/// How much of STDOUT is kept to find the CGI head in: the status is all a
/// ping needs, and a route that streams a large body must not fill memory.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One ping: where, what, and how long it may take.
#[derive(Clone, Debug)]
pub struct Ping {
    /// The FastCGI address. A wildcard IP (`0.0.0.0`, `[::]`), as a container
    /// listens on, is reached on loopback.
    pub addr: ListenAddr,
    /// The path (with an optional `?query`) to GET.
    pub path: String,
    /// Bound on connecting and the whole answer together, so a healthcheck
    /// never hangs on a stalled server.
    pub timeout: Duration,
}

/// What the server answered, and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingAnswer {
    /// The address that answered (after wildcard → loopback).
    pub addr: ListenAddr,
    /// The path that was asked for.
    pub path: String,
    /// The CGI status (`Status:` line; 200 when the head has none, as CGI says).
    pub status: u16,
    /// From starting to connect until `END_REQUEST`.
    pub elapsed: Duration,
}

impl PingAnswer {
    /// Healthy means exactly 200: a redirect or an error page is not.
    pub fn is_ok(&self) -> bool {
        self.status == 200
    }
}

impl std::fmt::Display for PingAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered {} to GET {} in {:.1} ms",
            self.addr,
            self.status,
            self.path,
            self.elapsed.as_secs_f64() * 1000.0
        )
    }
}

/// Why a ping got no status.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// The connection was refused or failed (nothing listening, no
    /// permission on the socket file).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried (a wildcard IP already turned into loopback).
        addr: ListenAddr,
        /// The system's reason.
        source: io::Error,
    },
    /// No connection was made within the timeout (a full listen queue, a
    /// firewall that drops packets).
    #[error("cannot connect to {addr}: no connection within {}", humantime::format_duration(*timeout))]
    ConnectTimeout {
        /// The address tried (a wildcard IP already turned into loopback).
        addr: ListenAddr,
        /// The ping's whole time budget, which connecting used up.
        timeout: Duration,
    },
    /// Connected, but the END_REQUEST did not arrive within the timeout (a
    /// stalled server or a slow route).
    #[error("{addr} did not answer GET {path} within {}", humantime::format_duration(*timeout))]
    AnswerTimeout {
        /// The address tried (a wildcard IP already turned into loopback).
        addr: ListenAddr,
        /// The path that was asked for.
        path: String,
        /// The ping's whole time budget.
        timeout: Duration,
    },
    /// Writing the request failed, or the answer was not valid FastCGI.
    #[error("{addr} broke off GET {path}: {source}")]
    Protocol {
        /// The address tried (a wildcard IP already turned into loopback).
        addr: ListenAddr,
        /// The path that was asked for.
        path: String,
        /// What went wrong on the wire.
        source: ProtocolError,
    },
    /// The server closed the connection before the END_REQUEST.
    #[error("{addr} closed the connection before ending GET {path}")]
    Closed {
        /// The address tried (a wildcard IP already turned into loopback).
        addr: ListenAddr,
        /// The path that was asked for.
        path: String,
    },
    /// The END_REQUEST carries a protocol status other than
    /// `REQUEST_COMPLETE` (overloaded, unknown role, no multiplexing).
    #[error("{addr} refused GET {path}: FastCGI protocol status {}", protocol_status_name(*status))]
    Refused {
        /// The address tried (a wildcard IP already turned into loopback).
        addr: ListenAddr,
        /// The path that was asked for.
        path: String,
        /// The END_REQUEST's protocol status byte.
        status: u8,
    },
    /// The request completed but STDOUT held no CGI head ending in a blank
    /// line, or its `Status:` line did not parse.
    #[error(
        "{addr} answered GET {path} without a readable CGI head (no blank line or a bad Status line)"
    )]
    BadHead {
        /// The address tried (a wildcard IP already turned into loopback).
        addr: ListenAddr,
        /// The path that was asked for.
        path: String,
    },
}

impl Ping {
    /// Connects, asks, and reads the answer, all within `timeout`.
    pub async fn run(&self) -> Result<PingAnswer, PingError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let addr = reachable(&self.addr);
        let connect_timeout = || PingError::ConnectTimeout {
            addr: addr.clone(),
            timeout: self.timeout,
        };
        let connect_error = |source| PingError::Connect {
            addr: addr.clone(),
            source,
        };
        let exchange = match &addr {
            ListenAddr::Tcp(socket) => {
                let stream = timeout_at(deadline, TcpStream::connect(socket))
                    .await
                    .map_err(|_| connect_timeout())?
                    .map_err(connect_error)?;
                let remote = stream.local_addr().map(|a| a.ip()).ok();
                timeout_at(deadline, self.exchange(&addr, stream, remote)).await
            }
            ListenAddr::Unix(path) => {
                let stream = timeout_at(deadline, UnixStream::connect(path))
                    .await
                    .map_err(|_| connect_timeout())?
                    .map_err(connect_error)?;
                // A peer on a Unix socket is on this machine.
                let remote = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
                timeout_at(deadline, self.exchange(&addr, stream, remote)).await
            }
        };
        let status = exchange.map_err(|_| PingError::AnswerTimeout {
            addr: addr.clone(),
            path: self.path.clone(),
            timeout: self.timeout,
        })??;
        Ok(PingAnswer {
            addr,
            path: self.path.clone(),
            status,
            elapsed: started.elapsed(),
        })
    }

    /// Sends the request on `io` and reads records until its END_REQUEST;
    /// returns the CGI status.
    async fn exchange<IO>(
        &self,
        addr: &ListenAddr,
        mut io: IO,
        remote: Option<IpAddr>,
    ) -> Result<u16, PingError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let protocol = |source: ProtocolError| PingError::Protocol {
            addr: addr.clone(),
            path: self.path.clone(),
            source,
        };
        io.write_all(&self.request(remote))
            .await
            .map_err(|error| protocol(error.into()))?;
        let mut records = FramedRead::new(io, RecordCodec);
        let mut head = Vec::new();
        while let Some(record) = records.next().await {
            let record = record.map_err(protocol)?;
            if record.request_id != REQUEST_ID {
                continue;
            }
            match record.record_type {
                RecordType::STDOUT if head.len() < MAX_HEAD_BYTES && !has_blank_line(&head) => {
                    head.extend_from_slice(&record.content);
                }
                RecordType::END_REQUEST => {
                    // appStatus (u32), protocolStatus (u8), 3 reserved bytes.
                    let status = record.content.get(4).copied().unwrap_or(u8::MAX);
                    if status != 0 {
                        return Err(PingError::Refused {
                            addr: addr.clone(),
                            path: self.path.clone(),
                            status,
                        });
                    }
                    return cgi_status(&head).ok_or_else(|| PingError::BadHead {
                        addr: addr.clone(),
                        path: self.path.clone(),
                    });
                }
                _ => {}
            }
        }
        Err(PingError::Closed {
            addr: addr.clone(),
            path: self.path.clone(),
        })
    }

    /// BEGIN_REQUEST (responder, KEEP_CONN off), the params nginx would send
    /// for this GET, and an empty STDIN.
    fn request(&self, remote: Option<IpAddr>) -> BytesMut {
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let remote = remote.map(|ip| ip.to_string());
        let mut params = BytesMut::new();
        let pairs = [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            (
                "SERVER_SOFTWARE",
                concat!("nene-ping/", env!("CARGO_PKG_VERSION")),
            ),
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", self.path.as_str()),
            ("DOCUMENT_URI", path),
            ("QUERY_STRING", query),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("SERVER_NAME", "localhost"),
            ("HTTP_HOST", "localhost"),
            ("HTTP_USER_AGENT", "nene-ping"),
        ];
        for (name, value) in pairs {
            encode_name_value(&mut params, name.as_bytes(), value.as_bytes());
        }
        if let Some(remote) = &remote {
            encode_name_value(&mut params, b"REMOTE_ADDR", remote.as_bytes());
        }

        let mut out = BytesMut::new();
        let mut begin = [0u8; 8];
        begin[..2].copy_from_slice(&ROLE_RESPONDER.to_be_bytes());
        // begin[2] = flags: 0, so the server closes the connection after answering.
        encode_record(&mut out, RecordType::BEGIN_REQUEST, REQUEST_ID, &begin);
        encode_stream(&mut out, RecordType::PARAMS, REQUEST_ID, &params);
        encode_record(&mut out, RecordType::PARAMS, REQUEST_ID, &[]);
        encode_record(&mut out, RecordType::STDIN, REQUEST_ID, &[]);
        out
    }
}

/// A wildcard listen address cannot be connected to portably; its loopback
/// twin reaches the same listener.
fn reachable(addr: &ListenAddr) -> ListenAddr {
    match addr {
        ListenAddr::Tcp(socket) if socket.ip().is_unspecified() => {
            let loopback = match socket.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            ListenAddr::Tcp(SocketAddr::new(loopback, socket.port()))
        }
        other => other.clone(),
    }
}

fn has_blank_line(head: &[u8]) -> bool {
    head_end(head).is_some()
}

/// Where the CGI head ends (CRLF or bare LF line endings, as CGI allows).
fn head_end(stdout: &[u8]) -> Option<usize> {
    let crlf = stdout.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = stdout.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The status of a CGI response: its `Status:` line; without one, 302 when
/// it has a `Location:` and 200 otherwise (RFC 3875, 6.2 and 6.3.3).
fn cgi_status(stdout: &[u8]) -> Option<u16> {
    let head = std::str::from_utf8(&stdout[..head_end(stdout)?]).ok()?;
    let mut location = false;
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("status") {
            let code = value.trim_start().get(..3)?;
            return code.parse().ok().filter(|code| (100..1000).contains(code));
        }
        location |= name.eq_ignore_ascii_case("location");
    }
    Some(if location { 302 } else { 200 })
}

fn protocol_status_name(status: u8) -> String {
    match status {
        1 => "1 (CANT_MPX_CONN)".to_string(),
        2 => "2 (OVERLOADED)".to_string(),
        3 => "3 (UNKNOWN_ROLE)".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_decides_and_cgi_defaults_apply_without_one() {
        assert_eq!(
            cgi_status(b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\nbody"),
            Some(404)
        );
        assert_eq!(cgi_status(b"status:200\n\n"), Some(200));
        assert_eq!(cgi_status(b"Content-Type: text/plain\r\n\r\n"), Some(200));
        assert_eq!(cgi_status(b"Location: /elsewhere\r\n\r\n"), Some(302));
        assert_eq!(cgi_status(b"Status: 200 OK\r\n"), None, "no blank line");
        assert_eq!(cgi_status(b"Status: abc\r\n\r\n"), None);
    }

    #[test]
    fn a_wildcard_listen_address_is_pinged_on_loopback() {
        let wildcard: ListenAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(reachable(&wildcard).to_string(), "127.0.0.1:9000");
        let wildcard6: ListenAddr = "[::]:9000".parse().unwrap();
        assert_eq!(reachable(&wildcard6).to_string(), "[::1]:9000");
        let unix: ListenAddr = "unix:/run/nene/nene.sock".parse().unwrap();
        assert_eq!(reachable(&unix), unix);
    }

    #[test]
    fn the_request_is_one_responder_get_without_keep_conn() {
        let ping = Ping {
            addr: "127.0.0.1:9000".parse().unwrap(),
            path: "/health?deep=1".to_string(),
            timeout: Duration::from_secs(2),
        };
        let mut bytes = ping.request(None);
        let mut records = Vec::new();
        while let Some(record) =
            tokio_util::codec::Decoder::decode(&mut RecordCodec, &mut bytes).unwrap()
        {
            records.push(record);
        }
        let types: Vec<RecordType> = records.iter().map(|r| r.record_type).collect();
        assert_eq!(
            types,
            [
                RecordType::BEGIN_REQUEST,
                RecordType::PARAMS,
                RecordType::PARAMS,
                RecordType::STDIN
            ]
        );
        assert_eq!(&records[0].content[..3], &[0, 1, 0], "responder, no flags");
        let params = crate::fastcgi::parse_name_values(&records[1].content).unwrap();
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| &n[..] == name.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("REQUEST_METHOD").as_deref(), Some("GET"));
        assert_eq!(get("REQUEST_URI").as_deref(), Some("/health?deep=1"));
        assert_eq!(get("DOCUMENT_URI").as_deref(), Some("/health"));
        assert_eq!(get("QUERY_STRING").as_deref(), Some("deep=1"));
    }
}
