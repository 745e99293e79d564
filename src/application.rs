//! What nene can serve: any tower service over `http` types that never
//! fails (errors are responses), can be cloned per request and moved
//! between threads — an axum `Router`, NeNe's [`Dispatcher`](crate::Dispatcher),
//! or your own. [`Application`] names that bound once, so the entry points
//! and layers do not repeat it.

use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use http::Request;
use tower::Service;

/// A tower service nene can serve. Implemented for every service of the
/// right shape; there is nothing to implement by hand.
pub trait Application:
    Service<Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Application for S where
    S: Service<Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}
