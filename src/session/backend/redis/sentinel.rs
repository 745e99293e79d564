//! Finding the primary of a Sentinel-monitored service: the sentinels are
//! asked in the order the DSN lists them, and the first that names the
//! primary wins. Asked on first use and again whenever the connection to
//! the primary fails or the server turns out to be a replica (`READONLY`,
//! after a failover), so nene follows a failover without a restart.
//!
//! The server a sentinel names must say it is a primary (`ROLE`) before
//! nene sends it a command with session data: a sentinel that has not
//! seen a failover yet, or one misconfigured, can name a replica or any
//! other server. With `rediss+sentinel://` the sentinels and the primary
//! are spoken to over TLS, verified against `tls_ca_file` (or the public
//! roots), so credentials go only to a server holding a certificate for
//! the address named.
//!
//! Written here rather than with the `redis` crate's `sentinel` module: its
//! async client keeps the address it found and hands out plain connections,
//! while nene's connection must be replaced, with a fresh lookup, exactly when
//! its own error handling decides so (see `connection.rs`).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{RedisConnectionInfo, Value};

use super::endpoint::{Address, Endpoint};
use super::tls::TlsConfig;

/// The largest reply read from a sentinel: an address, or an error line.
const MAX_SENTINEL_REPLY: u64 = 64 * 1024;

/// The sentinels of one service and how to log in to them and to the primary.
pub(super) struct SentinelLookup {
    /// Host and port of each sentinel, asked in this order.
    pub(super) sentinels: Vec<(String, u16)>,
    /// The service name (`sentinel monitor SERVICE …`).
    pub(super) service: String,
    /// Credentials of the sentinels themselves.
    pub(super) sentinel_login: RedisConnectionInfo,
    /// Credentials and db of the primary found.
    pub(super) node_login: RedisConnectionInfo,
    /// Bound on asking one sentinel (connecting and the answer).
    pub(super) timeout: Duration,
    /// TLS settings for the sentinels and the primary
    /// (`rediss+sentinel://`).
    pub(super) tls: Option<TlsConfig>,
}

impl SentinelLookup {
    /// A client for the current primary, or why none was found (each
    /// sentinel's answer, for the log; no credentials in it).
    pub(super) async fn primary(&self) -> Result<Endpoint, String> {
        let mut answers = Vec::new();
        for (host, port) in &self.sentinels {
            match tokio::time::timeout(self.timeout, self.ask(host, *port)).await {
                Ok(Ok(Some((primary_host, primary_port)))) => {
                    return Ok(Endpoint {
                        address: Address::Tcp {
                            host: primary_host,
                            port: primary_port,
                        },
                        tls: self.tls.clone(),
                        login: self.node_login.clone(),
                        connect_timeout: self.timeout,
                    });
                }
                Ok(Ok(None)) => {
                    answers.push(format!("{host}:{port} does not monitor `{}`", self.service))
                }
                Ok(Err(error)) => answers.push(format!("{host}:{port}: {error}")),
                Err(_) => answers.push(format!(
                    "{host}:{port} did not answer within {:?}",
                    self.timeout
                )),
            }
        }
        Err(format!(
            "no sentinel named the primary of `{}` ({})",
            self.service,
            answers.join("; ")
        ))
    }

    /// `SENTINEL get-master-addr-by-name` on one sentinel.
    async fn ask(&self, host: &str, port: u16) -> redis::RedisResult<Option<(String, u16)>> {
        let sentinel = Endpoint {
            address: Address::Tcp {
                host: host.to_string(),
                port,
            },
            tls: self.tls.clone(),
            login: self.sentinel_login.clone(),
            connect_timeout: self.timeout,
        };
        let mut connection = sentinel
            .multiplexed(self.timeout, MAX_SENTINEL_REPLY)
            .await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.service)
            .query_async(&mut connection)
            .await
    }

    /// Whether the server at `primary`, found by [`primary`](Self::primary)
    /// and connected to as `connection`, says it is a primary (`ROLE`);
    /// the error says what it is instead.
    pub(super) async fn check_role(
        &self,
        primary: &Endpoint,
        connection: &mut MultiplexedConnection,
    ) -> Result<(), String> {
        let role = redis::cmd("ROLE")
            .query_async::<Value>(connection)
            .await
            .map_err(|error| format!("ROLE: {error}"))?;
        let said = match &role {
            Value::Array(items) => match items.first() {
                Some(Value::BulkString(role)) => String::from_utf8_lossy(role).into_owned(),
                _ => format!("{role:?}"),
            },
            other => format!("{other:?}"),
        };
        if said == "master" {
            return Ok(());
        }
        Err(format!(
            "the sentinels named {} as the primary of `{}`, but it says it is a {said} (ROLE); nothing was sent to it, the sentinels are asked again on the next request",
            primary.address, self.service
        ))
    }
}
