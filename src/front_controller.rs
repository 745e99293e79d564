//! The per-request half of the front controller, as PHP's index.php runs it
//! after bootstrap: constants reachable, session started lazily, dispatch to
//! the application, session committed by the runtime afterwards — all inside
//! the operations layer (ping and status pages, request timeout, slow and
//! access logs).

use std::sync::Arc;

use tower::Layer;

use crate::application::Application;
use crate::config::Constants;
use crate::ops::{Ops, OpsLayer};
use crate::session::{SessionLayer, SessionRuntime};

/// Wraps `app` (any tower service over `http` types, such as the NeNe
/// dispatcher or an axum `Router`) with nene's per-request steps.
pub fn front_controller<A: Application>(
    app: A,
    constants: Constants,
    sessions: Arc<SessionRuntime>,
    ops: Arc<Ops>,
) -> impl Application {
    let with_session = SessionLayer::new(sessions).layer(app);
    OpsLayer::new(ops, constants).layer(with_session)
}
