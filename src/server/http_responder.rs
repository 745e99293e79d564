//! Runs a tower service over `http` types (an axum `Router`, the NeNe
//! dispatcher, …) as the FastCGI responder. (The access log is written by
//! the operations layer, `crate::ops`; requests refused before it are
//! handed to the refusal log installed with [`HttpResponder::on_refusal`].)

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
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
    fn respond(&self, request: CgiRequest) -> impl Future<Output = CgiResponse> + Send + 'static {
        let started = Instant::now();
        // Built before the future, so a refusal is reported with `self`'s
        // log and nothing is cloned for it per request.
        let request = build_http_request_or_params(request).map_err(|(error, params)| {
            tracing::info!("bad request: {error}");
            self.refused(&Refusal {
                status: 400,
                params: Some(&params),
                elapsed: started.elapsed(),
            });
        });
        let service = self.service.clone();
        async move {
            let Ok(request) = request else {
                return simple_response(400, "Bad Request", "bad request\n");
            };
            let response = match service.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            into_cgi_response(response)
        }
    }

    fn refused(&self, refusal: &Refusal<'_>) {
        if let Some(log) = &self.refusals {
            log(refusal);
        }
    }
}
