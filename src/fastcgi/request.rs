//! A request as the protocol layer sees it: CGI params and a body, plus the
//! state of one request while its records are still arriving.

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::error::ProtocolError;
use super::limits::ConnectionLimits;
use super::name_value::parse_name_values;

/// The CGI meta-variables of one request, in the order the peer sent them.
/// Names and values are opaque bytes (nothing forces a peer to send UTF-8).
#[derive(Clone, Debug, Default)]
pub struct CgiParams {
    pairs: Vec<(Bytes, Bytes)>,
}

impl CgiParams {
    /// Wraps pairs already parsed, in the order the peer sent them.
    pub fn new(pairs: Vec<(Bytes, Bytes)>) -> Self {
        Self { pairs }
    }

    /// The value of `name`, if sent. The last one wins when a name repeats,
    /// as with nginx's `fastcgi_param` overrides.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key.as_ref() == name.as_bytes())
            .map(|(_, value)| value)
    }

    /// REMOTE_ADDR as an IP address, when nginx sent a valid one.
    pub fn remote_ip(&self) -> Option<std::net::IpAddr> {
        self.get_str("REMOTE_ADDR")?.parse().ok()
    }

    /// The value of `name` when it is present and valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All pairs in the order sent, repeats included.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.pairs.iter().map(|(name, value)| (name, value))
    }

    /// How many pairs were sent, repeats included.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the peer sent no params at all.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// A complete responder request: everything the peer sent for one request id.
#[derive(Clone, Debug)]
pub struct CgiRequest {
    /// The CGI meta-variables (REQUEST_METHOD, SCRIPT_NAME, HTTP_* and so on).
    pub params: CgiParams,
    /// The whole request body (STDIN), already checked against CONTENT_LENGTH
    /// and `max_body_bytes`.
    pub body: Bytes,
}

/// Why a request is answered by the protocol layer itself, without reaching
/// the application. Its records are still read (and discarded) to the end, so
/// the connection stays in step with the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// More than `max_params_bytes` of params.
    ParamsTooLarge,
    /// A body (or a CONTENT_LENGTH) over `max_body_bytes`.
    BodyTooLarge,
    /// CONTENT_LENGTH that is not a number, or does not match the body sent.
    BadContentLength,
}

/// One request whose records are still arriving.
pub(crate) struct IncomingRequest {
    /// The request id, for error messages.
    id: u16,
    /// When its BEGIN_REQUEST arrived; the receive deadline counts from here.
    pub started: Instant,
    params_bytes: BytesMut,
    params: Option<CgiParams>,
    declared_body_len: Option<usize>,
    body: BytesMut,
    body_done: bool,
    rejection: Option<Rejection>,
}

/// What a record did to an incoming request.
pub(crate) enum Progress {
    /// More records are needed.
    Pending,
    /// The request is complete and valid.
    Complete(CgiRequest),
    /// The request is complete and must be answered with this rejection.
    Rejected(Rejection),
}

impl IncomingRequest {
    /// Starts the state of request `id`, and its receive clock, at its
    /// BEGIN_REQUEST.
    pub fn new(id: u16) -> Self {
        Self {
            id,
            started: Instant::now(),
            params_bytes: BytesMut::new(),
            params: None,
            declared_body_len: None,
            body: BytesMut::new(),
            body_done: false,
            rejection: None,
        }
    }

    /// Takes one PARAMS record's content (empty = end of params).
    pub fn on_params(
        &mut self,
        content: &[u8],
        limits: &ConnectionLimits,
    ) -> Result<Progress, ProtocolError> {
        if self.params.is_some() {
            return Err(ProtocolError::UnexpectedRecord {
                record_type: super::RecordType::PARAMS,
                request_id: self.id,
            });
        }
        if !content.is_empty() {
            if self.rejection.is_none() {
                if self.params_bytes.len() + content.len() > limits.max_params_bytes {
                    self.reject(Rejection::ParamsTooLarge);
                } else {
                    self.params_bytes.extend_from_slice(content);
                }
            }
            return Ok(Progress::Pending);
        }
        let params = if self.rejection.is_some() {
            CgiParams::default()
        } else {
            let raw = std::mem::take(&mut self.params_bytes).freeze();
            CgiParams::new(parse_name_values(&raw)?)
        };
        if self.rejection.is_none() {
            self.check_declared_length(&params, limits);
        }
        self.params = Some(params);
        Ok(self.progress())
    }

    /// Takes one STDIN record's content (empty = end of body).
    pub fn on_stdin(
        &mut self,
        content: &[u8],
        limits: &ConnectionLimits,
    ) -> Result<Progress, ProtocolError> {
        if self.body_done {
            return Err(ProtocolError::UnexpectedRecord {
                record_type: super::RecordType::STDIN,
                request_id: self.id,
            });
        }
        if content.is_empty() {
            self.body_done = true;
        } else if self.rejection.is_none() {
            if self.body.len() + content.len() > limits.max_body_bytes {
                self.reject(Rejection::BodyTooLarge);
            } else {
                self.body.extend_from_slice(content);
            }
        }
        Ok(self.progress())
    }

    fn check_declared_length(&mut self, params: &CgiParams, limits: &ConnectionLimits) {
        let Some(raw) = params.get("CONTENT_LENGTH") else {
            return;
        };
        if raw.is_empty() {
            return;
        }
        match std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        {
            None => self.reject(Rejection::BadContentLength),
            Some(len) if len > limits.max_body_bytes => self.reject(Rejection::BodyTooLarge),
            Some(len) => {
                self.declared_body_len = Some(len);
                // Reserve for what the peer announced, but only up to what
                // one record brings: memory follows bytes received, not
                // bytes promised.
                self.body.reserve(len.min(super::MAX_CONTENT_LEN));
            }
        }
    }

    fn reject(&mut self, rejection: Rejection) {
        self.rejection.get_or_insert(rejection);
        // Free what was held: a rejected request's bytes are discarded.
        self.params_bytes = BytesMut::new();
        self.body = BytesMut::new();
    }

    fn progress(&mut self) -> Progress {
        if !self.body_done || self.params.is_none() {
            return Progress::Pending;
        }
        if let Some(declared) = self.declared_body_len
            && self.rejection.is_none()
            && declared != self.body.len()
        {
            self.reject(Rejection::BadContentLength);
        }
        if let Some(rejection) = self.rejection {
            return Progress::Rejected(rejection);
        }
        Progress::Complete(CgiRequest {
            params: self.params.take().unwrap_or_default(),
            body: std::mem::take(&mut self.body).freeze(),
        })
    }
}
