//! CSRF protection with a synchronizer token, as Laravel and Symfony do it:
//! the session holds one random token per session (key `_token`, as
//! Laravel names it), a form carries it as the hidden field `_token` (both
//! frameworks' field name) or a script sends it in `X-CSRF-Token`, and
//! [`RequireCsrf`] refuses every request of another method than GET, HEAD,
//! OPTIONS or TRACE whose token is missing or wrong, before the handler
//! runs. The session cookie's `SameSite=Lax` (nene's default) is a second
//! line, not the only one.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{Html, IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Method, Request, StatusCode};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::request_context::RequestContext;
use crate::session::{Session, SessionError};

/// The session key of the token (Laravel's).
const SESSION_KEY: &str = "_token";
/// The form field that carries it (Laravel's and Symfony's).
const FIELD: &str = "_token";
/// The request header that carries it instead, for scripts.
const HEADER: &str = "x-csrf-token";
/// Random bytes in a token: 256 bits, as hex.
const TOKEN_BYTES: usize = 32;

/// The session's CSRF token, for a form (`{{ csrf.hidden_field() }}`) or a
/// page's script. Taken as a handler argument, it is made (and stored in
/// the session) on the first page that asks for it.
#[derive(Clone, Debug)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token: 64 hexadecimal characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<input type="hidden" name="_token" value="…">` for a form (the
    /// token is hexadecimal: nothing in it needs escaping).
    pub fn hidden_field(&self) -> String {
        format!(r#"<input type="hidden" name="{FIELD}" value="{}">"#, self.0)
    }

    /// The session's token, made and stored if it has none yet. A session
    /// that has one is only read, without its lock (as `ReadOnlySession`
    /// reads): a page that shows a form does not queue behind the
    /// session's other requests for it.
    pub async fn of(session: &Session) -> Result<CsrfToken, SessionError> {
        match session.get_read_only::<String>(SESSION_KEY).await? {
            Some(token) => Ok(CsrfToken(token)),
            None => Self::rotate(session).await,
        }
    }

    /// A new token in place of the session's: call it at login, so that a
    /// token seen before signing in is worth nothing after.
    pub async fn rotate(session: &Session) -> Result<CsrfToken, SessionError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        let token: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        session.insert(SESSION_KEY, &token).await?;
        Ok(CsrfToken(token))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Self::of(&session)
            .await
            .map_err(IntoResponse::into_response)
    }
}

/// The answer to a request refused for its token, given the request's head.
type Rejection = Arc<dyn Fn(&Parts) -> Response + Send + Sync>;

/// A layer that checks the CSRF token of every request that may change
/// state (any method but GET, HEAD, OPTIONS and TRACE): from the
/// `X-CSRF-Token` header, or else from the `_token` field of an
/// `application/x-www-form-urlencoded` body. A missing or wrong token is
/// answered 403 (an HTML page unless [`RequireCsrf::rejection`] says
/// otherwise) and the handler never runs. The token is read without the
/// session's lock, so the check adds no wait for it.
///
/// A `multipart/form-data` form must send the token in the header: its
/// fields are not read here.
#[derive(Clone)]
pub struct RequireCsrf {
    rejection: Rejection,
}

impl Default for RequireCsrf {
    fn default() -> Self {
        Self::new()
    }
}

impl RequireCsrf {
    /// The check, with a plain HTML 403 page for refusals.
    pub fn new() -> Self {
        Self {
            rejection: Arc::new(|_: &Parts| {
                let page = "<!doctype html><title>403 Forbidden</title><h1>Forbidden</h1>\n<p>The form was too old or not sent from this site. Go back, reload the page and send it again.</p>\n";
                (StatusCode::FORBIDDEN, Html(page)).into_response()
            }),
        }
    }

    /// Refusals answered by `rejection` instead, given the refused
    /// request's head (a JSON error for an API's paths, a page for others).
    pub fn rejection(
        mut self,
        rejection: impl Fn(&Parts) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.rejection = Arc::new(rejection);
        self
    }
}

impl<S> Layer<S> for RequireCsrf {
    type Service = CsrfChecked<S>;

    fn layer(&self, inner: S) -> CsrfChecked<S> {
        CsrfChecked {
            inner,
            rejection: self.rejection.clone(),
        }
    }
}

/// A service behind [`RequireCsrf`].
#[derive(Clone)]
pub struct CsrfChecked<S> {
    inner: S,
    rejection: Rejection,
}

impl<S> Service<Request<Body>> for CsrfChecked<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    /// A safe method goes straight to the inner service's own future (no
    /// box for a page view); a checked one reads the session first, boxed.
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_safe(request.method()) {
            return Either::Left(inner.call(request));
        }
        let rejection = self.rejection.clone();
        Either::Right(Box::pin(async move {
            match checked(request).await {
                Ok(request) => inner.call(request).await,
                Err(Refused::Token(parts)) => Ok(rejection(&parts)),
                Err(Refused::Session(error)) => Ok(error.into_response()),
                Err(Refused::NoSession) => Ok((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no session: RequireCsrf runs outside nene's session layer\n",
                )
                    .into_response()),
            }
        }))
    }
}

/// Methods that must not change state (RFC 9110's safe methods).
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Why a request did not pass.
enum Refused {
    /// A missing or wrong token; the request's head, for the rejection.
    Token(Box<Parts>),
    Session(SessionError),
    NoSession,
}

/// The request, its body read and put back when the token came in a form;
/// or why it is refused.
async fn checked(request: Request<Body>) -> Result<Request<Body>, Refused> {
    let context = RequestContext::of(request.extensions());
    let session = context
        .and_then(|context| context.session.clone())
        .ok_or(Refused::NoSession)?;
    let expected: Option<String> = session
        .get_read_only(SESSION_KEY)
        .await
        .map_err(Refused::Session)?;
    let (parts, body) = request.into_parts();
    let refused = |parts| Err(Refused::Token(Box::new(parts)));
    // No token was ever handed out in this session: nothing sent can match.
    let Some(expected) = expected else {
        return refused(parts);
    };
    if let Some(sent) = parts.headers.get(HEADER) {
        if matches(sent.as_bytes(), &expected) {
            return Ok(Request::from_parts(parts, body));
        }
        return refused(parts);
    }
    let is_form = (parts.headers.get(CONTENT_TYPE))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return refused(parts);
    }
    // nene has already bounded the body (server.max_body_bytes) and holds
    // it in memory or a temporary file; reading it here reads it once.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return refused(parts);
    };
    let sent = form_urlencoded_field(&bytes, FIELD);
    if !sent.is_some_and(|sent| matches(sent.as_bytes(), &expected)) {
        return refused(parts);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The first value of `name` in a urlencoded body.
fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Equal tokens, compared in constant time (a timing difference would let a
/// page guess the token a byte at a time).
fn matches(sent: &[u8], expected: &str) -> bool {
    bool::from(sent.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_field_is_found_in_a_urlencoded_body() {
        let body = b"title=a+b%26c&_token=abc123&_token=second";
        assert_eq!(
            form_urlencoded_field(body, "_token").as_deref(),
            Some("abc123")
        );
        assert_eq!(
            form_urlencoded_field(body, "title").as_deref(),
            Some("a b&c")
        );
        assert_eq!(form_urlencoded_field(b"title=x", "_token"), None);
        assert_eq!(
            form_urlencoded_field(b"&&_token&", "_token").as_deref(),
            Some("")
        );
    }

    #[test]
    fn only_safe_methods_pass_unchecked() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe(&method), "{method}");
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!is_safe(&method), "{method}");
        }
        assert!(!is_safe(&Method::from_bytes(b"PURGE").unwrap()));
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(matches(b"abc", "abc"));
        assert!(!matches(b"abd", "abc"));
        assert!(!matches(b"ab", "abc"));
        assert!(!matches(b"", "abc"));
    }
}
