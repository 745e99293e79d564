//! Finding the primary of a Sentinel-monitored service: the sentinels are
//! asked in the order the DSN lists them, and the first that names the
//! primary wins. Asked on first use and again whenever the connection to
//! the primary fails or the server turns out to be a replica (`READONLY`,
//! after a failover), so nene follows a failover without a restart.
//!
//! Written here rather than with the `redis` crate's `sentinel` module: its
//! async client keeps the address it found and hands out plain connections,
//! while nene's connection must be replaced, with a fresh lookup, exactly when
//! its own error handling decides so (see `connection.rs`).

use std::time::Duration;

use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use super::endpoint::{Address, Endpoint};

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
                        tls: None,
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
        let info = ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()?
            .set_redis_settings(self.sentinel_login.clone());
        let mut connection = Client::open(info)?
            .get_multiplexed_async_connection()
            .await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.service)
            .query_async(&mut connection)
            .await
    }
}
