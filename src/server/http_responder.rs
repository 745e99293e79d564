//! Runs a tower service over `http` types (an axum `Router`, the NeNe
//! dispatcher, …) as the FastCGI responder. (The access log is written by
//! the operations layer, `crate::ops`; requests refused before it are
//! handed to the refusal log installed with [`HttpResponder::on_refusal`].)

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use crate::fastcgi::{BoxError, CgiRequest, CgiResponse, Refusal, Responder, simple_response};

use super::{build_http_request_or_params, into_cgi_response};

/// Where refused requests are reported: the operations layer's access log.
type RefusalLog = Arc<dyn Fn(&Refusal<'_>) + Send + Sync>;

/// Adapts an application service to [`Responder`]. The service is cloned per
/// request, as hyper and axum do.
#[derive(Clone)]
pub struct HttpResponder<S> {
    service: S,
    /// Told of every request answered without the application; none by
    /// default.
    refusals: Option<RefusalLog>,
}

impl<S> HttpResponder<S> {
    /// Serves `service`.
    pub fn new(service: S) -> Self {
        Self {
            service,
            refusals: None,
        }
    }

    /// Reports every request answered without the application (by the
    /// protocol layer, or here when its params make no HTTP request) to
    /// `log`, as it is answered.
    pub fn on_refusal(mut self, log: impl Fn(&Refusal<'_>) + Send + Sync + 'static) -> Self {
        self.refusals = Some(Arc::new(log));
        self
    }
}

impl<S, B> Responder for HttpResponder<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Future = HttpAnswer<S>;

    fn respond(&self, request: CgiRequest) -> HttpAnswer<S> {
        let started = Instant::now();
        match build_http_request_or_params(request) {
            Ok(request) => HttpAnswer::Application {
                call: self.service.clone().oneshot(request),
            },
            Err((error, params)) => {
                tracing::info!("bad request: {error}");
                self.refused(&Refusal {
                    status: 400,
                    params: Some(&params),
                    elapsed: started.elapsed(),
                });
                HttpAnswer::BadRequest
            }
        }
    }

    fn refused(&self, refusal: &Refusal<'_>) {
        if let Some(log) = &self.refusals {
            log(refusal);
        }
    }
}

pin_project! {
    /// The answer to one request: the application's, in CGI form, or a 400
    /// for params that make no HTTP request. A type of its own so that the
    /// connection holds it without a box (benches/README.md).
    #[project = HttpAnswerProjection]
    pub enum HttpAnswer<S>
    where
        S: Service<Request<Body>>,
    {
        /// The params made no HTTP request (already reported as refused).
        BadRequest,
        /// The application is answering.
        Application { #[pin] call: Oneshot<S, Request<Body>> },
    }
}

impl<S, B> Future for HttpAnswer<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = CgiResponse;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CgiResponse> {
        match self.project() {
            HttpAnswerProjection::BadRequest => {
                Poll::Ready(simple_response(400, "Bad Request", "bad request\n"))
            }
            HttpAnswerProjection::Application { call } => match ready!(call.poll(cx)) {
                Ok(response) => Poll::Ready(into_cgi_response(response)),
                Err(never) => match never {},
            },
        }
    }
}
