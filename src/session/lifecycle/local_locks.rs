//! The in-process queue for one session: requests of the same session that
//! reach this instance wait here, in arrival order, instead of polling the
//! backend's lock. The backend lock then only arbitrates between instances.
//!
//! A request that finishes while others of its session wait hands the next
//! one its data and its backend lock, inside a [`WriteChain`] ([`HandOff`]):
//! the next request starts without a round trip to the backend, since
//! nobody else can change a session whose lock is held all along.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::OwnedMutexGuard;

use crate::session::error::SessionError;
use crate::session::id::SessionId;
use crate::session::lifecycle::write_chain::WriteChain;

/// One async mutex per session id in use; entries are removed when the last
/// request of that session lets go, so the map holds only live sessions.
/// The mutex holds what the previous request handed over, if anything;
/// removing the entry drops it, and the chain releases its lock once its
/// last write is done.
#[derive(Default)]
pub struct LocalLocks {
    by_id: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<Option<HandOff>>>>>,
}

/// What a finished request leaves to the next one of its session.
pub struct HandOff {
    /// The session's data as the request that handed over left it (queued
    /// in `chain`, maybe not stored yet).
    pub data: Bytes,
    /// The writes of the session so far, and its backend lock.
    pub chain: Arc<WriteChain>,
    /// When the backend lock was taken, to bound how long it is passed on.
    pub locked_at: Instant,
}

/// Holding this is being the session's current request on this instance.
pub struct LocalTurn {
    guard: Option<OwnedMutexGuard<Option<HandOff>>>,
    /// This request had to queue behind another of its session.
    pub waited: bool,
    id: SessionId,
    locks: Arc<LocalLocks>,
}

impl LocalLocks {
    /// Waits (at most `wait`) for the session's turn.
    pub async fn acquire(
        self: &Arc<Self>,
        id: &SessionId,
        wait: Duration,
    ) -> Result<LocalTurn, SessionError> {
        let mutex = {
            let mut by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
            by_id.entry(id.clone()).or_default().clone()
        };
        // Created before waiting, so that a cancelled or timed-out wait
        // still tidies the map when `turn` drops.
        let mut turn = LocalTurn {
            guard: None,
            waited: false,
            id: id.clone(),
            locks: self.clone(),
        };
        if let Ok(guard) = mutex.clone().try_lock_owned() {
            turn.guard = Some(guard);
            return Ok(turn);
        }
        turn.waited = true;
        let waited = tokio::time::timeout(wait, mutex.lock_owned()).await;
        match waited {
            Ok(guard) => {
                turn.guard = Some(guard);
                Ok(turn)
            }
            Err(_) => Err(SessionError::LockTimeout {
                id_tag: id.log_tag(),
                waited: wait,
            }),
        }
    }

    /// Sessions with a request in progress or queued here (the status page's
    /// "locked sessions").
    pub fn len(&self) -> usize {
        self.by_id.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session has a request in progress or queued here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LocalTurn {
    /// What the previous request of this session handed over, if anything.
    pub fn take_hand_off(&mut self) -> Option<HandOff> {
        self.guard.as_mut()?.take()
    }

    /// Leaves `hand_off` to the next request of this session.
    pub fn hand_over(&mut self, hand_off: HandOff) {
        if let Some(guard) = self.guard.as_mut() {
            **guard = Some(hand_off);
        }
    }

    /// Whether other requests of this session wait (or are arriving) here.
    /// A hint: one may time out before its turn, which only means a lock
    /// handed over is released a little later, when the queue empties.
    pub fn others_waiting(&self) -> bool {
        // The map holds one reference and this turn's guard another; every
        // other is a request on its way to the mutex.
        self.guard
            .as_ref()
            .is_some_and(|guard| Arc::strong_count(OwnedMutexGuard::mutex(guard)) > 2)
    }
}

impl Drop for LocalTurn {
    fn drop(&mut self) {
        let mut by_id = self.locks.by_id.lock().unwrap_or_else(|p| p.into_inner());
        self.guard.take();
        // Only the map's own reference left: nobody holds or waits for it.
        if let Some(mutex) = by_id.get(&self.id)
            && Arc::strong_count(mutex) == 1
        {
            by_id.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionIdFormat;

    #[tokio::test]
    async fn requests_of_one_session_take_turns_and_the_map_empties() {
        let locks = Arc::new(LocalLocks::default());
        let id = SessionIdFormat::new(32, 5).unwrap().generate();
        let first = locks.acquire(&id, Duration::from_secs(1)).await.unwrap();
        let waiting = {
            let locks = locks.clone();
            let id = id.clone();
            tokio::spawn(
                async move { locks.acquire(&id, Duration::from_secs(5)).await.map(|_| ()) },
            )
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second request must wait");
        drop(first);
        waiting.await.unwrap().unwrap();
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_wait_beyond_the_bound_is_a_lock_timeout() {
        let locks = Arc::new(LocalLocks::default());
        let id = SessionIdFormat::new(32, 5).unwrap().generate();
        let _held = locks.acquire(&id, Duration::from_secs(1)).await.unwrap();
        let result = locks.acquire(&id, Duration::from_millis(50)).await;
        assert!(matches!(result, Err(SessionError::LockTimeout { .. })));
        assert_eq!(locks.len(), 1);
    }
}
