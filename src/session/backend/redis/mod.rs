//! Sessions in Redis (docs/decisions/0006): the data of session `id` is a plain string
//! under `{prefix}{id}` (`sess_{id}` by default) that Redis expires after
//! `session.gc_maxlifetime` seconds, so gc is a no-op. A request's lock is a
//! second key, `{prefix}{id}.lock` (the `lock_suffix` option; phpredis names
//! it `_LOCK`), holding a random token. While requests of other instances
//! wait for it, a third, `{prefix}{id}.lock.waiters`, lists them, and a
//! release hands the lock to the first (release_notices.rs, scripts.rs).
//!
//! Redis may be down when nene starts, stall, or restart under it. None of
//! that may stop nene or hang a request: the connection is opened on first
//! use, reopened by itself after a failure, and every command is bounded by
//! the DSN's `timeout` (plus `connect_timeout` while a connection is being
//! opened). A request that cannot reach Redis gets an error (a 503), and the
//! next one tries again.
//!
//! Redis may also close a connection under nene: its own `timeout` setting
//! for idle clients, `CLIENT KILL`, a proxy or a load balancer that drops
//! idle connections. A command that failed that way (not a timeout, not an
//! error reply) is sent once more on a fresh connection: every command here
//! is safe to repeat (see `CHECKED_SAVE_SCRIPT` for the one that needs care).
//! Nothing keeps idle connections alive: the retry costs one reconnect after
//! an idle period, a keep-alive ping would cost traffic on every idle
//! connection and still lose to a proxy with a shorter idle limit.
//!
//! A key that holds something nene cannot use (a hash, a value over
//! `session.max_size`) is reported as [`Stored::Unreadable`], never loaded:
//! the lock is still taken, so the request goes on with an empty session.
//!
//! The parts: `dsn.rs` (the Redis DSNs, parsed in every build), `handler.rs`
//! (the backend), `connection.rs`, `endpoint.rs`, `bounded_replies.rs`,
//! `tls.rs`, `sentinel.rs`, `cluster_route.rs` (reaching the server),
//! `scripts.rs`, `lock.rs`, `release_notices.rs`, `touched_read.rs` (the
//! lock and what is done under it) and `listing.rs` (`nene sessions copy`).

use std::sync::Arc;

use crate::session::SessionSettings;
use crate::session::backend::dsn::SessionDsn;
use crate::session::backend::factory::{BackendKind, Opened, SessionSetupError};

#[cfg(feature = "redis")]
mod bounded_replies;
#[cfg(feature = "redis-cluster")]
mod cluster_route;
#[cfg(feature = "redis")]
mod connection;
mod dsn;
#[cfg(feature = "redis")]
mod endpoint;
#[cfg(feature = "redis")]
mod handler;
#[cfg(feature = "redis")]
mod listing;
#[cfg(feature = "redis")]
mod lock;
#[cfg(feature = "redis")]
mod release_notices;
#[cfg(feature = "redis")]
mod scripts;
#[cfg(feature = "redis")]
mod sentinel;
#[cfg(feature = "redis")]
mod tls;
#[cfg(feature = "redis")]
mod touched_read;

pub use dsn::{RedisAddress, RedisDsn, RedisOptions};
#[cfg(feature = "redis")]
use handler::BACKEND;
#[cfg(feature = "redis")]
pub use handler::{RedisSessionHandler, RedisSetupError};

/// The factory's row for Redis.
pub(crate) const KIND: BackendKind = BackendKind::new(dsn::SCHEMES, dsn::FORMS, dsn::parse, open);

/// The Redis backend, unless the DSN asks for what this build left out:
/// Cluster (`redis-cluster`), TLS (`redis-tls`) or Redis itself (`redis`).
fn open(parsed: &SessionDsn, settings: &SessionSettings) -> Opened {
    let address = parsed.redis().map(|redis| &redis.address);
    // The most specific first: `redis-cluster` and `redis-tls` bring
    // `redis` in with them.
    let missing = if matches!(address, Some(RedisAddress::Cluster { .. }))
        && !cfg!(feature = "redis-cluster")
    {
        Some(("Redis Cluster", "redis-cluster"))
    } else if address.is_some_and(RedisAddress::tls) && !cfg!(feature = "redis-tls") {
        Some(("Redis over TLS", "redis-tls"))
    } else if !cfg!(feature = "redis") {
        Some(("Redis", "redis"))
    } else {
        None
    };
    if let Some((backend, feature)) = missing {
        return Err(SessionSetupError::not_compiled(parsed, backend, feature));
    }
    compiled(parsed, settings)
}

#[cfg(feature = "redis")]
fn compiled(parsed: &SessionDsn, settings: &SessionSettings) -> Opened {
    Ok(Arc::new(
        RedisSessionHandler::new(parsed, settings.lifetime())?.with_max_size(settings.max_size),
    ))
}

#[cfg(not(feature = "redis"))]
fn compiled(_parsed: &SessionDsn, _settings: &SessionSettings) -> Opened {
    unreachable!("`open` refuses every Redis DSN when the `redis` feature is off")
}
