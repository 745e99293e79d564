//! Everything the session life cycle needs, built once at start-up: the
//! backend, the codec, the id format, the cookie, the in-process queue and
//! the `[session]` settings.

use std::sync::Arc;
use std::time::Duration;

use crate::session::SessionSettings;

use crate::session::backend::SessionHandler;
use crate::session::format::SessionCodec;
use crate::session::id::SessionIdFormat;
use crate::session::lifecycle::cookie::SessionCookie;
use crate::session::lifecycle::local_locks::LocalLocks;
use crate::session::lifecycle::metrics::SessionMetrics;
use crate::session::lifecycle::rejected_ids::RejectedIds;

/// The session half of the runtime, built once at start-up and shared by
/// every request through the session layer: the backend, the format, ids,
/// the cookie, settings, the in-process queue and counters. Read-only apart
/// from its queues and counters; the life cycle reads its fields directly,
/// everything else through the accessors below.
pub struct SessionRuntime {
    /// The backend the DSN chose: where session data and locks live.
    pub(super) handler: Arc<dyn SessionHandler>,
    /// How session data becomes the bytes the backend stores.
    pub(super) codec: Arc<dyn SessionCodec>,
    /// Makes new ids and checks the shape of ids cookies bring.
    pub(super) ids: SessionIdFormat,
    /// Reads the session id from a request and writes the `Set-Cookie`.
    pub(super) cookie: SessionCookie,
    /// The `[session]` settings (lifetimes, gc chance, cache limiter, …).
    pub(super) settings: SessionSettings,
    /// Same-session requests on this instance queue here.
    pub(super) local_locks: Arc<LocalLocks>,
    /// How long to wait in that queue.
    pub(super) lock_wait: Duration,
    /// Counters for the status page.
    pub(super) metrics: SessionMetrics,
    /// Rate-limited warnings about ids `use_strict_mode` refused.
    pub(super) rejected_ids: RejectedIds,
}

impl SessionRuntime {
    /// A store around `handler`, with an empty local queue, zeroed counters
    /// and the backend's lock wait for the in-process queue too.
    pub fn new(
        handler: Arc<dyn SessionHandler>,
        codec: Arc<dyn SessionCodec>,
        ids: SessionIdFormat,
        cookie: SessionCookie,
        settings: SessionSettings,
    ) -> Self {
        Self {
            lock_wait: handler.lock_wait(),
            handler,
            codec,
            ids,
            cookie,
            settings,
            local_locks: Arc::new(LocalLocks::default()),
            metrics: SessionMetrics::default(),
            rejected_ids: RejectedIds::default(),
        }
    }
}

impl SessionRuntime {
    /// The backend sessions live in.
    pub fn handler(&self) -> &Arc<dyn SessionHandler> {
        &self.handler
    }

    /// The id format: makes new ids and checks the ones cookies bring.
    pub fn ids(&self) -> &SessionIdFormat {
        &self.ids
    }

    /// Session counters, for the status page.
    pub fn metrics(&self) -> &SessionMetrics {
        &self.metrics
    }

    /// Sessions with a request in progress or queued on this instance.
    pub fn locked_sessions(&self) -> usize {
        self.local_locks.len()
    }
}
