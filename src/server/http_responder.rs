//! Runs a tower service over `http` types (an axum `Router`, the NeNe
//! dispatcher, …) as the FastCGI responder. (The access log is written by
//! the operations layer, `crate::ops`; requests refused before it are
//! handed to the refusal log installed with [`HttpResponder::on_refusal`].)

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
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
            Ok(request) => {
                // Asked without waiting: a service that is ready at once
                // (nene's own stack always is) is called here, and its
                // future goes out as it is; `Oneshot` would move it again on
                // the first poll (copies of a future of about a kilobyte,
                // ~300 instructions a request).
                let mut service = self.service.clone();
                let mut cx = Context::from_waker(Waker::noop());
                match service.poll_ready(&mut cx) {
                    Poll::Ready(Ok(())) => HttpAnswer::Called {
                        call: service.call(request),
                    },
                    Poll::Ready(Err(never)) => match never {},
                    Poll::Pending => HttpAnswer::Waiting {
                        call: service.oneshot(request),
                    },
                }
            }
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
        Called { #[pin] call: S::Future },
        /// The application was not ready for the request: it is called
        /// once it is.
        Waiting { #[pin] call: Oneshot<S, Request<Body>> },
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
        let answered = match self.project() {
            HttpAnswerProjection::BadRequest => {
                return Poll::Ready(simple_response(400, "Bad Request", "bad request\n"));
            }
            HttpAnswerProjection::Called { call } => ready!(call.poll(cx)),
            HttpAnswerProjection::Waiting { call } => ready!(call.poll(cx)),
        };
        match answered {
            Ok(response) => Poll::Ready(into_cgi_response(response)),
            Err(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::fastcgi::CgiParams;

    use super::*;

    /// Answers `X-Asked: N`, N being how often it was asked whether it is
    /// ready; not ready the first `busy` times, and refusing a call made
    /// before it said it was.
    #[derive(Clone)]
    struct Busy {
        busy: usize,
        asked: Arc<AtomicUsize>,
        ready: bool,
    }

    impl Service<Request<Body>> for Busy {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            if self.asked.fetch_add(1, Ordering::SeqCst) < self.busy {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<Body>) -> Self::Future {
            assert!(self.ready, "called before it was ready");
            let asked = self.asked.load(Ordering::SeqCst).to_string();
            let response = Response::builder().header("x-asked", asked);
            std::future::ready(Ok(response.body(Body::empty()).unwrap()))
        }
    }

    async fn answer_of(busy: usize) -> String {
        let service = Busy {
            busy,
            asked: Arc::default(),
            ready: false,
        };
        let request = CgiRequest {
            params: CgiParams::new(vec![
                (Bytes::from("REQUEST_METHOD"), Bytes::from("GET")),
                (Bytes::from("REQUEST_URI"), Bytes::from("/")),
            ]),
            body: Bytes::new().into(),
        };
        let answer = HttpResponder::new(service).respond(request).await;
        String::from_utf8_lossy(&answer.head).into_owned()
    }

    #[tokio::test]
    async fn a_ready_service_is_called_at_once_and_a_busy_one_when_ready() {
        assert!(answer_of(0).await.contains("X-Asked: 1\r\n"));
        assert!(answer_of(2).await.contains("X-Asked: 3\r\n"));
    }
}
