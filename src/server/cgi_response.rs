//! Writes an `http::Response` as a CGI response: a `Status:` line unless
//! the status is 200 (and another field follows), the headers, a blank
//! line, then the body streamed as it is produced.

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use http::Response;
use http::header::CONTENT_LENGTH;
use http_body::Body as HttpBody;
use http_body_util::BodyDataStream;

use crate::fastcgi::{BoxError, CgiResponse, ResponseBody};

/// Turns an `http` response into a CGI head and a body stream. Adds
/// `content-length` when the body's size is known and the header is missing.
pub fn into_cgi_response<B>(response: Response<B>) -> CgiResponse
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    let mut head = BytesMut::with_capacity(256);
    // CGI's default is 200, and PHP sends `Status:` only for another status:
    // some web servers (Caddy's php_fastcgi) pass the line on to the client
    // as a header. A head needs at least one field (RFC 3875), so a 200
    // without any header still says its status.
    let known_length = body.size_hint().exact().is_some();
    if parts.status != http::StatusCode::OK || (parts.headers.is_empty() && !known_length) {
        head.put_slice(b"Status: ");
        head.put_slice(parts.status.as_str().as_bytes());
        head.put_u8(b' ');
        head.put_slice(
            parts
                .status
                .canonical_reason()
                .unwrap_or("Unknown")
                .as_bytes(),
        );
        head.put_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        // `HeaderValue` cannot hold CR or LF, but the head is where header
        // injection would happen, so it is checked once more here.
        if value.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n') {
            tracing::error!("dropping response header {name}: its value contains CR or LF");
            continue;
        }
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    let exact_len = body.size_hint().exact();
    if let Some(len) = exact_len
        && !parts.headers.contains_key(CONTENT_LENGTH)
    {
        // A known length lets nginx keep the client connection alive without
        // chunked encoding.
        head.put_slice(b"content-length: ");
        head.put_slice(len.to_string().as_bytes());
        head.put_slice(b"\r\n");
    }
    head.put_slice(b"\r\n");

    let body = if exact_len == Some(0) {
        ResponseBody::Full(Bytes::new())
    } else {
        ResponseBody::Stream(
            BodyDataStream::new(body)
                .map(|chunk| chunk.map_err(Into::into))
                .boxed(),
        )
    };
    CgiResponse {
        head: head.freeze(),
        body,
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
            b"Status: 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: 4\r\n\r\n"
        );
        let ok = Response::new(Full::new(Bytes::from_static(b"yes")));
        assert_eq!(
            &into_cgi_response(ok).head[..],
            b"content-length: 3\r\n\r\n",
            "200 is CGI's default: no Status line"
        );
    }
}
