//! Group commit for one busy session. While requests of a session queue on
//! this instance and pass its lock along (see `local_locks.rs`), each one
//! queues its new data, hands it to its successor at once, and only then
//! waits for the write. Writes run one at a time (but see below) in a task
//! of their own and each stores the newest data queued, so one write can
//! confirm several requests and the backend's round trip is no longer paid
//! once per request in turn.
//!
//! A request answers only after a write that includes its change succeeded.
//! When a write fails, the chain breaks: every request whose change was not
//! yet stored fails with it (their changes build on each other), and the
//! next request reads the backend afresh.
//!
//! The chain owns the session's backend lock and releases it only after
//! every write of the chain (the writer task keeps the chain alive), so
//! another instance can never take the lock, write, and then be
//! overwritten by a late write from here. The request that ends a run of
//! hand-offs queues its data as the last version
//! ([`WriteChain::queue_last`]): the write of that version also releases
//! the lock, in the same round trip where the backend can (Redis), so the
//! session is free one write sooner than if that request waited for the
//! queued writes and then saved and unlocked on its own.
//!
//! Every write of a chain goes through the lock ([`HeldLock::write`]) and
//! is stored only while the lock is still the chain's (a fenced write
//! where the backend has one): a write delayed past the release (a slow or
//! dropped connection, a retry) stores nothing, so it can never overwrite
//! what a later holder wrote.
//!
//! Where the lock allows it ([`HeldLock::sends_last_write_behind`]: its
//! writes are fenced), that last write does not wait for the write
//! in flight but goes out right behind it, so a turn of a session two
//! instances share ends one more round trip sooner (benches/two_instances.sh:
//! round robin 0.78× → 0.90× of pinned). It is the only time two writes of
//! a chain are in flight.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use crate::session::backend::{HeldLock, SessionHandler, SessionLock};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

/// The queued writes of one session and the lock they are made under.
pub struct WriteChain {
    handler: Arc<dyn SessionHandler>,
    id: SessionId,
    state: Mutex<Queue>,
    progress: watch::Sender<Progress>,
    /// The held lock, which the chain's writes go through (a fenced write,
    /// stored only while the lock is still the chain's); its guard stays
    /// in the queue. `None` without a lock (locking off): writes are then
    /// the backend's plain ones.
    writer: Option<Arc<dyn HeldLock>>,
    /// The lock lets the last write go out behind the write in flight
    /// ([`HeldLock::sends_last_write_behind`]).
    sends_behind: bool,
    /// Told when the last version is queued while a write is in flight.
    last_queued: Notify,
}

/// A version a writer took from the queue.
struct Unwritten {
    version: u64,
    data: Bytes,
    /// The lock, when this is the chain's last version.
    unlock: Option<SessionLock>,
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

impl Queue {
    /// The newest data queued, with the lock when it is the last version.
    fn take(&mut self) -> Option<Unwritten> {
        let data = self.unwritten.take()?;
        let unlock = self
            .last
            .then(|| std::mem::replace(&mut self.lock, SessionLock::none()));
        Some(Unwritten {
            version: self.newest,
            data,
            unlock,
        })
    }
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
        let writer = lock.shared();
        let sends_behind = lock.sends_last_write_behind();
        Arc::new(Self {
            handler,
            id,
            writer,
            sends_behind,
            last_queued: Notify::new(),
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
        if last && !start_writer {
            self.last_queued.notify_one();
        }
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
        while let Some(next) = self.take_unwritten() {
            let written = match next.unlock {
                // The backend releases the lock even when the write fails.
                Some(lock) => {
                    lock.save_and_release(&*self.handler, &self.id, Some(next.data))
                        .await
                }
                None if self.sends_behind => {
                    if self.write_with_the_last_behind(next).await {
                        continue;
                    }
                    return;
                }
                None => self.write(next.data).await,
            };
            if !self.settle_write(next.version, written) {
                return;
            }
        }
    }

    /// One write of the chain, through the lock while it holds one.
    async fn write(&self, data: Bytes) -> Result<(), SessionError> {
        match &self.writer {
            Some(lock) => lock.write(&self.id, data).await,
            None => self.handler.write(&self.id, data).await,
        }
    }

    /// Writes `next`; if the chain's last version is queued while that
    /// write is unanswered, its write (which releases the lock) is sent at
    /// once behind it instead of a round trip later. Both are fenced by the
    /// lock ([`HeldLock::write`]): should the first arrive after the last
    /// (another connection, a retry), the lock has moved on and it stores
    /// nothing. True when the writer goes on with what was queued
    /// meanwhile; false when the chain ended or broke.
    async fn write_with_the_last_behind(&self, next: Unwritten) -> bool {
        let write = self.write(next.data);
        tokio::pin!(write);
        let (last_version, data, lock) = tokio::select! {
            biased;
            written = &mut write => return self.settle_write(next.version, written),
            () = self.last_queued.notified() => match self.take_last() {
                Some(last) => last,
                // Only `queue_last` notifies; should the last version not
                // be there, it is written after this one, as without notice.
                None => return self.settle_write(next.version, write.await),
            },
        };
        // Biased: `write` went out first (it was polled before the notice
        // came) and, should both wait for a connection being opened, it is
        // polled first again, so it is normally applied first; the fence
        // makes the other order safe too.
        let (written, last_written) = tokio::join!(
            biased;
            write,
            lock.save_and_release(&*self.handler, &self.id, Some(data))
        );
        // The last version holds every change before it: once it is
        // stored, so is `next`, whatever became of its own write.
        if last_written.is_err() && written.is_ok() {
            self.settle_write(next.version, written);
        }
        self.settle_write(last_version, last_written);
        false
    }

    /// Takes the last version queued and the lock, if it is the last one
    /// that is queued.
    fn take_last(&self) -> Option<(u64, Bytes, SessionLock)> {
        let mut queue = self.queue_state();
        if !queue.last {
            return None;
        }
        let Unwritten {
            version,
            data,
            unlock,
        } = queue.take()?;
        Some((version, data, unlock?))
    }

    /// Takes the newest data queued, with the lock when it is the last
    /// version; `None` (and the writer stops) when nothing is queued.
    fn take_unwritten(&self) -> Option<Unwritten> {
        let mut queue = self.queue_state();
        let next = queue.take();
        if next.is_none() {
            queue.writing = false;
        }
        next
    }

    /// Records how the write of `version` went; false when it failed and
    /// the chain broke.
    fn settle_write(&self, version: u64, written: Result<(), SessionError>) -> bool {
        match written {
            Ok(()) => {
                self.progress.send_modify(|p| p.stored = version);
                true
            }
            Err(error) => {
                let mut queue = self.queue_state();
                queue.unwritten = None;
                queue.writing = false;
                self.progress
                    .send_modify(|p| p.broken = Some(error.to_string().into()));
                false
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

    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::session::HeldLock;
    use crate::session::SessionIdFormat;

    /// Writes wait for a permit; everything done is logged in order.
    struct HeldUpBackend {
        permits: Arc<Semaphore>,
        fail: AtomicBool,
        /// Only the write of this data fails.
        fail_only: Mutex<Option<&'static str>>,
        /// What the lock's `sends_last_write_behind` answers.
        behind: bool,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        log: Arc<Mutex<Vec<String>>>,
    }

    /// The backend's lock: writes go to the backend, the release is logged.
    struct LoggedLock(Arc<HeldUpBackend>);

    #[async_trait]
    impl HeldLock for LoggedLock {
        async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
            self.0.write(id, data).await
        }
        async fn destroy(&self, _: &SessionId) -> Result<(), SessionError> {
            unimplemented!()
        }
        async fn save_and_release(
            self: Arc<Self>,
            id: &SessionId,
            data: Option<Bytes>,
        ) -> Result<(), SessionError> {
            let saved = self.0.write(id, data.unwrap()).await;
            self.0.log.lock().unwrap().push("release".into());
            saved
        }
        async fn release(self: Arc<Self>) -> Result<(), SessionError> {
            self.0.log.lock().unwrap().push("release".into());
            Ok(())
        }
        fn sends_last_write_behind(&self) -> bool {
            self.0.behind
        }
    }

    #[async_trait]
    impl SessionHandler for HeldUpBackend {
        fn name(&self) -> &'static str {
            "held-up"
        }
        async fn lock_and_read(
            self: Arc<Self>,
            _: &SessionId,
            _: std::time::Duration,
        ) -> crate::session::backend::LockedRead {
            unimplemented!()
        }
        async fn read(&self, _: &SessionId) -> Result<crate::session::Stored, SessionError> {
            unimplemented!()
        }
        async fn write(&self, _: &SessionId, data: Bytes) -> Result<(), SessionError> {
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most_in_flight.fetch_max(now, SeqCst);
            self.permits.acquire().await.unwrap().forget();
            self.in_flight.fetch_sub(1, SeqCst);
            let text = String::from_utf8_lossy(&data).to_string();
            if self.fail.load(SeqCst) || *self.fail_only.lock().unwrap() == Some(text.as_str()) {
                return Err(SessionError::Corrupt("disk on fire".into()));
            }
            self.log.lock().unwrap().push(format!("write {text}"));
            Ok(())
        }
        async fn touch(&self, _: &SessionId) -> Result<(), SessionError> {
            unimplemented!()
        }
        async fn destroy(&self, _: &SessionId) -> Result<(), SessionError> {
            unimplemented!()
        }
        async fn gc(&self) -> Result<u64, SessionError> {
            Ok(0)
        }
        async fn ping(&self) -> Result<(), SessionError> {
            Ok(())
        }
        fn uses_locking(&self) -> bool {
            true
        }
        fn lock_wait(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn lock_expiry(&self) -> Option<Duration> {
            None
        }
    }

    fn chain() -> (Arc<WriteChain>, Arc<HeldUpBackend>) {
        chain_sending_behind(false)
    }

    /// A chain over a backend whose lock's `sends_last_write_behind` is `behind`.
    fn chain_sending_behind(behind: bool) -> (Arc<WriteChain>, Arc<HeldUpBackend>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let backend = Arc::new(HeldUpBackend {
            permits: Arc::new(Semaphore::new(0)),
            fail: Default::default(),
            fail_only: Default::default(),
            behind,
            in_flight: Default::default(),
            most_in_flight: Default::default(),
            log,
        });
        let id = SessionIdFormat::new(32, 5).unwrap().generate();
        let lock = SessionLock::held(Arc::new(LoggedLock(backend.clone())));
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
        assert_eq!(backend.most_in_flight.load(SeqCst), 1, "one at a time");
    }

    /// Waits (a bounded while) until `count` writes are in flight together.
    async fn until_in_flight(backend: &HeldUpBackend, count: usize) {
        for _ in 0..100 {
            if backend.in_flight.load(SeqCst) == count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{count} writes never were in flight together");
    }

    #[tokio::test]
    async fn where_the_backend_allows_the_last_version_goes_out_behind_the_write_in_flight() {
        let (chain, backend) = chain_sending_behind(true);
        let first = chain.queue(Bytes::from("1")).unwrap();
        until_in_flight(&backend, 1).await;
        let second = chain.queue(Bytes::from("2")).unwrap();
        let last = chain.queue_last(Bytes::from("3")).unwrap();
        until_in_flight(&backend, 2).await;
        backend.permits.add_permits(10);
        chain.wait_stored(last).await.unwrap();
        chain.wait_stored(first).await.unwrap();
        chain.wait_stored(second).await.unwrap();
        assert_eq!(log(&backend), ["write 1", "write 3", "release"]);
        assert!(!chain.settle().await.unwrap().is_held());
    }

    /// A chain that sent its last version, "2", behind the write of "1",
    /// where the write of `failing` fails; both writes are then let through.
    async fn two_writes_in_flight(failing: &'static str) -> (Arc<WriteChain>, Arc<HeldUpBackend>) {
        let (chain, backend) = chain_sending_behind(true);
        *backend.fail_only.lock().unwrap() = Some(failing);
        assert_eq!(chain.queue(Bytes::from("1")).unwrap(), 1);
        until_in_flight(&backend, 1).await;
        assert_eq!(chain.queue_last(Bytes::from("2")).unwrap(), 2);
        until_in_flight(&backend, 2).await;
        backend.permits.add_permits(10);
        (chain, backend)
    }

    #[tokio::test]
    async fn a_last_version_stored_behind_a_failed_write_stores_its_change_too() {
        let (chain, backend) = two_writes_in_flight("1").await;
        chain.wait_stored(2).await.unwrap();
        chain.wait_stored(1).await.unwrap();
        assert_eq!(log(&backend), ["write 2", "release"]);
    }

    #[tokio::test]
    async fn a_failed_last_version_behind_a_stored_write_fails_only_its_own_requests() {
        let (chain, backend) = two_writes_in_flight("2").await;
        assert!(chain.wait_stored(2).await.is_err());
        chain.wait_stored(1).await.unwrap();
        assert!(chain.is_broken());
        assert_eq!(log(&backend), ["write 1", "release"]);
    }

    #[tokio::test]
    async fn a_write_that_ends_before_the_last_version_comes_goes_on_as_before() {
        let (chain, backend) = chain_sending_behind(true);
        let first = chain.queue(Bytes::from("1")).unwrap();
        until_in_flight(&backend, 1).await;
        let second = chain.queue(Bytes::from("2")).unwrap();
        backend.permits.add_permits(1);
        chain.wait_stored(first).await.unwrap();
        until_in_flight(&backend, 1).await; // the writer took "2"
        let last = chain.queue_last(Bytes::from("3")).unwrap();
        until_in_flight(&backend, 2).await;
        backend.permits.add_permits(10);
        chain.wait_stored(second).await.unwrap();
        chain.wait_stored(last).await.unwrap();
        assert_eq!(log(&backend), ["write 1", "write 2", "write 3", "release"]);
    }

    #[tokio::test]
    async fn a_failed_last_write_still_releases_the_lock() {
        let (chain, backend) = chain();
        backend.fail.store(true, SeqCst);
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
        backend.fail.store(true, SeqCst);
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
