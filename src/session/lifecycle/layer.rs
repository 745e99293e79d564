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
        let offered = store.cookie.candidate_ids(&parts);
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
    // The fixed values are static, and a formatted one is taken as it is
    // (`HeaderValue::try_from(String)` keeps its bytes): no copy of either
    // on every request that uses its session.
    let fixed = |value: &'static str| Some(HeaderValue::from_static(value));
    let formatted = |value: String| HeaderValue::try_from(value).ok();
    let mut set = |name, value: Option<HeaderValue>| {
        if let Some(value) = value {
            headers.insert(name, value);
        }
    };
    match limiter {
        CacheLimiter::Nocache => {
            set(EXPIRES, fixed(EXPIRED));
            set(CACHE_CONTROL, fixed("no-store, no-cache, must-revalidate"));
            set(PRAGMA, fixed("no-cache"));
        }
        CacheLimiter::Private => {
            set(EXPIRES, fixed(EXPIRED));
            set(
                CACHE_CONTROL,
                formatted(format!("private, max-age={max_age}")),
            );
        }
        CacheLimiter::PrivateNoExpire => {
            set(
                CACHE_CONTROL,
                formatted(format!("private, max-age={max_age}")),
            );
        }
        CacheLimiter::Public => {
            let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(max_age);
            set(EXPIRES, formatted(httpdate::fmt_http_date(expires)));
            set(
                CACHE_CONTROL,
                formatted(format!("public, max-age={max_age}")),
            );
        }
        CacheLimiter::Unset => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    /// The headers each limiter adds to an answer that set none, for
    /// `session.cache_expire = 180`, as PHP sends them.
    fn added(limiter: CacheLimiter) -> Vec<(String, String)> {
        let mut headers = HeaderMap::new();
        add_cache_limiter_headers(&mut headers, limiter, 180);
        let mut added: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
            .collect();
        added.sort();
        added
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn each_cache_limiter_adds_what_php_sends() {
        assert_eq!(
            added(CacheLimiter::Nocache),
            pairs(&[
                ("cache-control", "no-store, no-cache, must-revalidate"),
                ("expires", EXPIRED),
                ("pragma", "no-cache"),
            ])
        );
        assert_eq!(
            added(CacheLimiter::Private),
            pairs(&[
                ("cache-control", "private, max-age=10800"),
                ("expires", EXPIRED),
            ])
        );
        assert_eq!(
            added(CacheLimiter::PrivateNoExpire),
            pairs(&[("cache-control", "private, max-age=10800")])
        );
        assert_eq!(added(CacheLimiter::Unset), pairs(&[]));

        let public = added(CacheLimiter::Public);
        assert_eq!(public.len(), 2, "{public:?}");
        assert_eq!(
            public[0],
            pairs(&[("cache-control", "public, max-age=10800")])[0]
        );
        assert_eq!(public[1].0, "expires");
        let expires = httpdate::parse_http_date(&public[1].1).unwrap();
        let expected = SystemTime::now() + Duration::from_secs(10800);
        let off = expected
            .duration_since(expires)
            .unwrap_or_else(|early| early.duration());
        assert!(off <= Duration::from_secs(2), "{public:?}");
    }

    #[test]
    fn a_cache_control_the_handler_set_wins() {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        add_cache_limiter_headers(&mut headers, CacheLimiter::Nocache, 180);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[CACHE_CONTROL], "max-age=60");
    }
}
