//! Requests answered before the operations layer saw them (413, 431, 400,
//! 503 from the protocol layer or the CGI bridge, a handler's panic): each
//! is counted for the status page and gets its access-log line, as PHP-FPM
//! logs every request. Their method, path and client come from the CGI
//! params as far as they were read; what is not known is `-`.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::fastcgi::{CLIENT_GONE, CgiParams, Refusal};

use super::Ops;
use super::access_format::{AccessRecord, split_target};

impl Ops {
    /// Counts `refusal` and writes its access-log line (installed on the
    /// FastCGI responder at start-up).
    pub fn log_refusal(&self, refusal: &Refusal<'_>) {
        // A request its client abandoned was not refused: it has its log
        // line, not a count.
        if refusal.status != CLIENT_GONE {
            self.metrics.refused.fetch_add(1, Ordering::Relaxed);
        }
        if self.access_log.is_off() {
            return;
        }
        let params = refusal.params;
        let text = |name| {
            params
                .and_then(|p| p.get(name))
                .filter(|value| !value.is_empty())
                .map(String::from_utf8_lossy)
        };
        let method = text("REQUEST_METHOD").unwrap_or(Cow::Borrowed("-"));
        let target = text("REQUEST_URI").unwrap_or(Cow::Borrowed("-"));
        let (path, query) = split_target(&target);
        let request_headers = match params {
            Some(params) if self.access_needs_request_headers => request_headers(params),
            _ => HeaderMap::new(),
        };
        let line = self.access_format.render(&AccessRecord {
            method: &method,
            path,
            query,
            status: refusal.status,
            duration: refusal.elapsed,
            params,
            request_headers: &request_headers,
            response_headers: &HeaderMap::new(),
            trace_id: None,
        });
        self.access_log.write_line(&line);
    }
}

/// The `HTTP_*` params as headers, for `%{Header}i`; a name or value HTTP
/// forbids is left out.
fn request_headers(params: &CgiParams) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in params.iter() {
        let Some(http_name) = name.strip_prefix(b"HTTP_") else {
            continue;
        };
        let http_name: Vec<u8> = http_name
            .iter()
            .map(|&b| if b == b'_' { b'-' } else { b })
            .collect();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&http_name),
            HeaderValue::from_bytes(value),
        ) {
            // Bounded: the params were bounded by max_params.
            let _ = headers.try_append(name, value);
        }
    }
    headers
}
