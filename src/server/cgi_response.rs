//! Writes an `http::Response` as a CGI response: a `Status:` line unless
//! the status is 200 (and another field follows), the headers, a blank
//! line, then the body streamed as it is produced.

use std::future::ready;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt, stream};
use http::HeaderName;
use http::Response;
use http::header::CONTENT_LENGTH;
use http_body::Body as HttpBody;
use http_body_util::BodyDataStream;

use crate::fastcgi::{BoxError, CgiResponse, ResponseBody};

/// Turns an `http` response into a CGI head and a body stream. Adds
/// `content-length` when the body's size is known and the header is missing.
pub fn into_cgi_response<B>(response: Response<B>) -> CgiResponse
where
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    // CGI's default is 200, and PHP sends `Status:` only for another status:
    // some web servers (Caddy's php_fastcgi) pass the line on to the client
    // as a header. A head needs at least one field (RFC 3875), so a 200
    // without any header still says its status.
    let exact_len = body.size_hint().exact();
    let status_line =
        parts.status != http::StatusCode::OK || (parts.headers.is_empty() && exact_len.is_none());
    let reason = parts.status.canonical_reason().unwrap_or("Unknown");
    // A known length lets nginx keep the client connection alive without
    // chunked encoding.
    let added_length = exact_len.filter(|_| !parts.headers.contains_key(CONTENT_LENGTH));
    // The head's exact size, so that freezing it makes no second allocation
    // (`Bytes` takes a buffer with room to spare by allocating a shared
    // header for it; one allocation a request, benches/README.md).
    // Each value is checked for line breaks once: a header that has them
    // (never, in practice) makes both passes skip it.
    let any_broken = parts.headers.values().any(breaks_the_line);
    let kept = |value: &http::HeaderValue| !any_broken || !breaks_the_line(value);
    let mut length = itoa::Buffer::new();
    let added_length = added_length.map(|len| length.format(len));
    let size = usize::from(status_line) * (b"Status: 200 \r\n".len() + reason.len())
        + (parts.headers.iter())
            .filter(|(_, value)| kept(value))
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>()
        + added_length.map_or(0, |len| b"Content-Length: \r\n".len() + len.len())
        + 2;
    let mut head = BytesMut::with_capacity(size);
    if status_line {
        head.put_slice(b"Status: ");
        head.put_slice(parts.status.as_str().as_bytes());
        head.put_u8(b' ');
        head.put_slice(reason.as_bytes());
        head.put_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if !kept(value) {
            tracing::error!("dropping response header {name}: its value contains CR or LF");
            continue;
        }
        put_header_name(&mut head, name);
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    if let Some(len) = added_length {
        head.put_slice(b"Content-Length: ");
        head.put_slice(len.as_bytes());
        head.put_slice(b"\r\n");
    }
    head.put_slice(b"\r\n");
    debug_assert_eq!(head.len(), size, "the head's size was counted wrong");

    let body = match exact_len {
        Some(0) => ResponseBody::Full(Bytes::new()),
        Some(len) => whole_at_once(body, len),
        None => streamed(body),
    };
    CgiResponse {
        head: head.freeze(),
        body,
    }
}

/// A body of `len` bytes that has them all at once (a handler's answer
/// built in memory: JSON, a page, a string) goes out whole, without the
/// boxed stream a body produced piece by piece needs: one allocation less
/// per request. Asked once, without waiting: a body that is not ready, or
/// gives less than `len`, is streamed from where it is.
fn whole_at_once<B>(mut body: B, len: u64) -> ResponseBody
where
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Pending => streamed(body),
        Poll::Ready(None) => ResponseBody::Full(Bytes::new()),
        Poll::Ready(Some(Err(error))) => {
            ResponseBody::Stream(stream::once(ready(Err(error.into()))).boxed())
        }
        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) if data.len() as u64 == len => ResponseBody::Full(data),
            // A first piece, or trailers (which CGI cannot carry): what
            // follows is streamed after it.
            first => {
                let first = first.unwrap_or_default();
                ResponseBody::Stream(stream::once(ready(Ok(first))).chain(data_of(body)).boxed())
            }
        },
    }
}

/// The body as a stream of its data.
fn streamed<B>(body: B) -> ResponseBody
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    ResponseBody::Stream(data_of(body).boxed())
}

fn data_of<B>(body: B) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BodyDataStream::new(body).map(|chunk| chunk.map_err(Into::into))
}

/// Whether `value` holds CR or LF. `HeaderValue` cannot, but the head is
/// where header injection would happen, so it is checked once more here.
fn breaks_the_line(value: &http::HeaderValue) -> bool {
    value.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n')
}

/// Writes a header name as PHP-FPM's responses spell it: each word
/// capitalised (`Set-Cookie`, `Cache-Control`, `X-Frame-Options`), and the
/// few names whose usual spelling is otherwise (`ETag`, `WWW-Authenticate`)
/// as usual. `http` keeps names in lower case; HTTP does not care, but log
/// parsers, tests and WAF rules written against a PHP site's answers match
/// them case-sensitively.
fn put_header_name(head: &mut BytesMut, name: &HeaderName) {
    if let Some(spelled) = spelled_out(name) {
        head.put_slice(spelled);
        return;
    }
    // Copied whole, then each word's first letter raised in place: a
    // byte-at-a-time push into the buffer cost about 500 instructions per
    // request more (benches/instructions.sh).
    let start = head.len();
    head.put_slice(name.as_str().as_bytes());
    let mut word_starts = true;
    for byte in &mut head[start..] {
        if word_starts {
            byte.make_ascii_uppercase();
        }
        word_starts = *byte == b'-';
    }
}

/// The spelling of the names nene's own answers carry on every request,
/// found by comparing `http`'s standard names (cheap: no bytes compared),
/// and of the few whose usual spelling is not one capital per word.
fn spelled_out(name: &HeaderName) -> Option<&'static [u8]> {
    use http::header::{
        CACHE_CONTROL, CONTENT_TYPE, ETAG, EXPIRES, LOCATION, PRAGMA, SET_COOKIE, TE,
        WWW_AUTHENTICATE,
    };
    let spelled: &[(&HeaderName, &[u8])] = &[
        (&CONTENT_TYPE, b"Content-Type"),
        (&CONTENT_LENGTH, b"Content-Length"),
        (&SET_COOKIE, b"Set-Cookie"),
        (&CACHE_CONTROL, b"Cache-Control"),
        (&EXPIRES, b"Expires"),
        (&PRAGMA, b"Pragma"),
        (&LOCATION, b"Location"),
        (&ETAG, b"ETag"),
        (&WWW_AUTHENTICATE, b"WWW-Authenticate"),
        (&TE, b"TE"),
    ];
    if let Some((_, spelling)) = spelled.iter().find(|(known, _)| *known == name) {
        return Some(spelling);
    }
    match name.as_str() {
        "content-md5" => Some(b"Content-MD5"),
        "x-xss-protection" => Some(b"X-XSS-Protection"),
        "x-ua-compatible" => Some(b"X-UA-Compatible"),
        "dnt" => Some(b"DNT"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[test]
    fn status_headers_and_length_make_the_head() {
        let response = Response::builder()
            .status(404)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(b"nope")))
            .unwrap();
        let cgi = into_cgi_response(response);
        assert_eq!(
            &cgi.head[..],
            b"Status: 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 4\r\n\r\n"
        );
        let ok = Response::new(Full::new(Bytes::from_static(b"yes")));
        assert_eq!(
            &into_cgi_response(ok).head[..],
            b"Content-Length: 3\r\n\r\n",
            "200 is CGI's default: no Status line"
        );
    }

    #[test]
    fn header_names_are_spelled_as_php_fpm_sends_them() {
        let response = Response::builder()
            .header("set-cookie", "a=1")
            .header("cache-control", "no-store")
            .header("x-frame-options", "DENY")
            .header("etag", "\"1\"")
            .header("www-authenticate", "Basic")
            .header("x-a", "1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(
            &into_cgi_response(response).head[..],
            &b"Set-Cookie: a=1\r\nCache-Control: no-store\r\nX-Frame-Options: DENY\r\n\
               ETag: \"1\"\r\nWWW-Authenticate: Basic\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n"[..]
        );
    }

    /// Everything the body gives, in order.
    async fn collected(body: ResponseBody) -> Vec<u8> {
        match body {
            ResponseBody::Full(bytes) => bytes.to_vec(),
            ResponseBody::Stream(stream) => {
                let chunks: Vec<_> = stream.collect().await;
                chunks
                    .into_iter()
                    .flat_map(|chunk| chunk.unwrap())
                    .collect()
            }
        }
    }

    #[tokio::test]
    async fn a_body_held_whole_goes_out_whole_and_any_other_is_streamed_intact() {
        let whole = into_cgi_response(Response::new(Full::new(Bytes::from_static(b"all of it"))));
        assert!(matches!(&whole.body, ResponseBody::Full(bytes) if &bytes[..] == b"all of it"));

        // Its length known, but given in two pieces: streamed, nothing lost.
        let two = axum::body::Body::new(SizedStream {
            inner: http_body_util::StreamBody::new(futures::stream::iter([
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(
                    b"first ",
                ))),
                Ok(http_body::Frame::data(Bytes::from_static(b"second"))),
            ])),
            len: 12,
        });
        let response = into_cgi_response(Response::new(two));
        assert!(matches!(response.body, ResponseBody::Stream(_)));
        assert_eq!(collected(response.body).await, b"first second");

        // Not ready when asked: streamed, nothing lost.
        let (sender, later) = tokio::sync::oneshot::channel::<Bytes>();
        let pending = axum::body::Body::new(SizedStream {
            inner: http_body_util::StreamBody::new(
                futures::stream::once(async move {
                    Ok::<_, std::convert::Infallible>(http_body::Frame::data(later.await.unwrap()))
                })
                .boxed(),
            ),
            len: 5,
        });
        let response = into_cgi_response(Response::new(pending));
        assert!(matches!(response.body, ResponseBody::Stream(_)));
        sender.send(Bytes::from_static(b"later")).unwrap();
        assert_eq!(collected(response.body).await, b"later");
    }

    /// A streamed body that says its exact length.
    struct SizedStream<S> {
        inner: http_body_util::StreamBody<S>,
        len: u64,
    }

    impl<S, E> HttpBody for SizedStream<S>
    where
        S: futures::Stream<Item = Result<http_body::Frame<Bytes>, E>> + Unpin,
    {
        type Data = Bytes;
        type Error = E;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, E>>> {
            Pin::new(&mut self.inner).poll_frame(cx)
        }

        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.len)
        }
    }
}
