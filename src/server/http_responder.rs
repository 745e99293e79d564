//! Runs a tower service over `http` types (an axum `Router`, the NeNe
//! dispatcher, …) as the FastCGI responder. (The access log is written by
//! the operations layer, `crate::ops`.)

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
use tower::{Service, ServiceExt};

use crate::fastcgi::{BoxError, CgiRequest, CgiResponse, Responder, simple_response};

use super::{build_http_request, into_cgi_response};

/// Adapts an application service to [`Responder`]. The service is cloned per
/// request, as hyper and axum do.
#[derive(Clone)]
pub struct HttpResponder<S> {
    service: S,
}

impl<S> HttpResponder<S> {
    /// Serves `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }
}

impl<S, B> Responder for HttpResponder<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn respond(&self, request: CgiRequest) -> impl Future<Output = CgiResponse> + Send + 'static {
        let service = self.service.clone();
        async move {
            let request = match build_http_request(request) {
                Ok(request) => request,
                Err(error) => {
                    tracing::info!("bad request: {error}");
                    return simple_response(400, "Bad Request", "bad request\n");
                }
            };
            let response = match service.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            into_cgi_response(response)
        }
    }
}
