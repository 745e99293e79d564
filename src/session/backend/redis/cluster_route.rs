//! The short way to a Redis Cluster: a session's commands all name keys
//! in one slot (the id is their hash tag), so they go straight to the
//! primary that owns it, over a multiplexed connection of its own, as a
//! plain `redis://` command would. The `redis` crate's cluster connection
//! stays behind it for everything else: commands without a key (`SCRIPT
//! LOAD`, `SCAN` on every node), and any command a node redirected
//! (`MOVED`, `ASK`: not run there, so safe to send again), after which the
//! slot table is read again.
//!
//! Written here rather than left to the cluster connection alone: it
//! passes every command through a task of its own, one more hand-off per
//! command than a plain connection, which cost cluster mode about a fifth
//! of nene's CPU per request (benches/README.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisConnectionInfo, RedisError, RedisFuture, Value};

use super::endpoint::{Address, Endpoint};
use super::tls::TlsConfig;

/// Redirections and refusals a cluster answers for a command it did not
/// run: the cluster connection, which follows them, sends it again.
const NOT_RUN_HERE: &[&str] = &["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"];

/// Slot ranges and their primaries: (first slot, last slot, host, port).
type SlotTable = Vec<(u16, u16, String, u16)>;

/// A cluster connection with a direct way to each slot's primary.
#[derive(Clone)]
pub(super) struct ClusterRoute {
    /// Follows redirections and topology changes; carries what has no key.
    fallback: ClusterConnection,
    /// Slot ranges and their primaries (`CLUSTER SLOTS`), as last read.
    slots: Arc<RwLock<SlotTable>>,
    /// A read of the slot table is under way: the redirections of a slot
    /// migration come in bursts, and one read serves them all.
    reading_slots: Arc<AtomicBool>,
    /// One connection per primary, opened on first use. A plain mutex,
    /// never held across an await: every command looks here.
    nodes: Arc<Mutex<HashMap<(String, u16), MultiplexedConnection>>>,
    /// Credentials and db of every node.
    login: RedisConnectionInfo,
    /// TLS settings for every node (`rediss+cluster://`).
    tls: Option<TlsConfig>,
    /// Bound on opening a node's connection.
    connect_timeout: Duration,
    /// Bound on one command.
    timeout: Duration,
    /// The largest reply read from a node's connection (endpoint.rs).
    max_reply: u64,
}

impl ClusterRoute {
    /// Routes over `fallback`'s cluster; reads the slot table once now (if
    /// that fails, every command takes the cluster connection until a
    /// redirection reads it again).
    pub(super) async fn new(
        fallback: ClusterConnection,
        login: RedisConnectionInfo,
        tls: Option<TlsConfig>,
        connect_timeout: Duration,
        timeout: Duration,
        max_reply: u64,
    ) -> Self {
        let route = ClusterRoute {
            fallback,
            slots: Arc::default(),
            reading_slots: Arc::default(),
            nodes: Arc::default(),
            login,
            tls,
            connect_timeout,
            timeout,
            max_reply,
        };
        route.read_slots().await;
        route
    }

    /// Reads `CLUSTER SLOTS` again, unless a read is under way; keeps the
    /// old table if that fails.
    async fn read_slots(&self) {
        if self.reading_slots.swap(true, Ordering::AcqRel) {
            return;
        }
        // Cleared however this ends: the request may be cancelled (its time
        // bound) while the read is on its way.
        struct Reading<'a>(&'a AtomicBool);
        impl Drop for Reading<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reading = Reading(&self.reading_slots);
        let mut fallback = self.fallback.clone();
        // To a primary: the cluster connection sends a command without a key
        // to any node, and a replica that has stopped answering (seen with a
        // frozen one in the tests) would hold up every reconnect for the
        // whole time bound of the request that reconnects. A stopped
        // primary costs its own slots anyway.
        let slots = redis::cmd("CLUSTER").arg("SLOTS").clone();
        let reply = fallback
            .route_command(
                slots,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
            )
            .await;
        if let Some(table) = reply.ok().as_ref().and_then(parse_slots) {
            *self.slots.write().unwrap_or_else(|p| p.into_inner()) = table;
        }
    }

    /// The primary owning the slot of `key`, as last read.
    fn primary_for(&self, key: &[u8]) -> Option<(String, u16)> {
        let slot = slot_of(key);
        self.slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(start, end, _, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, host, port)| (host.clone(), *port))
    }

    /// The connection to `node`, opened if needed.
    async fn node(&self, node: (String, u16)) -> Result<MultiplexedConnection, RedisError> {
        if let Some(connection) = self.nodes_now().get(&node) {
            return Ok(connection.clone());
        }
        let endpoint = Endpoint {
            address: Address::Tcp {
                host: node.0.clone(),
                port: node.1,
            },
            tls: self.tls.clone(),
            login: self.login.clone(),
            connect_timeout: self.connect_timeout,
        };
        let connection = endpoint.multiplexed(self.timeout, self.max_reply).await?;
        // Two requests may have opened one each: the first stays.
        Ok(self.nodes_now().entry(node).or_insert(connection).clone())
    }

    /// Forgets `node`'s connection after an error on it.
    fn forget(&self, node: &(String, u16)) {
        self.nodes_now().remove(node);
    }

    fn nodes_now(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, u16), MultiplexedConnection>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The key a command of nene's names first: the first of a script's keys,
/// the argument after the name of a single-key command; `None` for a
/// command without one.
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().filter_map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()?;
    if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL") {
        let _script = args.next()?;
        let keys = args.next()?;
        if keys == b"0" {
            return None;
        }
        return args.next();
    }
    let keyed: &[&[u8]] = &[
        b"GET", b"SET", b"DEL", b"EXISTS", b"EXPIRE", b"PEXPIRE", b"TTL", b"PTTL", b"TYPE",
        b"STRLEN",
    ];
    keyed
        .iter()
        .any(|keyed| name.eq_ignore_ascii_case(keyed))
        .then(|| args.next())
        .flatten()
}

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the part
/// between the first `{` and the next `}`, when not empty) or of the whole
/// key, modulo 16384, as the Redis Cluster specification defines it. (The
/// `redis` crate computes it too, but does not tell the number.)
fn slot_of(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|&byte| byte == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&byte| byte == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % 16384
}

/// `CLUSTER SLOTS` as (first slot, last slot, primary host, port).
fn parse_slots(reply: &Value) -> Option<SlotTable> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    ranges
        .iter()
        .map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            let (Value::Int(start), Value::Int(end), Value::Array(primary)) =
                (parts.first()?, parts.get(1)?, parts.get(2)?)
            else {
                return None;
            };
            let host = match primary.first()? {
                Value::BulkString(host) => String::from_utf8(host.clone()).ok()?,
                Value::SimpleString(host) => host.clone(),
                _ => return None,
            };
            let Value::Int(port) = primary.get(1)? else {
                return None;
            };
            Some((
                u16::try_from(*start).ok()?,
                u16::try_from(*end).ok()?,
                host,
                u16::try_from(*port).ok()?,
            ))
        })
        .collect()
}

/// Whether the reply says the command was not run on that node.
fn not_run_here(error: &RedisError) -> bool {
    error
        .code()
        .is_some_and(|code| NOT_RUN_HERE.contains(&code))
}

fn redirected(values: &[Value]) -> bool {
    values.iter().any(
        |value| matches!(value, Value::ServerError(error) if NOT_RUN_HERE.contains(&error.code())),
    )
}

impl ConnectionLike for ClusterRoute {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let Some(node) = first_key(cmd).and_then(|key| self.primary_for(key)) else {
                return self.fallback.req_packed_command(cmd).await;
            };
            let mut connection = self.node(node.clone()).await?;
            // A server's error reply comes back as a value, not an `Err`.
            match connection.req_packed_command(cmd).await {
                Ok(value) if !redirected(std::slice::from_ref(&value)) => Ok(value),
                Err(error) if !not_run_here(&error) => {
                    self.forget(&node);
                    Err(error)
                }
                _ => {
                    let reply = self.fallback.req_packed_command(cmd).await;
                    self.read_slots().await;
                    reply
                }
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let node = pipeline
                .cmd_iter()
                .find_map(first_key)
                .and_then(|key| self.primary_for(key));
            let Some(node) = node else {
                return self
                    .fallback
                    .req_packed_commands(pipeline, offset, count)
                    .await;
            };
            let mut connection = self.node(node.clone()).await?;
            match connection
                .req_packed_commands(pipeline, offset, count)
                .await
            {
                Ok(values) if !redirected(&values) => Ok(values),
                Err(error) if !not_run_here(&error) => {
                    self.forget(&node);
                    Err(error)
                }
                // The slot moved or is moving: a command of it was not run
                // there. What was (a SET before a script the node sent on)
                // is safe to repeat, as every pipeline of nene's is.
                _ => {
                    let reply = self
                        .fallback
                        .req_packed_commands(pipeline, offset, count)
                        .await;
                    self.read_slots().await;
                    reply
                }
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.fallback.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_specification() {
        // The specification's example and values from `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"123456789"), 12739);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        // An empty tag: the whole key is hashed.
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b"foo{bar}{zap}"), slot_of(b"bar"));
    }

    #[test]
    fn the_first_key_of_nene_commands() {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg("abc").arg(2).arg("sess_{x}.lock").arg("other");
        assert_eq!(first_key(&evalsha), Some(&b"sess_{x}.lock"[..]));
        let mut no_keys = redis::cmd("EVALSHA");
        no_keys.arg("abc").arg(0).arg("argument");
        assert_eq!(first_key(&no_keys), None);
        let mut set = redis::cmd("SET");
        set.arg("sess_{x}").arg("data").arg("EX").arg(60);
        assert_eq!(first_key(&set), Some(&b"sess_{x}"[..]));
        assert_eq!(first_key(redis::cmd("WAIT").arg(1).arg(100)), None);
        assert_eq!(first_key(redis::cmd("SCAN").arg(0)), None);
    }
}
