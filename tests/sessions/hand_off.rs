//! Group commit keeps its promise on the hand-off path: a response is never
//! sent before its change is stored.
//!
//! Two requests of one session queue on this instance; the first hands its
//! data and backend lock to the second and its change is written by the
//! session's write chain in a task of its own. The backend here is the real
//! files backend behind a gate the test controls: every write waits for a
//! permit, and the next write can be made to fail. While the gate is shut,
//! neither request may answer; when the write fails, neither may answer 200.
//!
//! The runtime is single-threaded on purpose: a spawned request runs only
//! while the test awaits, so "the second request has reached the session's
//! queue" follows from the order of the events the route reports, not from
//! timing. No sleep orders anything here; the only timeouts are upper
//! bounds (a hang fails instead of blocking) and the windows in which a
//! response must *not* arrive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use nene::session::SessionSettings;
use nene::session::{
    FileSessionHandler, HeldLock, JsonCodec, LockedRead, SessionCodec, SessionCookie, SessionError,
    SessionHandler, SessionId, SessionIdFormat, SessionLayer, SessionLock, SessionRuntime,
    SessionService, Stored,
};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tower::{Layer, ServiceExt};

/// How long a response must stay away while its write is held at the gate.
const MUST_STAY_PENDING: Duration = Duration::from_millis(300);
/// Upper bound for anything the test waits for; reaching it is a failure.
const AT_MOST: Duration = Duration::from_secs(10);

/// The files backend, with every write held at a gate and, on demand, the
/// next write failing as a full disk would.
struct GatedFiles {
    inner: Arc<FileSessionHandler>,
    /// One permit lets one write through.
    gate: Arc<Semaphore>,
    /// The next write to pass the gate fails instead of storing.
    fail_next: AtomicBool,
    /// Told each time a write reaches the gate.
    arrived: mpsc::UnboundedSender<()>,
}

impl GatedFiles {
    /// Waits for a permit; an error when the write is to fail.
    async fn pass_gate(&self) -> Result<(), SessionError> {
        let _ = self.arrived.send(());
        self.gate
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(SessionError::Backend {
                backend: self.inner.name(),
                operation: "write",
                message: "No space left on device (os error 28)".to_string(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl SessionHandler for GatedFiles {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The files lock, wrapped so that what is written through it (the
    /// chain's writes, the last write of a request) is gated too.
    async fn lock_and_read(self: Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        let (lock, stored) = self.inner.clone().lock_and_read(id, wait).await?;
        let lock = match lock.into_held() {
            Some(inner) => SessionLock::held(Arc::new(GatedLock {
                inner,
                files: self.clone(),
            })),
            None => SessionLock::none(),
        };
        Ok((lock, stored))
    }

    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        self.inner.read(id).await
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.pass_gate().await?;
        self.inner.write(id, data).await
    }

    async fn touch(&self, id: &SessionId) -> Result<(), SessionError> {
        self.inner.touch(id).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.inner.destroy(id).await
    }

    async fn gc(&self) -> Result<u64, SessionError> {
        self.inner.gc().await
    }

    async fn ping(&self) -> Result<(), SessionError> {
        self.inner.ping().await
    }

    fn uses_locking(&self) -> bool {
        self.inner.uses_locking()
    }

    fn lock_wait(&self) -> Duration {
        self.inner.lock_wait()
    }

    fn lock_expiry(&self) -> Option<Duration> {
        self.inner.lock_expiry()
    }
}

/// The files lock behind the gate: every write waits for a permit.
struct GatedLock {
    inner: Arc<dyn HeldLock>,
    files: Arc<GatedFiles>,
}

#[async_trait]
impl HeldLock for GatedLock {
    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        self.files.pass_gate().await?;
        self.inner.write(id, data).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        self.inner.destroy(id).await
    }

    async fn save_and_release(
        self: Arc<Self>,
        id: &SessionId,
        data: Option<Bytes>,
    ) -> Result<(), SessionError> {
        if data.is_some()
            && let Err(error) = self.files.pass_gate().await
        {
            let _ = self.inner.clone().release().await;
            return Err(error);
        }
        self.inner.clone().save_and_release(id, data).await
    }

    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        self.inner.clone().release().await
    }

    fn sends_last_write_behind(&self) -> bool {
        self.inner.sends_last_write_behind()
    }
}

/// What the counter route reports, in the order it does it.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// The request (named by its `x-request` header) reached the route,
    /// before touching the session.
    Entered(String),
    /// The request stored `n` in its session (not yet committed).
    Counted(String, u64),
}

struct Harness {
    service: SessionService<Router>,
    store: Arc<SessionRuntime>,
    files: Arc<FileSessionHandler>,
    gate: Arc<Semaphore>,
    backend: Arc<GatedFiles>,
    /// Permits for requests sent with `x-hold`, which wait after counting.
    hold: Arc<Semaphore>,
    events: mpsc::UnboundedReceiver<Event>,
    arrivals: mpsc::UnboundedReceiver<()>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // A directory the handler makes itself, with the mode it requires.
        let files = Arc::new(
            FileSessionHandler::new(&dir.path().join("sessions"), Duration::from_secs(1440))
                .unwrap(),
        );
        let gate = Arc::new(Semaphore::new(0));
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let backend = Arc::new(GatedFiles {
            inner: files.clone(),
            gate: gate.clone(),
            fail_next: AtomicBool::new(false),
            arrived,
        });
        let settings = SessionSettings {
            // No background gc task touching the directory mid-test.
            gc_probability: 0,
            ..nene::config::Settings::defaults().session
        };
        let ids =
            SessionIdFormat::new(settings.sid_length, settings.sid_bits_per_character).unwrap();
        let cookie = SessionCookie::new(&settings, &[]);
        let handler: Arc<dyn SessionHandler> = backend.clone();
        let codec: Arc<dyn SessionCodec> = Arc::new(JsonCodec);
        let store = Arc::new(SessionRuntime::new(handler, codec, ids, cookie, settings));

        let hold = Arc::new(Semaphore::new(0));
        let (report, events) = mpsc::unbounded_channel();
        let route = {
            let hold = hold.clone();
            move |session: nene::Session, headers: HeaderMap| {
                let hold = hold.clone();
                let report = report.clone();
                async move {
                    let name = headers
                        .get("x-request")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("unnamed")
                        .to_string();
                    let _ = report.send(Event::Entered(name.clone()));
                    let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
                    session.insert("n", n).await?;
                    let _ = report.send(Event::Counted(name, n));
                    if headers.contains_key("x-hold") {
                        hold.acquire().await.unwrap().forget();
                    }
                    Ok::<_, SessionError>(n.to_string())
                }
            }
        };
        let router = Router::new().route("/counter", get(route));
        let service = SessionLayer::new(store.clone()).layer(router);
        Harness {
            service,
            store,
            files,
            gate,
            backend,
            hold,
            events,
            arrivals,
            _dir: dir,
        }
    }

    /// Sends one request through the session layer in a task of its own.
    fn send(&self, name: &str, session: Option<&str>, hold: bool) -> JoinHandle<Response> {
        let mut request = Request::builder().uri("/counter").header("x-request", name);
        if let Some(id) = session {
            request = request.header("cookie", format!("NENESESSID={id}"));
        }
        if hold {
            request = request.header("x-hold", "1");
        }
        let request = request.body(Body::empty()).unwrap();
        let service = self.service.clone();
        tokio::spawn(async move {
            match service.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    }

    async fn expect_event(&mut self, expected: Event) {
        let event = timeout(AT_MOST, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("still waiting for {expected:?}"))
            .expect("the route is gone");
        assert_eq!(event, expected);
    }

    async fn expect_write_at_gate(&mut self, what: &str) {
        timeout(AT_MOST, self.arrivals.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} never reached the backend"))
            .expect("the backend is gone");
    }

    /// A new session through the layer with one write let through; its id,
    /// from the Set-Cookie. The session then stores n = 1.
    async fn first_visit(&mut self) -> String {
        self.gate.add_permits(1);
        let response = timeout(AT_MOST, self.send("first", None, false))
            .await
            .expect("the first visit hangs")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response
            .headers()
            .get(http::header::SET_COOKIE)
            .expect("a new session sets its cookie")
            .to_str()
            .unwrap()
            .to_string();
        let id = set_cookie
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix("NENESESSID="))
            .unwrap_or_else(|| panic!("unexpected Set-Cookie {set_cookie}"))
            .to_string();
        self.expect_event(Event::Entered("first".into())).await;
        self.expect_event(Event::Counted("first".into(), 1)).await;
        self.expect_write_at_gate("the first visit's write").await;
        assert_eq!(self.stored_n(&id).await, Some(1));
        id
    }

    /// `n` as the files backend holds it now, read past the gate.
    async fn stored_n(&self, id: &str) -> Option<u64> {
        let id = self.store.ids().parse(id).expect("a well-formed id");
        let bytes = self.files.read(&id).await.unwrap().data()?;
        JsonCodec.decode(&bytes).unwrap().data.get("n")?.as_u64()
    }

    /// Two requests of session `id`: "one" takes the session, counts and is
    /// held in the route until "two" waits for the session's turn behind
    /// it; then "one" answers, hands the session to "two" and its write
    /// reaches the (shut) gate; "two" counts on from the handed-over data.
    /// Returns both requests in flight, neither answered.
    async fn two_queued_requests(
        &mut self,
        id: &str,
    ) -> (JoinHandle<Response>, JoinHandle<Response>) {
        let hand_offs_before = self.store.metrics().hand_offs.load(Ordering::SeqCst);
        let mut one = self.send("one", Some(id), true);
        self.expect_event(Event::Entered("one".into())).await;
        self.expect_event(Event::Counted("one".into(), 2)).await;
        let mut two = self.send("two", Some(id), false);
        // Reported in the same poll in which "two" goes on to queue for the
        // session's turn (nothing it does before that waits): once the test
        // sees it, "two" is queued behind "one".
        self.expect_event(Event::Entered("two".into())).await;

        self.hold.add_permits(1);
        self.expect_write_at_gate("the write of request one").await;
        // 3, not 2: "two" counted on from the data "one" handed over, not
        // from the store (which still holds 1, and whose lock the chain has).
        self.expect_event(Event::Counted("two".into(), 3)).await;
        assert_eq!(
            self.store.metrics().hand_offs.load(Ordering::SeqCst),
            hand_offs_before + 1,
            "request one must have handed the session to request two"
        );

        assert!(
            timeout(MUST_STAY_PENDING, &mut one).await.is_err(),
            "request one answered while its write was still held at the gate"
        );
        assert!(
            timeout(MUST_STAY_PENDING, &mut two).await.is_err(),
            "request two answered while the write before it was held at the gate"
        );
        assert_eq!(self.stored_n(id).await, Some(1), "nothing passed the gate");
        (one, two)
    }
}

async fn answer(request: JoinHandle<Response>, name: &str) -> Response {
    timeout(AT_MOST, request)
        .await
        .unwrap_or_else(|_| panic!("request {name} never answered"))
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_handed_off_request_answers_only_after_its_write_is_stored() {
    let mut harness = Harness::new();
    let id = harness.first_visit().await;
    let (one, mut two) = harness.two_queued_requests(&id).await;

    // Let exactly one write through: the chain's, which stores n = 2.
    harness.gate.add_permits(1);
    let one = answer(one, "one").await;
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(harness.stored_n(&id).await, Some(2));

    // "two" takes the lock back from the chain and writes n = 3 itself.
    harness
        .expect_write_at_gate("the write of request two")
        .await;
    assert!(
        timeout(MUST_STAY_PENDING, &mut two).await.is_err(),
        "request two answered while its own write was held at the gate"
    );
    harness.gate.add_permits(1);
    let two = answer(two, "two").await;
    assert_eq!(two.status(), StatusCode::OK);
    assert_eq!(
        harness.stored_n(&id).await,
        Some(3),
        "both increments stored"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_shared_write_fails_every_request_that_depended_on_it() {
    let mut harness = Harness::new();
    let id = harness.first_visit().await;
    let (one, two) = harness.two_queued_requests(&id).await;

    // The chain's write fails.
    harness.backend.fail_next.store(true, Ordering::SeqCst);
    harness.gate.add_permits(1);
    let one = answer(one, "one").await;
    let two = answer(two, "two").await;
    assert_eq!(
        one.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "request one's change was never stored"
    );
    assert_eq!(
        two.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "request two built on a change that was never stored"
    );
    assert_eq!(
        harness.stored_n(&id).await,
        Some(1),
        "the session is unchanged"
    );
    assert!(
        harness.arrivals.try_recv().is_err(),
        "no write after the failed one"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_last_request_of_a_run_folds_the_unwritten_change_into_its_own_write() {
    // Three requests queue; the first one's write is held at the gate while
    // the second counts and hands on to the third, which finds nobody
    // behind it. Its write (which also unlocks) carries the second one's
    // change too: two writes in all, not three.
    let mut harness = Harness::new();
    let id = harness.first_visit().await;
    let one = harness.send("one", Some(&id), true);
    harness.expect_event(Event::Entered("one".into())).await;
    harness.expect_event(Event::Counted("one".into(), 2)).await;
    let two = harness.send("two", Some(&id), false);
    harness.expect_event(Event::Entered("two".into())).await;
    let three = harness.send("three", Some(&id), false);
    harness.expect_event(Event::Entered("three".into())).await;

    harness.hold.add_permits(1);
    harness
        .expect_write_at_gate("the write of request one")
        .await;
    harness.expect_event(Event::Counted("two".into(), 3)).await;
    harness
        .expect_event(Event::Counted("three".into(), 4))
        .await;

    harness.gate.add_permits(1);
    assert_eq!(answer(one, "one").await.status(), StatusCode::OK);
    assert_eq!(harness.stored_n(&id).await, Some(2));
    harness
        .expect_write_at_gate("the last write, of request three")
        .await;
    harness.gate.add_permits(1);
    assert_eq!(answer(two, "two").await.status(), StatusCode::OK);
    assert_eq!(answer(three, "three").await.status(), StatusCode::OK);
    assert_eq!(harness.stored_n(&id).await, Some(4), "every change stored");
    assert!(
        harness.arrivals.try_recv().is_err(),
        "request two's change was written again on its own"
    );
}
