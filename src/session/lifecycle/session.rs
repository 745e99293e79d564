//! [`Session`]: what a handler sees. It loads lazily — a request that never
//! touches it does no session I/O — and the runtime, not the handler,
//! commits it after the response (see `layer.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use bytes::Bytes;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::request_context::RequestContext;
use crate::session::backend::Unreadable;
use crate::session::backend::{SessionLock, Stored, warn_release_failed};
use crate::session::error::SessionError;
use crate::session::format::{Decoded, KeptValues, SessionData};
use crate::session::id::SessionId;
use crate::session::lifecycle::local_locks::{HandOff, LocalTurn};
use crate::session::lifecycle::metrics::SessionTimings;
use crate::session::lifecycle::runtime::SessionRuntime;
use crate::session::lifecycle::write_chain::WriteChain;
use crate::trace::TraceSpan;

/// Where the session's creation time is kept when an absolute lifetime is
/// set. Handlers never see this key.
const CREATED_KEY: &str = "__nene_created";

/// Sessions up to this size are decoded and encoded where the request
/// runs: about a millisecond of work for the slowest format, less than
/// handing them to a blocking thread and back is worth.
const DECODED_IN_PLACE: usize = 256 * 1024;

/// The longest a backend lock is passed from request to request of one
/// session before it is released and taken again.
const HAND_OFF_WINDOW: Duration = Duration::from_secs(1);

/// The session of the current request. Cheap to clone; every clone is the
/// same session. Take it as a handler argument.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    store: Arc<SessionRuntime>,
    /// REMOTE_ADDR, for the warning about a refused id.
    client: Option<std::net::IpAddr>,
}

/// What every clone of one request's session shares: one allocation a
/// request.
struct Shared {
    state: Mutex<State>,
    /// Where this request's session time went, for the slow log (the
    /// operations layer keeps a clone of the session to read it).
    timings: SessionTimings,
}

struct State {
    /// Ids offered by the request's cookies, not yet validated.
    offered_ids: Vec<String>,
    /// The request carried a session cookie (valid or not): only then is a
    /// removal cookie worth sending.
    client_sent_cookie: bool,
    phase: Phase,
    /// What a [`ReadOnlySession`](super::ReadOnlySession) read while the
    /// session was not started: the stored data, read once without the lock.
    snapshot: Option<Decoded>,
}

enum Phase {
    /// Nothing read yet.
    NotStarted,
    /// Loaded (or created) and in use.
    Active(Box<Active>),
    /// Starting failed; later calls in this request fail at once.
    Failed(String),
    /// Committed; the request is over.
    Done,
}

/// A session in use by this request.
struct Active {
    id: SessionId,
    data: SessionData,
    /// Each stored value's bytes: what the handler does not change is
    /// written back as it was, and values nene cannot map stay as stored.
    kept: KeptValues,
    /// The bytes read from the backend, to tell whether anything changed.
    /// For a stored value nene could not use, the encoding of the empty
    /// data the request started with instead.
    original: Option<Bytes>,
    /// The stored value is not nene's to rewrite unless the handler changes
    /// the session (it was unreadable, or empty as PHP stores an empty
    /// session): an unchanged session is neither written nor touched.
    leave_alone_unless_changed: bool,
    /// The id was made in this request (new session or regenerate): the
    /// client learns it from a Set-Cookie once the session is stored.
    id_is_new: bool,
    destroyed: bool,
    /// The id regenerate() replaced; deleted at commit.
    replaced: Option<SessionId>,
    /// The backend lock, or the write chain that holds it.
    holding: Holding,
    /// When the backend lock was taken (by this request or one that handed
    /// it over).
    locked_at: Instant,
    /// This request's turn in the in-process queue, held until commit.
    turn: Option<LocalTurn>,
}

/// What a request holds of its session's backend lock until commit.
enum Holding {
    /// The lock this request took (or none: locking off, a new session).
    Lock(SessionLock),
    /// The write chain this request continues: it was handed the session
    /// by the previous request, and the chain holds the lock meanwhile.
    Chain(Arc<WriteChain>),
}

impl Holding {
    /// Nothing held.
    fn nothing() -> Self {
        Holding::Lock(SessionLock::none())
    }

    /// Whether the backend lock is held, here or by the chain.
    fn holds_the_lock(&self) -> bool {
        match self {
            Holding::Lock(lock) => lock.is_held(),
            Holding::Chain(_) => true,
        }
    }

    /// Gives up what is held: the lock is released; a chain releases it
    /// itself once its writes are done.
    async fn release(self) -> Result<(), SessionError> {
        match self {
            Holding::Lock(lock) => lock.release().await,
            Holding::Chain(_) => Ok(()),
        }
    }
}

/// What commit decided the response needs.
pub struct CommitOutcome {
    /// The session was used: caching headers apply.
    pub used: bool,
    /// Send this id in a Set-Cookie.
    pub set_cookie: Option<String>,
    /// Tell the client to drop its session cookie.
    pub remove_cookie: bool,
}

/// The commit of a request whose session holds nothing to store: a
/// read-only use sends the caching headers (the answer depends on the
/// session) but never a cookie.
fn nothing_to_store(state: &State) -> CommitOutcome {
    CommitOutcome {
        used: state.snapshot.is_some(),
        set_cookie: None,
        remove_cookie: false,
    }
}

impl Session {
    /// The session of one request, not started: nothing is read from the
    /// backend until a handler first uses it. `offered_ids` are the ids the
    /// request's cookies carry, not yet validated.
    pub(crate) fn new(
        store: Arc<SessionRuntime>,
        offered_ids: Vec<String>,
        client: Option<std::net::IpAddr>,
    ) -> Self {
        let state = Mutex::new(State {
            client_sent_cookie: !offered_ids.is_empty(),
            offered_ids,
            phase: Phase::NotStarted,
            snapshot: None,
        });
        let timings = SessionTimings::default();
        Self {
            shared: Arc::new(Shared { state, timings }),
            store,
            client,
        }
    }

    /// Where this request's session time went so far.
    pub(crate) fn timings(&self) -> &SessionTimings {
        &self.shared.timings
    }

    /// The value under `key`, if present and of type `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.with_active(|active| value_of(&active.data, &active.kept, key))
            .await
    }

    /// [`ReadOnlySession::get`](super::ReadOnlySession::get): the session
    /// as this request left it once it has started it, else as stored,
    /// read once without the lock (and its expiry restarted).
    pub(crate) async fn get_read_only<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, SessionError> {
        let mut state = self.shared.state.lock().await;
        match &state.phase {
            Phase::Active(active) => return value_of(&active.data, &active.kept, key),
            Phase::NotStarted => {}
            Phase::Failed(_) | Phase::Done => return Err(self.unusable(&state.phase)),
        }
        if state.snapshot.is_none() {
            let started = Instant::now();
            let mut read = TraceSpan::under_current("session read");
            let result = self.read_snapshot(&state.offered_ids, &read).await;
            if let Err(error) = &result {
                read.fail(error);
            }
            read.end();
            self.shared.timings.add_read(started.elapsed());
            match result {
                Ok(snapshot) => state.snapshot = Some(snapshot),
                Err(error) => {
                    self.store.metrics.count_error(&error);
                    return Err(error);
                }
            }
        }
        let snapshot = state.snapshot.as_ref().expect("read just above");
        value_of(&snapshot.data, &snapshot.kept, key)
    }

    /// The stored data of the first valid offered id, read without waiting
    /// for its lock where the backend can, and its expiry restarted when it
    /// is nene's data (what nene cannot read, or an empty value, is left
    /// alone, as for a writable session that does not change it). Empty
    /// when there is no such id: nothing is created for a read-only use.
    async fn read_snapshot(
        &self,
        offered: &[String],
        read: &TraceSpan,
    ) -> Result<Decoded, SessionError> {
        let store = &self.store;
        let Some(id) = offered.iter().find_map(|text| store.ids.parse(text)) else {
            return Ok(Decoded::default());
        };
        read.set_text(SESSION_TAG, || id.log_tag());
        let started = Instant::now();
        let backend = read.backend(store.handler.name(), "read");
        let (lock, stored) = traced(backend, store.handler.clone().read_for_read_only(&id)).await?;
        let (decoded, bytes, leave_alone) = self.decode_stored(&id, stored).await;
        let outlived = self.created_too_long_ago(&decoded.data) == Some(true);
        if bytes.is_none() || leave_alone || outlived {
            if let Err(error) = lock.release().await {
                warn_release_failed(Some(&id), &error);
            }
        } else {
            let backend = read.backend(store.handler.name(), "touch");
            traced(backend, lock.save_and_release(&*store.handler, &id, None)).await?;
        }
        store.metrics.start.record(started.elapsed());
        if outlived {
            // Left for the next request that starts the session to replace.
            return Ok(Decoded::default());
        }
        Ok(decoded)
    }

    /// Stores `value` under `key`.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.with_active(|active| {
            if visible(key) {
                active.kept.forget(key);
                active.data.insert(key.to_string(), value);
            }
            Ok(())
        })
        .await
    }

    /// Removes `key`, returning what it held.
    pub async fn remove(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.with_active(|active| {
            if !visible(key) {
                return Ok(None);
            }
            active.kept.forget(key);
            Ok(active.data.remove(key))
        })
        .await
    }

    /// A new id for the same data (do this at login: a fixated or leaked
    /// old id becomes worthless). The old id is deleted at commit.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        let new_id = self.store.ids.generate();
        self.with_active(move |active| {
            let old = std::mem::replace(&mut active.id, new_id);
            if active.original.is_some() && active.replaced.is_none() {
                active.replaced = Some(old);
            }
            active.id_is_new = true;
            active.original = None;
            Ok(())
        })
        .await
    }

    /// Ends the session: its data is deleted at commit and the client is
    /// told to drop the cookie.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        self.with_active(|active| {
            active.destroyed = true;
            active.data.clear();
            active.kept.clear();
            Ok(())
        })
        .await
    }

    /// The session id, once the session is started (for logs; never log it whole).
    pub async fn id(&self) -> Result<String, SessionError> {
        self.with_active(|active| Ok(active.id.as_str().to_string()))
            .await
    }

    async fn with_active<R>(
        &self,
        operate: impl FnOnce(&mut Active) -> Result<R, SessionError>,
    ) -> Result<R, SessionError> {
        let mut state = self.shared.state.lock().await;
        if matches!(state.phase, Phase::NotStarted) {
            let offered = std::mem::take(&mut state.offered_ids);
            let started = Instant::now();
            let mut read = TraceSpan::under_current("session read");
            let result = self.start(&offered, &read).await;
            if let Err(error) = &result {
                read.fail(error);
            }
            read.end();
            self.shared.timings.add_read(started.elapsed());
            state.phase = match result {
                Ok(active) => Phase::Active(Box::new(active)),
                Err(error) => {
                    self.store.metrics.count_error(&error);
                    let message = error.to_string();
                    state.phase = Phase::Failed(message);
                    return Err(error);
                }
            };
        }
        match &mut state.phase {
            Phase::Active(active) => operate(active),
            phase => Err(self.unusable(phase)),
        }
    }

    /// The error for a session that failed to start or was committed.
    fn unusable(&self, phase: &Phase) -> SessionError {
        match phase {
            Phase::Failed(message) => SessionError::Backend {
                backend: self.store.handler.name(),
                operation: "start",
                message: message.clone(),
            },
            _ => SessionError::Backend {
                backend: self.store.handler.name(),
                operation: "use after the response",
                message: "the session was already committed".to_string(),
            },
        }
    }

    /// Loads the session named by the first valid offered id, or makes a new one.
    async fn start(&self, offered: &[String], read: &TraceSpan) -> Result<Active, SessionError> {
        let store = &self.store;
        self.maybe_collect_garbage();
        // Anything that is not a well-formed id is no id: it never reaches
        // the backend.
        let Some(id) = offered.iter().find_map(|text| store.ids.parse(text)) else {
            return Ok(self.new_session());
        };
        read.set_text(SESSION_TAG, || id.log_tag());
        // One `lock_wait` bounds the turn here and the backend's lock together.
        let queued_at = Instant::now();
        let mut turn = if store.handler.uses_locking() {
            let waiting = read.child("session lock wait");
            let turn = store.local_locks.acquire(&id, store.lock_wait).await?;
            waiting.set_bool("nene.session.lock.waited", turn.waited);
            waiting.end();
            store.metrics.lock_wait.record(queued_at.elapsed());
            if turn.waited {
                store.metrics.lock_waits.fetch_add(1, Ordering::Relaxed);
            }
            Some(turn)
        } else {
            None
        };
        let (holding, stored, locked_at) = match self.handed_off(turn.as_mut()).await {
            Some(hand_off) => (
                Holding::Chain(hand_off.chain),
                Stored::Data(hand_off.data),
                hand_off.locked_at,
            ),
            None => {
                let backend_started = Instant::now();
                let wait_left = store.lock_wait.saturating_sub(queued_at.elapsed());
                let backend = read.backend(store.handler.name(), "lock_and_read");
                let (lock, stored) =
                    traced(backend, store.handler.clone().lock_and_read(&id, wait_left)).await?;
                store.metrics.start.record(backend_started.elapsed());
                (Holding::Lock(lock), stored, backend_started)
            }
        };
        let (decoded, bytes, leave_alone_unless_changed) = self.decode_stored(&id, stored).await;
        if !leave_alone_unless_changed && bytes.is_none() {
            if store.settings.use_strict_mode {
                // Strict: an id we did not issue (or that expired) is
                // replaced; the client's id is never stored.
                store.rejected_ids.note(self.client);
                if let Holding::Lock(lock) = holding {
                    let _ = lock.release().await;
                }
                drop(turn);
                return Ok(self.new_session());
            }
            let mut active = self.new_session();
            active.id = id;
            active.id_is_new = false;
            active.holding = holding;
            active.locked_at = locked_at;
            active.turn = turn;
            return Ok(active);
        }
        let mut active = Active {
            id,
            data: decoded.data,
            kept: decoded.kept,
            original: bytes,
            leave_alone_unless_changed,
            id_is_new: false,
            destroyed: false,
            replaced: None,
            holding,
            locked_at,
            turn,
        };
        if self.outlived_absolute_lifetime(&mut active) {
            tracing::info!(
                "session #{} reached session.absolute_lifetime; replacing it",
                active.id.log_tag()
            );
            let lock = settle_chain(&mut active).await?;
            lock.destroy(&*store.handler, &active.id).await?;
            let _ = lock.release().await;
            return Ok(self.new_session());
        }
        if active.leave_alone_unless_changed {
            // What "unchanged" means for this request: the empty data it
            // started with (a creation time included, if one was just added).
            active.original = Some(store.codec.encode(&active.data, &active.kept)?);
        }
        Ok(active)
    }

    /// What the backend returned, decoded: the data, the bytes it came from
    /// (to tell later whether anything changed), and whether the stored
    /// value is to be left alone unless the handler changes the session
    /// (it was empty or unreadable; unreadable ones are logged).
    async fn decode_stored(
        &self,
        id: &SessionId,
        stored: Stored,
    ) -> (Decoded, Option<Bytes>, bool) {
        match stored {
            Stored::Data(bytes) if bytes.is_empty() => (Decoded::default(), None, true),
            Stored::Data(bytes) => match self.decode(&bytes).await {
                Ok(decoded) => (decoded, Some(bytes), false),
                Err(error) => {
                    let reason = match error {
                        SessionError::Corrupt(reason) => reason,
                        other => other.to_string(),
                    };
                    self.warn_unreadable(id, &Unreadable::undecodable(&bytes, reason));
                    (Decoded::default(), None, true)
                }
            },
            Stored::Unreadable(why) => {
                self.warn_unreadable(id, &why);
                (Decoded::default(), None, true)
            }
            Stored::Missing => (Decoded::default(), None, false),
        }
    }

    /// The codec's decode; a large session is decoded on a blocking
    /// thread, so that the requests sharing this worker (a `/health`, other
    /// sessions) do not wait behind it.
    async fn decode(&self, bytes: &Bytes) -> Result<Decoded, SessionError> {
        if bytes.len() < DECODED_IN_PLACE {
            return self.store.codec.decode(bytes);
        }
        let (codec, bytes) = (self.store.codec.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || codec.decode(&bytes))
            .await
            .unwrap_or_else(|panicked| {
                Err(SessionError::Corrupt(format!(
                    "decoding panicked: {panicked}"
                )))
            })
    }

    fn warn_unreadable(&self, id: &SessionId, why: &Unreadable) {
        tracing::warn!(
            "session #{}: {why}; the request starts with an empty session, and the stored value is kept unless the session is changed or destroyed",
            id.log_tag()
        );
    }

    fn new_session(&self) -> Active {
        let mut data = SessionData::new();
        if self.store.settings.absolute_lifetime > 0 {
            data.insert(CREATED_KEY.to_string(), Value::from(unix_now()));
        }
        Active {
            id: self.store.ids.generate(),
            data,
            kept: KeptValues::default(),
            original: None,
            leave_alone_unless_changed: false,
            id_is_new: true,
            destroyed: false,
            replaced: None,
            holding: Holding::nothing(),
            locked_at: Instant::now(),
            turn: None,
        }
    }

    /// The data and lock the previous request of this session left, while
    /// the lock is young enough to pass on (see [`HAND_OFF_WINDOW`]) and
    /// every write of the chain so far succeeded. Otherwise the lock is
    /// released once the chain's writes are done, and the caller locks and
    /// reads afresh.
    async fn handed_off(&self, turn: Option<&mut LocalTurn>) -> Option<HandOff> {
        let hand_off = turn?.take_hand_off()?;
        if hand_off.locked_at.elapsed() < self.hand_off_window() && !hand_off.chain.is_broken() {
            self.store.metrics.hand_offs.fetch_add(1, Ordering::Relaxed);
            return Some(hand_off);
        }
        if let Ok(lock) = hand_off.chain.settle().await {
            let _ = lock.release().await;
        }
        None
    }

    /// How long one backend lock may be passed from request to request: a
    /// second, or a quarter of the lock's own expiry if that is shorter, so
    /// the last request to get it still has most of the expiry left and
    /// other instances get their turn at least that often.
    fn hand_off_window(&self) -> Duration {
        match self.store.handler.lock_expiry() {
            Some(expiry) => HAND_OFF_WINDOW.min(expiry / 4),
            None => HAND_OFF_WINDOW,
        }
    }

    /// Whether this request keeps its backend lock for the next request of
    /// the session waiting here instead of releasing it, while the lock is
    /// young (the caller has checked that the session stays as read).
    fn may_hand_off(&self, active: &Active) -> bool {
        active.holding.holds_the_lock()
            && active.turn.as_ref().is_some_and(LocalTurn::others_waiting)
            && active.locked_at.elapsed() < self.hand_off_window()
    }

    /// True when the session is older than `absolute_lifetime`. A session
    /// stored before the setting was turned on gets its clock started now.
    fn outlived_absolute_lifetime(&self, active: &mut Active) -> bool {
        if self.store.settings.absolute_lifetime == 0 {
            return false;
        }
        match self.created_too_long_ago(&active.data) {
            Some(outlived) => outlived,
            None => {
                active
                    .data
                    .insert(CREATED_KEY.to_string(), Value::from(unix_now()));
                false
            }
        }
    }

    /// Whether `data` was created more than `absolute_lifetime` ago; `None`
    /// when it carries no creation time (or the setting is off).
    fn created_too_long_ago(&self, data: &SessionData) -> Option<bool> {
        let limit = self.store.settings.absolute_lifetime;
        if limit == 0 {
            return None;
        }
        let created = data.get(CREATED_KEY).and_then(Value::as_u64)?;
        // Whole seconds: `>` so that a session never ends before its
        // lifetime (with `>=` one created late in a second could end almost
        // at once).
        Some(unix_now().saturating_sub(created) > limit)
    }

    /// PHP's gc_probability / gc_divisor, run in the background so no
    /// request waits for it.
    fn maybe_collect_garbage(&self) {
        let settings = &self.store.settings;
        if settings.gc_probability == 0
            || fastrand::u32(0..settings.gc_divisor) >= settings.gc_probability
        {
            return;
        }
        let handler = self.store.handler.clone();
        tokio::spawn(async move {
            match handler.gc().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!("session gc removed {removed} expired session(s)"),
                Err(error) => tracing::warn!("session gc failed: {error}"),
            }
        });
    }

    /// Writes, touches or destroys what this request did, releases the
    /// locks, and says what the response must carry. Called by the runtime
    /// once the handler has answered.
    pub(crate) async fn commit(&self) -> Result<CommitOutcome, SessionError> {
        let mut state = self.shared.state.lock().await;
        let offered_any = state.client_sent_cookie;
        let phase = std::mem::replace(&mut state.phase, Phase::Done);
        let Phase::Active(active) = phase else {
            return Ok(nothing_to_store(&state));
        };
        let mut active = *active;
        let started = Instant::now();
        // Under the write's span, which the session layer makes current.
        let backend = TraceSpan::backend_under_current(self.store.handler.name(), "store");
        backend.set_text(SESSION_TAG, || active.id.log_tag());
        let result = traced(backend, self.save(&mut active, offered_any)).await;
        self.store.metrics.commit.record(started.elapsed());
        // Whatever lock `save` did not release along with its write.
        let released = std::mem::replace(&mut active.holding, Holding::nothing())
            .release()
            .await;
        drop(active.turn.take());
        self.shared.timings.add_write(started.elapsed());
        if let Err(error) = &result {
            self.store.metrics.count_error(error);
        }
        let outcome = result?;
        if let Err(error) = released {
            warn_release_failed(Some(&active.id), &error);
        }
        Ok(outcome)
    }

    /// The commit of a session that holds nothing to store (never started,
    /// read only, failed), done at once; `None` when there may be
    /// something to store, or a task the handler spawned holds the session
    /// now: then [`commit`](Self::commit). Most requests of a site never
    /// touch the session (health checks, static-like pages): this spares
    /// them a boxed future.
    pub(crate) fn commit_now(&self) -> Option<CommitOutcome> {
        let mut state = self.shared.state.try_lock().ok()?;
        if matches!(state.phase, Phase::Active(_)) {
            return None;
        }
        state.phase = Phase::Done;
        Some(nothing_to_store(&state))
    }

    /// Writes, touches or destroys what the request did: on the write
    /// chain it continues or starts, or through the lock it holds.
    async fn save(
        &self,
        active: &mut Active,
        client_had_cookie: bool,
    ) -> Result<CommitOutcome, SessionError> {
        if active.original.is_some() && stays_as_read(active) {
            if self.may_hand_off(active) {
                return self.queue_and_hand_off(active).await;
            }
            if matches!(active.holding, Holding::Chain(_)) {
                return self.end_chain(active).await;
            }
        }
        let mut lock = settle_chain(active).await?;
        let saved = self
            .save_holding(active, &mut lock, client_had_cookie)
            .await;
        // Whatever `save_holding` did not release with its write, commit does.
        active.holding = Holding::Lock(lock);
        saved
    }

    /// [`save`](Self::save) once any chain is settled, holding `lock`.
    /// Where the write and the unlock go together, it takes the lock.
    async fn save_holding(
        &self,
        active: &Active,
        lock: &mut SessionLock,
        client_had_cookie: bool,
    ) -> Result<CommitOutcome, SessionError> {
        let store = &self.store;
        let handler = &*store.handler;
        let id = &active.id;
        if active.destroyed {
            if let Some(old) = &active.replaced {
                lock.destroy(handler, old).await?;
            }
            if active.original.is_some() || active.replaced.is_some() {
                lock.destroy(handler, id).await?;
            }
            return Ok(CommitOutcome {
                used: true,
                set_cookie: None,
                remove_cookie: client_had_cookie,
            });
        }
        let holds_data = active.data.keys().any(|key| visible(key));
        let stored = match &active.original {
            Some(before) => {
                let now = self.encode_within_max_size(active)?;
                let unchanged = now == *before;
                if active.leave_alone_unless_changed && unchanged {
                    // A stored value that is not nene's to rewrite,
                    // unchanged: not even its expiry is touched (the lock
                    // goes at commit).
                    false
                } else {
                    // Unchanged under lazy_write: only the expiry is refreshed.
                    let changed = !store.settings.lazy_write || !unchanged;
                    std::mem::replace(lock, SessionLock::none())
                        .save_and_release(handler, id, changed.then_some(now))
                        .await?;
                    true
                }
            }
            // New (or adopted) and empty: nothing worth storing, no cookie.
            None if !holds_data => false,
            None => {
                let data = self.encode_within_max_size(active)?;
                lock.write(handler, id, data).await?;
                true
            }
        };
        // The id regenerate() replaced goes only once its successor is
        // stored: a failed write (full disk, Redis down) keeps the old session.
        if let Some(old) = &active.replaced {
            lock.destroy(handler, old).await?;
        }
        // A refused id with nothing stored in its place leaves the client's
        // cookie alone: it costs nothing and may be valid on another instance.
        Ok(CommitOutcome {
            used: true,
            set_cookie: (stored && active.id_is_new).then(|| id.as_str().to_string()),
            remove_cookie: false,
        })
    }

    /// Group commit (see `write_chain.rs`): queues this request's data,
    /// hands data and lock to the next request of the session at once, and
    /// then waits until a write has stored the change.
    async fn queue_and_hand_off(&self, active: &mut Active) -> Result<CommitOutcome, SessionError> {
        let data = self.encode_for_chain(active).await?;
        let chain = match std::mem::replace(&mut active.holding, Holding::nothing()) {
            Holding::Chain(chain) => chain,
            Holding::Lock(lock) => {
                WriteChain::new(self.store.handler.clone(), active.id.clone(), lock)
            }
        };
        let version = chain.queue(data.clone())?;
        if let Some(mut turn) = active.turn.take() {
            turn.hand_over(HandOff {
                data,
                chain: chain.clone(),
                locked_at: active.locked_at,
            });
        }
        chain.wait_stored(version).await?;
        Ok(STORED_ON_THE_CHAIN)
    }
}

impl Session {
    /// The last request of a run of hand-offs, with nobody of its session
    /// waiting here: queues its data as the chain's last version, whose
    /// write also releases the lock (see `write_chain.rs`), and waits for it.
    async fn end_chain(&self, active: &mut Active) -> Result<CommitOutcome, SessionError> {
        let data = self.encode_for_chain(active).await?;
        if let Holding::Chain(chain) = std::mem::replace(&mut active.holding, Holding::nothing()) {
            let version = chain.queue_last(data)?;
            chain.wait_stored(version).await?;
        }
        Ok(STORED_ON_THE_CHAIN)
    }

    /// The bytes to queue on the write chain. Over `session.max_size`
    /// nothing is queued: the lock is taken back from the chain so that
    /// commit releases it.
    async fn encode_for_chain(&self, active: &mut Active) -> Result<Bytes, SessionError> {
        match self.encode_within_max_size(active) {
            Ok(data) => Ok(data),
            Err(too_large) => {
                active.holding = Holding::Lock(settle_chain(active).await?);
                Err(too_large)
            }
        }
    }

    /// The bytes to store for the session, unless they are over
    /// `session.max_size` (then the change is refused, never stored half).
    fn encode_within_max_size(&self, active: &Active) -> Result<Bytes, SessionError> {
        let encode = || self.store.codec.encode(&active.data, &active.kept);
        // A session that was read large is written large: 100,000 PHP
        // variables take about 10 ms to encode, which would hold up every
        // other request queued on this worker thread.
        let large = active
            .original
            .as_ref()
            .is_some_and(|read| read.len() >= DECODED_IN_PLACE);
        let bytes = if large {
            off_the_worker(encode)
        } else {
            encode()
        }?;
        let max = self.store.settings.max_size;
        if bytes.len() as u64 > max {
            return Err(SessionError::TooLarge {
                id_tag: active.id.log_tag(),
                size: bytes.len(),
                max,
            });
        }
        Ok(bytes)
    }
}

/// Runs `work` without holding up the other tasks of the async worker it is
/// called on: tokio's `block_in_place` hands them to another thread first.
/// On a current-thread runtime (the in-process tests) it runs in place.
fn off_the_worker<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// A change stored by the session's write chain: same id, no cookie to send.
const STORED_ON_THE_CHAIN: CommitOutcome = CommitOutcome {
    used: true,
    set_cookie: None,
    remove_cookie: false,
};

/// The backend lock the request holds, taken out of `active`: from the
/// write chain the request was part of once every write queued on it is
/// done, so that what follows (a destroy, a write under a new id, the last
/// write and the unlock) comes after them. On a broken chain, the error
/// (the chain releases the lock).
/// The span attribute that names a session as the logs do (`session
/// #3f9c01ab`): never the id itself.
const SESSION_TAG: &str = "nene.session.tag";

/// `call`'s result, with `phase` (a backend call's span) ended, and marked
/// failed when the call failed.
async fn traced<T>(
    mut phase: TraceSpan,
    call: impl Future<Output = Result<T, SessionError>>,
) -> Result<T, SessionError> {
    let result = call.await;
    if let Err(error) = &result {
        phase.fail(error);
    }
    phase.end();
    result
}

async fn settle_chain(active: &mut Active) -> Result<SessionLock, SessionError> {
    match std::mem::replace(&mut active.holding, Holding::nothing()) {
        Holding::Lock(lock) => Ok(lock),
        Holding::Chain(chain) => chain.settle().await,
    }
}

/// The value under `key` of a session's data, if present and of type `T`;
/// an error for a value nene keeps as stored but cannot map.
fn value_of<T: DeserializeOwned>(
    data: &SessionData,
    kept: &KeptValues,
    key: &str,
) -> Result<Option<T>, SessionError> {
    if let Some(what) = kept.opaque(key) {
        return Err(SessionError::Unmappable {
            key: key.to_string(),
            what,
        });
    }
    Ok(visible(key)
        .then(|| data.get(key))
        .flatten()
        // Read from the borrowed value: `from_value` takes it owned, which
        // cloned the whole value (a map: every key and string) per `get`.
        .and_then(|value| T::deserialize(value).ok()))
}

/// Whether the session ends the request as it was read: same id, not
/// destroyed, and nene's to rewrite. Only such a session's lock and data
/// are passed along a write chain.
fn stays_as_read(active: &Active) -> bool {
    !active.id_is_new
        && active.replaced.is_none()
        && !active.destroyed
        && !active.leave_alone_unless_changed
}

fn visible(key: &str) -> bool {
    key != CREATED_KEY
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Handlers take `Session` as an argument; the runtime's session layer puts
/// it into every request.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = (http::StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let missing = "no session: the application runs outside nene's session layer\n";
        RequestContext::extract(&parts.extensions, |c| c.session.clone(), missing)
    }
}
