//! Sessions in memcached: the data of session `id` is the item
//! `{prefix}{id}` (`sess_{id}` by default; `memc.sess.key.{id}` with
//! `prefix=memc.sess.key.`, as PHP's memcached extension stores it), with
//! flags 0, expiring after `session.gc_maxlifetime`, so gc is a no-op. A
//! request's lock is the item `{prefix}{lock_prefix}{id}` (`lock.` by
//! default, PHP's naming), taken with `add` and released by its holder only
//! (lock.rs).
//!
//! With several servers, an item lives on the server libmemcached's weighted
//! ketama picks for its key without the prefix (ketama.rs), so PHP with
//! `OPT_LIBKETAMA_COMPATIBLE` (sessions:
//! `memcached.sess_consistent_hash_type=ketama_weighted`) finds the same
//! sessions and locks. No server stands in for another: a session whose
//! server is down gets a 503 until it is back.
//!
//! Expiry is sent one second longer than asked (memcached's clock ticks in
//! whole seconds) and as a unix time past 30 days (see `exptime`). A value
//! over the server's item size limit (`-I`) is refused before it is sent,
//! because memcached, refusing it, would also delete the stored session.
//!
//! memcached keeps items in memory only. A restart loses every session, and
//! under memory pressure memcached evicts items (sessions and locks) before
//! they expire: it is a cache, and sessions in it are as safe as that.
//!
//! Waiting for a lock polls with a growing, jittered pause (1 ms to 50 ms):
//! memcached has no notifications, and requests of one session already queue
//! in-process before they reach it, so only other instances poll.
//!
//! Every command is bounded by the DSN's `timeout` (plus `connect_timeout`
//! when a connection is opened); connections are reopened on the next
//! command after a failure (client.rs).
//!
//! The parts: `dsn.rs` (the `memcached://` DSN, parsed in every build so
//! that a build without the `memcached` feature names it), `handler.rs`
//! (the backend), `client.rs` (the text protocol), `ketama.rs` (which server
//! holds a key) and `lock.rs`.

use std::sync::Arc;

use crate::session::SessionSettings;
use crate::session::backend::dsn::SessionDsn;
use crate::session::backend::factory::{BackendKind, Opened};

#[cfg(feature = "memcached")]
mod client;
mod dsn;
#[cfg(feature = "memcached")]
mod handler;
#[cfg(feature = "memcached")]
mod ketama;
#[cfg(feature = "memcached")]
mod lock;

pub use dsn::{MemcachedDsn, MemcachedOptions};
#[cfg(feature = "memcached")]
pub use handler::{MemcachedSessionHandler, MemcachedSetupError};
#[cfg(feature = "memcached")]
use handler::{failure_to_error, unexpected};

/// The factory's row for memcached.
pub(crate) const KIND: BackendKind = BackendKind::new(dsn::SCHEMES, dsn::FORMS, dsn::parse, open);

/// The memcached backend, when this build has it.
#[cfg(feature = "memcached")]
fn open(parsed: &SessionDsn, settings: &SessionSettings) -> Opened {
    Ok(Arc::new(
        MemcachedSessionHandler::new(parsed, settings.lifetime())?.with_max_size(settings.max_size),
    ))
}

#[cfg(not(feature = "memcached"))]
fn open(parsed: &SessionDsn, _settings: &SessionSettings) -> Opened {
    use crate::session::backend::factory::SessionSetupError;
    Err(SessionSetupError::not_compiled(
        parsed,
        "memcached",
        "memcached",
    ))
}
