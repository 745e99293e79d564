//! Group commit for one busy session. While requests of a session queue on
//! this instance and pass its lock along (see `local_locks.rs`), each one
//! queues its new data, hands it to its successor at once, and only then
//! waits for the write. Writes run one at a time in a task of their own and
//! each stores the newest data queued, so one write can confirm several
//! requests and the backend's round trip is no longer paid once per request
//! in turn.
//!
//! A request answers only after a write that includes its change succeeded.
//! When a write fails, the chain breaks: every request whose change was not
//! yet stored fails with it (their changes build on each other), and the
//! next request reads the backend afresh.
//!
//! The chain owns the session's backend lock and releases it only when no
//! write is in flight (the writer task keeps the chain alive), so another
//! instance can never take the lock, write, and then be overwritten by a
//! late write from here. The request that ends a run of hand-offs queues
//! its data as the last version ([`WriteChain::queue_last`]): the write of
//! that version also releases the lock, in the same round trip where the
//! backend can (Redis), so the session is free one write sooner than if
//! that request waited for the queued writes and then saved and unlocked
//! on its own.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

use crate::session::backend::{SessionHandler, SessionLock};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

/// The queued writes of one session and the lock they are made under.
pub struct WriteChain {
    handler: Arc<dyn SessionHandler>,
    id: SessionId,
    state: Mutex<Queue>,
    progress: watch::Sender<Progress>,
}

struct Queue {
    /// The session's backend lock, held for the whole chain.
    lock: SessionLock,
    /// The newest version queued (versions count up from 1).
    newest: u64,
    /// The newest version's data, until a write takes it.
    unwritten: Option<Bytes>,
    /// A writer task is running.
    writing: bool,
    /// The newest version is the last of this chain: its write releases
    /// the lock.
    last: bool,
}

#[derive(Clone, Debug, Default)]
struct Progress {
    /// Every version up to this one is stored.
    stored: u64,
    /// Why the chain broke: versions after `stored` never will be.
    broken: Option<Arc<str>>,
}

impl WriteChain {
    /// A chain for session `id`, holding its backend `lock`.
    pub fn new(handler: Arc<dyn SessionHandler>, id: SessionId, lock: SessionLock) -> Arc<Self> {
        Arc::new(Self {
            handler,
            id,
            state: Mutex::new(Queue {
                lock,
                newest: 0,
                unwritten: None,
                writing: false,
                last: false,
            }),
            progress: watch::Sender::new(Progress::default()),
        })
    }

    /// A write failed; data handed along this chain may build on a change
    /// that was never stored.
    pub fn is_broken(&self) -> bool {
        self.progress.borrow().broken.is_some()
    }

    /// Queues `data` as the session's newest version and starts a writer if
    /// none runs. Returns the version to [`wait_stored`](Self::wait_stored) for.
    pub fn queue(self: &Arc<Self>, data: Bytes) -> Result<u64, SessionError> {
        self.queue_version(data, false)
    }

    /// Queues `data` like [`queue`](Self::queue), as the chain's last
    /// version: nobody of the session waits here to take it on, and the
    /// write that stores it also releases the lock. Queue nothing after it.
    pub fn queue_last(self: &Arc<Self>, data: Bytes) -> Result<u64, SessionError> {
        self.queue_version(data, true)
    }

    fn queue_version(self: &Arc<Self>, data: Bytes, last: bool) -> Result<u64, SessionError> {
        let (version, start_writer) = {
            // Checked under the queue's lock, which a failing writer holds
            // while it marks the chain broken: nothing built on a failed
            // write can slip in behind it.
            let mut queue = self.queue_state();
            if let Some(reason) = &self.progress.borrow().broken {
                return Err(self.failure(reason));
            }
            queue.newest += 1;
            queue.unwritten = Some(data);
            queue.last = last;
            let start_writer = !queue.writing;
            queue.writing = true;
            (queue.newest, start_writer)
        };
        if start_writer {
            // A task of its own: a request cancelled while it waits must
            // not stop the writes other requests wait for.
            tokio::spawn(self.clone().write_queued());
        }
        Ok(version)
    }

    /// Waits until `version` is stored, or fails if the chain broke first.
    pub async fn wait_stored(&self, version: u64) -> Result<(), SessionError> {
        let mut progress = self.progress.subscribe();
        let settled = progress
            .wait_for(|p| p.stored >= version || p.broken.is_some())
            .await
            .map(|p| p.clone());
        match settled {
            Ok(p) if p.stored >= version => Ok(()),
            Ok(Progress {
                broken: Some(reason),
                ..
            }) => Err(self.failure(&reason)),
            // The sender lives in `self`, so it cannot be gone.
            _ => unreachable!("the chain outlives its waiters"),
        }
    }

    /// Waits for every queued write, then gives the lock back to the caller,
    /// who must be the session's current request (nobody else can queue).
    /// On a broken chain the lock stays here and is released when the chain
    /// is dropped.
    pub async fn settle(&self) -> Result<SessionLock, SessionError> {
        let newest = self.queue_state().newest;
        self.wait_stored(newest).await?;
        Ok(std::mem::replace(
            &mut self.queue_state().lock,
            SessionLock::none(),
        ))
    }

    /// The writer: stores the newest data queued until none is left.
    async fn write_queued(self: Arc<Self>) {
        loop {
            let (version, data, unlock) = {
                let mut queue = self.queue_state();
                match queue.unwritten.take() {
                    Some(data) => {
                        let unlock = queue
                            .last
                            .then(|| std::mem::replace(&mut queue.lock, SessionLock::none()));
                        (queue.newest, data, unlock)
                    }
                    None => {
                        queue.writing = false;
                        return;
                    }
                }
            };
            let written = match unlock {
                // The backend releases the lock even when the write fails.
                Some(lock) => {
                    self.handler
                        .save_and_unlock(&self.id, Some(data), lock)
                        .await
                }
                None => self.handler.write(&self.id, data).await,
            };
            match written {
                Ok(()) => self.progress.send_modify(|p| p.stored = version),
                Err(error) => {
                    let mut queue = self.queue_state();
                    queue.unwritten = None;
                    queue.writing = false;
                    self.progress
                        .send_modify(|p| p.broken = Some(error.to_string().into()));
                    drop(queue);
                    return;
                }
            }
        }
    }

    fn queue_state(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failure(&self, reason: &str) -> SessionError {
        SessionError::Backend {
            backend: self.handler.name(),
            operation: "write",
            message: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The chain's rules against a backend whose writes the test holds up,
    //! fails and records (the real backends run through it in the session
    //! tests).

    use std::any::Any;
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::session::HeldLock;
    use crate::session::SessionIdFormat;

    /// Writes wait for a permit; everything done is logged in order.
    struct HeldUpBackend {
        permits: Arc<Semaphore>,
        fail: std::sync::atomic::AtomicBool,
        log: Arc<Mutex<Vec<String>>>,
    }

    struct LoggedLock(Arc<Mutex<Vec<String>>>);

    #[async_trait]
    impl HeldLock for LoggedLock {
        async fn release(self: Box<Self>) -> Result<(), SessionError> {
            self.0.lock().unwrap().push("release".into());
            Ok(())
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
            self
        }
    }

    #[async_trait]
    impl SessionHandler for HeldUpBackend {
        fn name(&self) -> &'static str {
            "held-up"
        }
        async fn lock_within(
            &self,
            _: &SessionId,
            _: std::time::Duration,
        ) -> Result<SessionLock, SessionError> {
            unimplemented!()
        }
        async fn read(&self, _: &SessionId) -> Result<crate::session::Stored, SessionError> {
            unimplemented!()
        }
        async fn write(&self, _: &SessionId, data: Bytes) -> Result<(), SessionError> {
            self.permits.acquire().await.unwrap().forget();
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(SessionError::Corrupt("disk on fire".into()));
            }
            let text = String::from_utf8_lossy(&data).to_string();
            self.log.lock().unwrap().push(format!("write {text}"));
            Ok(())
        }
        async fn touch(&self, _: &SessionId) -> Result<(), SessionError> {
            unimplemented!()
        }
        async fn destroy(&self, _: &SessionId) -> Result<(), SessionError> {
            unimplemented!()
        }
        async fn exists(&self, _: &SessionId) -> Result<bool, SessionError> {
            unimplemented!()
        }
        async fn gc(&self) -> Result<u64, SessionError> {
            Ok(0)
        }
        async fn ping(&self) -> Result<(), SessionError> {
            Ok(())
        }
    }

    fn chain() -> (Arc<WriteChain>, Arc<HeldUpBackend>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let backend = Arc::new(HeldUpBackend {
            permits: Arc::new(Semaphore::new(0)),
            fail: Default::default(),
            log: log.clone(),
        });
        let id = SessionIdFormat::new(32, 5).unwrap().generate();
        let lock = SessionLock::held(Box::new(LoggedLock(log)));
        (WriteChain::new(backend.clone(), id, lock), backend)
    }

    fn log(backend: &HeldUpBackend) -> Vec<String> {
        backend.log.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn versions_queued_during_a_write_are_stored_by_one_more_write() {
        let (chain, backend) = chain();
        let first = chain.queue(Bytes::from("1")).unwrap();
        tokio::task::yield_now().await; // the writer takes "1"
        let second = chain.queue(Bytes::from("2")).unwrap();
        let third = chain.queue(Bytes::from("3")).unwrap();
        backend.permits.add_permits(10);
        chain.wait_stored(third).await.unwrap();
        chain.wait_stored(first).await.unwrap();
        chain.wait_stored(second).await.unwrap();
        assert_eq!(log(&backend), ["write 1", "write 3"]);
    }

    #[tokio::test]
    async fn the_last_version_is_written_with_the_unlock_after_the_write_in_flight() {
        let (chain, backend) = chain();
        let first = chain.queue(Bytes::from("1")).unwrap();
        tokio::task::yield_now().await; // the writer takes "1"
        let second = chain.queue(Bytes::from("2")).unwrap();
        let last = chain.queue_last(Bytes::from("3")).unwrap();
        backend.permits.add_permits(10);
        chain.wait_stored(last).await.unwrap();
        chain.wait_stored(first).await.unwrap();
        chain.wait_stored(second).await.unwrap();
        // "2" is in "3"; the lock went with the last write, while the
        // chain is still alive, and nothing is left to settle.
        assert_eq!(log(&backend), ["write 1", "write 3", "release"]);
        assert!(!chain.settle().await.unwrap().is_held());
    }

    #[tokio::test]
    async fn a_failed_last_write_still_releases_the_lock() {
        let (chain, backend) = chain();
        backend
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let last = chain.queue_last(Bytes::from("1")).unwrap();
        backend.permits.add_permits(1);
        assert!(chain.wait_stored(last).await.is_err());
        assert_eq!(log(&backend), ["release"]);
    }

    #[tokio::test]
    async fn a_failed_write_fails_every_version_not_yet_stored_and_all_later_ones() {
        let (chain, backend) = chain();
        let first = chain.queue(Bytes::from("1")).unwrap();
        backend.permits.add_permits(1);
        chain.wait_stored(first).await.unwrap();
        backend
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let second = chain.queue(Bytes::from("2")).unwrap();
        tokio::task::yield_now().await;
        let third = chain.queue(Bytes::from("3")).unwrap();
        backend.permits.add_permits(10);
        assert!(chain.wait_stored(second).await.is_err());
        assert!(chain.wait_stored(third).await.is_err());
        assert!(chain.is_broken());
        assert!(chain.queue(Bytes::from("4")).is_err());
        assert!(
            chain.settle().await.is_err(),
            "a broken chain keeps its lock"
        );
        assert_eq!(log(&backend), ["write 1"]);
    }

    #[tokio::test]
    async fn the_lock_is_released_only_after_the_write_in_flight() {
        let (chain, backend) = chain();
        chain.queue(Bytes::from("1")).unwrap();
        tokio::task::yield_now().await;
        drop(chain); // every request let go; the writer still holds it
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(log(&backend).is_empty(), "{:?}", log(&backend));
        backend.permits.add_permits(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(log(&backend), ["write 1", "release"]);
    }

    #[tokio::test]
    async fn settle_waits_for_every_queued_write_then_returns_the_lock() {
        let (chain, backend) = chain();
        chain.queue(Bytes::from("1")).unwrap();
        let settling = tokio::spawn({
            let chain = chain.clone();
            async move { chain.settle().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!settling.is_finished());
        backend.permits.add_permits(1);
        let lock = settling.await.unwrap().unwrap();
        assert!(lock.is_held());
        assert_eq!(log(&backend), ["write 1"]);
        lock.release().await.unwrap();
        assert_eq!(log(&backend), ["write 1", "release"]);
    }
}
