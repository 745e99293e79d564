//! The session life cycle around every request, run by the runtime: offer
//! the cookie's id to a lazy [`Session`], run the handler, then commit —
//! write, touch or destroy, one Set-Cookie only when needed, PHP's
//! `session.cache_limiter` headers — and release the locks. A backend
//! failure at commit turns the response into a 503.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use http::header::{CACHE_CONTROL, EXPIRES, PRAGMA};
use http::{HeaderMap, HeaderValue, Request};
use tower::{Layer, Service};

use crate::layer_notes;
use crate::request_context::RequestContext;
use crate::session::CacheLimiter;
use crate::trace::TraceSpan;

use crate::session::lifecycle::committing::SessionFuture;
use crate::session::lifecycle::runtime::SessionRuntime;
use crate::session::lifecycle::session::Session;

/// PHP's fixed date for "already expired".
const EXPIRED: &str = "Thu, 19 Nov 1981 08:52:00 GMT";

/// Wraps a service so each request gets a [`Session`] that is committed
/// after the service answers.
#[derive(Clone)]
pub struct SessionLayer {
    store: Arc<SessionRuntime>,
}

impl SessionLayer {
    /// The layer over the store built at start-up.
    pub fn new(store: Arc<SessionRuntime>) -> Self {
        Self { store }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> SessionService<S> {
        SessionService {
            inner,
            store: self.store.clone(),
        }
    }
}

/// A service inside the session layer.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    store: Arc<SessionRuntime>,
}

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = SessionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let store = self.store.clone();
        // The service that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = request.into_parts();
        let offered: Vec<String> = store
            .cookie
            .candidate_ids(&parts)
            .into_iter()
            .map(str::to_string)
            .collect();
        let https = store.cookie.request_is_https(&parts);
        let context = RequestContext::of_mut(&mut parts.extensions);
        let client = context.peer.and_then(|peer| peer.client_ip);
        let session = Session::new(store.clone(), offered, client);
        layer_notes::note_session(&session);
        context.session = Some(session.clone());
        let request = Request::from_parts(parts, body);
        // The handler's span starts with its call (the request's span is
        // current here when the request is traced).
        let handler = TraceSpan::under_current("handler");
        let call = handler.within(|| inner.call(request));
        SessionFuture::new(call, session, store, https, handler)
    }
}

/// A response that sets (or removes) the session cookie must never be
/// stored by a shared cache, or the next visitor would get someone's
/// session id: whatever the handler or `cache_limiter = public` set, its
/// Cache-Control is made `private` (or `no-store` under the `nocache`
/// limiter) unless it already is.
pub(super) fn keep_out_of_shared_caches(headers: &mut HeaderMap, limiter: CacheLimiter) {
    let already_safe = headers.get_all(CACHE_CONTROL).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .map(|directive| directive.trim().to_ascii_lowercase())
                .any(|directive| directive == "private" || directive == "no-store")
        })
    });
    if already_safe {
        return;
    }
    let safe = match limiter {
        CacheLimiter::Nocache => "no-store, no-cache, must-revalidate",
        _ => "private, no-cache",
    };
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(safe));
    headers.remove(EXPIRES);
}

/// PHP's session.cache_limiter. Headers the handler set itself win.
pub(super) fn add_cache_limiter_headers(
    headers: &mut HeaderMap,
    limiter: CacheLimiter,
    expire_minutes: u64,
) {
    if headers.contains_key(CACHE_CONTROL) {
        return;
    }
    let max_age = expire_minutes * 60;
    let mut set = |name, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    match limiter {
        CacheLimiter::Nocache => {
            set(EXPIRES, EXPIRED.to_string());
            set(
                CACHE_CONTROL,
                "no-store, no-cache, must-revalidate".to_string(),
            );
            set(PRAGMA, "no-cache".to_string());
        }
        CacheLimiter::Private => {
            set(EXPIRES, EXPIRED.to_string());
            set(CACHE_CONTROL, format!("private, max-age={max_age}"));
        }
        CacheLimiter::PrivateNoExpire => set(CACHE_CONTROL, format!("private, max-age={max_age}")),
        CacheLimiter::Public => {
            let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(max_age);
            set(EXPIRES, httpdate::fmt_http_date(expires));
            set(CACHE_CONTROL, format!("public, max-age={max_age}"));
        }
        CacheLimiter::Unset => {}
    }
}
