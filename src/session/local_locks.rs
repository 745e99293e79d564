//! The in-process queue for one session: requests of the same session that
//! reach this instance wait here, in arrival order, instead of polling the
//! backend's lock. The backend lock then only arbitrates between instances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use super::error::SessionError;
use super::id::SessionId;

/// One async mutex per session id in use; entries are removed when the last
/// request of that session lets go, so the map holds only live sessions.
#[derive(Default)]
pub struct LocalLocks {
    by_id: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holding this is being the session's current request on this instance.
pub struct LocalTurn {
    guard: Option<OwnedMutexGuard<()>>,
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

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
