//! NeNe's front-controller routing: `/{controller}/{action}` picks a registered
//! action, a missing part is `index`, and an optional number of leading path
//! segments is skipped (NeNe's LAYERS_NUM, for an app under a sub-path).
//!
//! Actions are axum `MethodRouter`s, so each answers only the methods it
//! registers (405 with `Allow` otherwise) and gets axum's extractors. The
//! dispatcher itself is a tower service, like any other application.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready as ready_poll};

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::routing::future::RouteFuture;
use bytes::Bytes;
use futures::future::Either;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::layer_notes;
use crate::request_context::RequestContext;

/// The name a missing controller or action stands for.
pub const INDEX: &str = "index";

/// The actions of one controller, by name.
#[derive(Clone, Default)]
pub struct Controller {
    actions: HashMap<String, MethodRouter>,
}

impl Controller {
    /// A controller with no actions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `name` (the second path segment) with the methods it answers.
    pub fn action(mut self, name: &str, route: MethodRouter) -> Self {
        // Handlers made into routes once, here: otherwise axum makes the
        // matched handler a route again on every call.
        self.actions.insert(name.to_string(), route.with_state(()));
        self
    }
}

/// The body of `htdocs/404.html`, read once at start-up.
#[derive(Clone)]
pub struct NotFoundPage(Bytes);

impl NotFoundPage {
    const FALLBACK: &'static str =
        "<!doctype html><title>404 Not Found</title><h1>Not Found</h1>\n";

    /// Reads `htdocs/404.html`; without one, a built-in page is used and a
    /// warning says so.
    pub fn load(htdocs: &Path) -> Self {
        let path = htdocs.join("404.html");
        match std::fs::read(&path) {
            Ok(body) => Self(Bytes::from(body)),
            Err(error) => {
                tracing::warn!(
                    "cannot read {}: {error}; using a built-in 404 page",
                    path.display()
                );
                Self(Bytes::from_static(Self::FALLBACK.as_bytes()))
            }
        }
    }

    /// The page with status 404.
    pub fn response(&self) -> Response {
        (StatusCode::NOT_FOUND, Html(self.0.clone())).into_response()
    }
}

/// One registered action, called in place. A `MethodRouter` is called by
/// `&mut`; a shared one would be cloned for every request, which clones
/// each method's boxed handler and its `Allow` header (five allocations per
/// request for an action answering GET and POST, where axum's own router
/// clones only the handler it calls). The lock is held only while the call
/// picks that handler and clones it: nothing of the request runs under it,
/// so requests of one action do not wait for each other.
struct Action {
    router: Mutex<MethodRouter>,
    /// `/{controller}/{action}`, the request-duration histogram's label.
    route: Arc<str>,
}

impl Action {
    /// Calls the action for `request`, and notes its route for the
    /// operations layer.
    fn call(&self, request: Request<Body>) -> RouteFuture<Infallible> {
        layer_notes::note_route(&self.route);
        let mut router = self.router.lock().unwrap_or_else(PoisonError::into_inner);
        if may_pass_axums_body_limit(&request) {
            // nene has already bounded and buffered the body
            // (max_body_bytes); axum's own 2 MB default would only refuse
            // bodies nene accepted. Put on per call, and only for such a
            // body: on each action at registration it would wrap every
            // method's handler (three boxes more per call), and its mark in
            // the request's extensions is one allocation more that smaller
            // bodies do without.
            return DefaultBodyLimit::disable()
                .layer(router.clone())
                .call(request);
        }
        router.call(request)
    }
}

/// A table looked up by a path segment on every request: foldhash rather
/// than SipHash, whose flooding resistance protects inserts of untrusted
/// keys; these keys are the application's own.
type ByName<V> = HashMap<String, V, foldhash::fast::RandomState>;

struct DispatchTable {
    /// Actions by controller, then by action name.
    controllers: ByName<ByName<Action>>,
    /// Set by the application; otherwise `server.layers_num`, read from the
    /// request's [`Constants`](crate::config::Constants).
    skip_segments: Option<usize>,
    not_found: NotFoundPage,
}

/// The front controller's dispatcher. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Dispatcher {
    table: Arc<DispatchTable>,
}

/// Builds a [`Dispatcher`].
pub struct DispatcherBuilder {
    table: DispatchTable,
}

impl Dispatcher {
    /// Starts a dispatcher whose unmatched paths answer `not_found`.
    pub fn builder(not_found: NotFoundPage) -> DispatcherBuilder {
        DispatcherBuilder {
            table: DispatchTable {
                controllers: ByName::default(),
                skip_segments: None,
                not_found,
            },
        }
    }

    /// The action for `path`, or `None` when no controller/action matches.
    fn route(&self, path: &str, skip_segments: usize) -> Option<&Action> {
        let mut segments = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .skip(skip_segments);
        let controller = segments.next().unwrap_or(INDEX);
        let action = segments.next().unwrap_or(INDEX);
        if segments.next().is_some() {
            return None;
        }
        self.table.controllers.get(controller)?.get(action)
    }
}

impl DispatcherBuilder {
    /// Registers `name` (the first path segment; `index` also answers `/`).
    pub fn controller(mut self, name: &str, controller: Controller) -> Self {
        let actions = (controller.actions.into_iter())
            .map(|(action, router)| {
                let route = Arc::from(format!("/{name}/{action}"));
                let router = Mutex::new(router);
                (action, Action { router, route })
            })
            .collect();
        self.table.controllers.insert(name.to_string(), actions);
        self
    }

    /// How many leading path segments to ignore (NeNe's LAYERS_NUM), in
    /// place of the `server.layers_num` setting, which the dispatcher
    /// follows when this is not called.
    pub fn skip_segments(mut self, count: usize) -> Self {
        self.table.skip_segments = Some(count);
        self
    }

    /// The finished dispatcher.
    pub fn build(self) -> Dispatcher {
        Dispatcher {
            table: Arc::new(self.table),
        }
    }
}

impl Service<Request<Body>> for Dispatcher {
    type Response = Response;
    type Error = Infallible;
    /// The action's own future, or the not-found page at once: not boxed,
    /// which saves an allocation on every request.
    type Future = Either<ActionFuture, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let skip_segments = self.table.skip_segments.unwrap_or_else(|| {
            RequestContext::of(request.extensions())
                .and_then(|context| context.constants.as_ref())
                .map_or(0, |constants| constants.settings().layers_num)
        });
        match self.route(request.uri().path(), skip_segments) {
            Some(action) => Either::Left(ActionFuture {
                route: action.call(request),
            }),
            None => Either::Right(ready(Ok(self.table.not_found.response()))),
        }
    }
}

pin_project! {
    /// An action's answer; a 405 for a method the action does not take
    /// (axum's, with `Allow` and no body) gets a short HTML page, as a 404
    /// gets the not-found page: a browser shows it rather than nothing.
    pub struct ActionFuture {
        #[pin]
        route: RouteFuture<Infallible>,
    }
}

impl Future for ActionFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready_poll!(self.project().route.poll(cx))?;
        Poll::Ready(Ok(with_a_405_page(response)))
    }
}

const METHOD_NOT_ALLOWED_PAGE: &str =
    "<!doctype html><title>405 Method Not Allowed</title><h1>Method Not Allowed</h1>\n";

/// `response`, or, for a 405 without a body, the same with the 405 page.
fn with_a_405_page(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || http_body::Body::size_hint(response.body()).exact() != Some(0)
    {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(METHOD_NOT_ALLOWED_PAGE))
}

/// axum's extractors refuse a body over 2 MiB unless told otherwise
/// (`DefaultBodyLimit`); whether this request's body may be larger.
fn may_pass_axums_body_limit(request: &Request<Body>) -> bool {
    const AXUM_DEFAULT_LIMIT: u64 = 2 * 1024 * 1024;
    http_body::Body::size_hint(request.body())
        .upper()
        .is_none_or(|most| most > AXUM_DEFAULT_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    fn dispatcher(skip: usize) -> Dispatcher {
        Dispatcher::builder(NotFoundPage(Bytes::from_static(b"missing")))
            .controller(
                "index",
                Controller::new().action("index", get(|| async { "home" })),
            )
            .controller(
                "user",
                Controller::new()
                    .action("index", get(|| async { "user list" }))
                    .action("edit", get(|| async { "user edit" })),
            )
            .skip_segments(skip)
            .build()
    }

    async fn body_of(dispatcher: &Dispatcher, path: &str) -> (u16, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = dispatcher.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_matched_action_notes_its_route_and_a_miss_notes_none() {
        let d = dispatcher(1);
        layer_notes::take();
        body_of(&d, "/app/user/edit").await;
        assert_eq!(layer_notes::take().route.as_deref(), Some("/user/edit"));
        body_of(&d, "/app").await;
        assert_eq!(layer_notes::take().route.as_deref(), Some("/index/index"));
        body_of(&d, "/app/user/delete").await;
        assert_eq!(layer_notes::take().route, None);
    }

    #[tokio::test]
    async fn controller_and_action_come_from_the_path() {
        let d = dispatcher(0);
        assert_eq!(body_of(&d, "/").await, (200, "home".into()));
        assert_eq!(body_of(&d, "/index/index").await, (200, "home".into()));
        assert_eq!(body_of(&d, "/user").await, (200, "user list".into()));
        assert_eq!(body_of(&d, "/user/").await, (200, "user list".into()));
        assert_eq!(body_of(&d, "/user/edit").await, (200, "user edit".into()));
        assert_eq!(body_of(&d, "/user/delete").await, (404, "missing".into()));
        assert_eq!(body_of(&d, "/nobody").await, (404, "missing".into()));
        assert_eq!(body_of(&d, "/user/edit/5").await, (404, "missing".into()));
    }

    #[tokio::test]
    async fn leading_segments_can_be_skipped() {
        let d = dispatcher(1);
        assert_eq!(
            body_of(&d, "/app/user/edit").await,
            (200, "user edit".into())
        );
        assert_eq!(body_of(&d, "/app").await, (200, "home".into()));
    }

    #[tokio::test]
    async fn a_wrong_method_is_405() {
        let d = dispatcher(0);
        let request = Request::post("/user/edit").body(Body::empty()).unwrap();
        let response = d.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "GET,HEAD");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("Method Not Allowed"));
    }

    #[tokio::test]
    async fn a_body_over_axums_2_mb_default_reaches_the_action() {
        // nene bounds bodies itself (max_body_bytes); axum's extractors must
        // not refuse what it accepted, whether its length is known or not.
        let dispatcher = Dispatcher::builder(NotFoundPage(Bytes::from_static(b"missing")))
            .controller(
                "upload",
                Controller::new().action(
                    "index",
                    axum::routing::post(|body: Bytes| async move { body.len().to_string() }),
                ),
            )
            .build();
        let three_mib = 3 * 1024 * 1024;
        let held = Body::from(vec![b'x'; three_mib]);
        let streamed = Body::from_stream(futures::stream::iter([Ok::<_, std::io::Error>(
            Bytes::from(vec![b'y'; three_mib]),
        )]));
        for (what, body, size) in [
            ("a small body", Body::from("small"), 5),
            ("a 3 MiB body", held, three_mib),
            ("a 3 MiB body of unknown length", streamed, three_mib),
        ] {
            let request = Request::post("/upload").body(body).unwrap();
            let response = dispatcher.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200, "{what}");
            let answer = axum::body::to_bytes(response.into_body(), 64)
                .await
                .unwrap();
            assert_eq!(answer, size.to_string(), "{what}");
        }
    }
}
