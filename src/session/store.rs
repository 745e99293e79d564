//! Everything the session life cycle needs, built once at start-up: the
//! backend, the codec, the id format, the cookie, the in-process queue and
//! the `[session]` settings.

use std::sync::Arc;
use std::time::Duration;

use crate::config::SessionSettings;

use super::codec::SessionCodec;
use super::cookie::SessionCookie;
use super::handler::SessionHandler;
use super::id::SessionIdFormat;
use super::local_locks::LocalLocks;
use super::metrics::SessionMetrics;
use super::rejected_ids::RejectedIds;

/// How long a request waits its turn behind other requests of the same
/// session on this instance before it gets a 503.
pub const LOCAL_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Shared by every request through the session layer; read-only apart from
/// its queues and counters.
pub struct SessionStore {
    /// The backend the DSN chose: where session data and locks live.
    pub handler: Arc<dyn SessionHandler>,
    /// How session data becomes the bytes the backend stores.
    pub codec: Arc<dyn SessionCodec>,
    /// Makes new ids and checks the shape of ids cookies bring.
    pub ids: SessionIdFormat,
    /// Reads the session id from a request and writes the `Set-Cookie`.
    pub cookie: SessionCookie,
    /// The `[session]` settings (lifetimes, gc chance, cache limiter, …).
    pub settings: SessionSettings,
    /// Same-session requests on this instance queue here.
    pub local_locks: Arc<LocalLocks>,
    /// How long to wait in that queue.
    pub lock_wait: Duration,
    /// Counters for the status page.
    pub metrics: SessionMetrics,
    /// Rate-limited warnings about ids `use_strict_mode` refused.
    pub rejected_ids: RejectedIds,
}

impl SessionStore {
    /// A store around `handler`, with an empty local queue, zeroed counters
    /// and the default local lock wait ([`LOCAL_LOCK_WAIT`]).
    pub fn new(
        handler: Arc<dyn SessionHandler>,
        codec: Arc<dyn SessionCodec>,
        ids: SessionIdFormat,
        cookie: SessionCookie,
        settings: SessionSettings,
    ) -> Self {
        Self {
            handler,
            codec,
            ids,
            cookie,
            settings,
            local_locks: Arc::new(LocalLocks::default()),
            lock_wait: LOCAL_LOCK_WAIT,
            metrics: SessionMetrics::default(),
            rejected_ids: RejectedIds::default(),
        }
    }
}
