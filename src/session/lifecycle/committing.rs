//! The session layer's future for one request: the handler's answer, then
//! the session's commit and the headers it brings (the cookie, PHP's
//! caching headers). A future of its own rather than an `async` block, so
//! that its type can be named and a request whose session holds nothing to
//! store (most of a site's requests) costs no heap allocation here
//! (benches/README.md, "Allocations on the request path"); a commit that
//! stores something is boxed, next to the backend round trips it makes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::header::SET_COOKIE;
use pin_project_lite::pin_project;

use super::layer::{add_cache_limiter_headers, keep_out_of_shared_caches};
use super::runtime::SessionRuntime;
use super::session::{CommitOutcome, Session};
use crate::session::SessionError;
use crate::trace::TraceSpan;

pin_project! {
    /// The session layer's future for one request.
    pub struct SessionFuture<F> {
        #[pin]
        stage: Stage<F>,
        session: Session,
        store: Arc<SessionRuntime>,
        // Whether the request came over HTTPS, for the cookie's `Secure`.
        https: bool,
        // The handler's span while it runs (empty when not traced).
        handler: TraceSpan,
    }
}

pin_project! {
    #[project = StageProjection]
    enum Stage<F> {
        // The handler runs.
        Handler { #[pin] call: F },
        // The session is being stored; the handler's response waits.
        Commit {
            commit: BoxFuture<'static, Result<CommitOutcome, SessionError>>,
            response: Option<Response>,
            // The write's span (empty when not traced).
            write: TraceSpan,
        },
    }
}

impl<F> SessionFuture<F> {
    pub(super) fn new(
        call: F,
        session: Session,
        store: Arc<SessionRuntime>,
        https: bool,
        handler: TraceSpan,
    ) -> Self {
        Self {
            stage: Stage::Handler { call },
            session,
            store,
            https,
            handler,
        }
    }
}

impl<F> Future for SessionFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.stage.as_mut().project() {
                StageProjection::Handler { call } => {
                    let polled = this.handler.within(|| call.poll(cx));
                    let response = match ready!(polled) {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    std::mem::take(this.handler).end();
                    if let Some(outcome) = this.session.commit_now() {
                        return Poll::Ready(Ok(with_session_headers(
                            response,
                            Ok(outcome),
                            this.store,
                            *this.https,
                        )));
                    }
                    let session = this.session.clone();
                    this.stage.set(Stage::Commit {
                        commit: Box::pin(async move { session.commit().await }),
                        response: Some(response),
                        write: TraceSpan::under_current("session write"),
                    });
                }
                StageProjection::Commit {
                    commit,
                    response,
                    write,
                } => {
                    let polled = write.within(|| commit.as_mut().poll(cx));
                    let outcome = ready!(polled);
                    if let Err(error) = &outcome {
                        write.fail(error);
                    }
                    std::mem::take(write).end();
                    let response = response
                        .take()
                        .expect("a SessionFuture polled after it completed");
                    return Poll::Ready(Ok(with_session_headers(
                        response,
                        outcome,
                        this.store,
                        *this.https,
                    )));
                }
            }
        }
    }
}

/// The handler's `response` with what the commit brings: the cookie to set
/// or remove and the caching headers; a 503 (or the error's own answer)
/// when the session could not be stored.
fn with_session_headers(
    mut response: Response,
    committed: Result<CommitOutcome, SessionError>,
    store: &SessionRuntime,
    https: bool,
) -> Response {
    let outcome = match committed {
        Ok(outcome) => outcome,
        Err(error) => return error.into_response(),
    };
    let headers = response.headers_mut();
    let sets_cookie = outcome.set_cookie.is_some() || outcome.remove_cookie;
    if let Some(id) = outcome.set_cookie {
        headers.append(SET_COOKIE, store.cookie.set_cookie(&id, https));
    } else if outcome.remove_cookie {
        headers.append(SET_COOKIE, store.cookie.removal_cookie(https));
    }
    if outcome.used {
        add_cache_limiter_headers(
            headers,
            store.settings.cache_limiter,
            store.settings.cache_expire,
        );
    }
    if sets_cookie {
        keep_out_of_shared_caches(headers, store.settings.cache_limiter);
    }
    response
}
