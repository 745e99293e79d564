//! The per-request half of the front controller, as PHP's index.php runs it
//! after bootstrap: constants reachable, session started lazily, dispatch to
//! the application, session committed by the runtime afterwards — all inside
//! the operations layer (ping and status pages, request timeout, slow and
//! access logs).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::response::Response;
use http::Request;
use tower::{Layer, Service};

use crate::config::Constants;
use crate::ops::{Ops, OpsLayer};
use crate::session::{SessionLayer, SessionStore};

/// Wraps `app` (any tower service over `http` types, such as the NeNe
/// dispatcher or an axum `Router`) with nene's per-request steps.
pub fn front_controller<A>(
    app: A,
    constants: Constants,
    sessions: Arc<SessionStore>,
    ops: Arc<Ops>,
) -> impl Service<Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static
where
    A: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    A::Future: Send + 'static,
{
    let with_session = SessionLayer::new(sessions).layer(app);
    OpsLayer::new(ops).layer(Extension(constants).layer(with_session))
}
