//! A request as the protocol layer sees it — CGI params and a body — and
//! the state of one request while its records are still arriving: a small
//! body in memory, a larger one written to a temporary file as it arrives,
//! every byte held in memory drawn from the shared [`BufferBudget`].

use bytes::BytesMut;
use tokio::time::Instant;

use crate::log_limit::{LogLimit, and_more};

use super::body::{RequestBody, SpillFile};
use super::budget::{BudgetShare, BufferBudget};
use super::error::ProtocolError;
use super::limits::ConnectionLimits;
use super::params::{CgiParams, ParamsError};
use super::responder::{CgiResponse, simple_response};

/// Warnings a peer (or a full disk) can trigger at will: one line a second.
static SPILL_FAILURE_LINES: LogLimit = LogLimit::new();
static BUDGET_LINES: LogLimit = LogLimit::new();

/// A complete responder request: everything the peer sent for one request id.
#[derive(Debug)]
pub struct CgiRequest {
    /// The CGI meta-variables (REQUEST_METHOD, SCRIPT_NAME, HTTP_* and so on).
    pub params: CgiParams,
    /// The whole request body (STDIN), already checked against CONTENT_LENGTH
    /// and `max_body_bytes`: in memory, or in a temporary file when it was
    /// larger than `client_body_buffer_size`.
    pub body: RequestBody,
}

/// Why a request is answered by the protocol layer itself, without reaching
/// the application. Its records are still read (and discarded) to the end, so
/// the connection stays in step with the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejection {
    /// More than `max_params_bytes` of params.
    #[error("params over max_params_bytes")]
    ParamsTooLarge,
    /// More than `max_params` pairs.
    #[error("more params than max_params")]
    TooManyParams,
    /// A pair with an empty name: no CGI variable has one.
    #[error("a param with an empty name")]
    EmptyParamName,
    /// A body (or a CONTENT_LENGTH) over `max_body_bytes`.
    #[error("body over max_body_bytes")]
    BodyTooLarge,
    /// CONTENT_LENGTH that is not a number, or does not match the body sent.
    #[error("CONTENT_LENGTH does not match the body")]
    BadContentLength,
    /// `max_buffered_bytes` are all held by requests in progress.
    #[error("the buffer budget (max_buffered_bytes) is spent")]
    NoBudget,
    /// The body could not be written to `upload_tmp_dir` (full, gone,
    /// read-only).
    #[error("the body could not be written to upload_tmp_dir")]
    SpillFailed,
}

impl Rejection {
    /// Every rejection's status, reason phrase and text, in one place.
    fn answer(self) -> (u16, &'static str, &'static str) {
        match self {
            Rejection::ParamsTooLarge | Rejection::TooManyParams => (
                431,
                "Request Header Fields Too Large",
                "request headers too large\n",
            ),
            Rejection::EmptyParamName => {
                (400, "Bad Request", "a request header has an empty name\n")
            }
            Rejection::BodyTooLarge => (413, "Payload Too Large", "request body too large\n"),
            Rejection::BadContentLength => (
                400,
                "Bad Request",
                "CONTENT_LENGTH does not match the request body\n",
            ),
            Rejection::NoBudget | Rejection::SpillFailed => (
                503,
                "Service Unavailable",
                "the server cannot take this request body now; try again\n",
            ),
        }
    }

    /// The HTTP status the peer gets.
    pub fn status(self) -> u16 {
        self.answer().0
    }

    /// The answer the peer gets.
    pub fn response(self) -> CgiResponse {
        let (status, reason, text) = self.answer();
        simple_response(status, reason, text)
    }
}

/// The budget a complete request still holds: its params (and a body kept
/// in memory) stay in memory while its handler runs.
/// Its fields are never read: holding them is the point.
pub(crate) struct HeldBudget {
    _params: BudgetShare,
    _body: BudgetShare,
}

/// Where a body goes while it arrives.
enum BodySink {
    /// Up to `client_body_buffer_size`, in memory.
    Memory(BytesMut),
    /// Beyond it, a temporary file.
    File(SpillFile),
}

/// One request whose records are still arriving.
pub(crate) struct IncomingRequest {
    /// The request id, for error messages.
    id: u16,
    /// When its BEGIN_REQUEST arrived; the receive deadline counts from here.
    pub started: Instant,
    params_bytes: BytesMut,
    /// Set when the params are complete; for a request refused before
    /// then, the whole pairs that had arrived (for the access log).
    params: Option<CgiParams>,
    /// The pairs that had arrived when the request was refused before its
    /// params were complete; they become `params` at the end of params.
    known_params: Option<CgiParams>,
    declared_body_len: Option<usize>,
    body: BodySink,
    /// Body bytes received, wherever they went.
    body_len: usize,
    body_done: bool,
    rejection: Option<Rejection>,
    /// The budget its params bytes draw from, as long as they are held
    /// (refused or not).
    params_share: BudgetShare,
    /// The budget its in-memory body draws from (none once it spilled).
    body_share: BudgetShare,
}

/// What a record did to an incoming request.
pub(crate) enum Progress {
    /// More records are needed.
    Pending,
    /// The request is complete and valid; the budget goes with it.
    Complete(CgiRequest, HeldBudget),
    /// The request is complete and must be answered with this rejection;
    /// its params as far as they were read go with it, for the access log.
    Rejected(Rejection, CgiParams),
}

impl IncomingRequest {
    /// Starts the state of request `id`, and its receive clock, at its
    /// BEGIN_REQUEST. What it holds in memory is drawn from `budget`.
    /// The params as far as they arrived: all of them once complete, the
    /// whole pairs kept of a refused request, or none yet.
    pub fn params(&self) -> Option<&CgiParams> {
        self.params.as_ref().or(self.known_params.as_ref())
    }

    pub fn new(id: u16, budget: &BufferBudget) -> Self {
        Self {
            id,
            started: Instant::now(),
            params_bytes: BytesMut::new(),
            params: None,
            known_params: None,
            declared_body_len: None,
            body: BodySink::Memory(BytesMut::new()),
            body_len: 0,
            body_done: false,
            rejection: None,
            params_share: budget.share(),
            body_share: budget.share(),
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
                    // What fits within the bound is still read, so the
                    // refusal's log line has the method, path and client
                    // (nginx sends those before the headers).
                    let room = limits.max_params_bytes - self.params_bytes.len();
                    if self.params_share.grow(room) {
                        self.params_bytes.extend_from_slice(&content[..room]);
                    }
                    self.reject(Rejection::ParamsTooLarge, limits);
                } else if !self.params_share.grow(content.len()) {
                    self.refuse_for_budget(limits);
                } else {
                    self.params_bytes.extend_from_slice(content);
                }
            }
            return Ok(Progress::Pending);
        }
        if self.rejection.is_some() {
            self.params = Some(self.known_params.take().unwrap_or_default());
            return Ok(self.progress(limits));
        }
        let raw = std::mem::take(&mut self.params_bytes).freeze();
        match CgiParams::parse(raw, limits.max_params) {
            Ok(params) => {
                self.params = Some(params);
                self.check_declared_length(limits);
            }
            Err(ParamsError::Protocol(error)) => return Err(error),
            Err(ParamsError::Refused(rejection, known)) => {
                self.params = Some(known);
                self.reject(rejection, limits);
            }
        }
        Ok(self.progress(limits))
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
            if self.body_len + content.len() > limits.max_body_bytes {
                self.reject(Rejection::BodyTooLarge, limits);
            } else {
                self.take_body(content, limits);
            }
        }
        Ok(self.progress(limits))
    }

    /// Keeps `content` in memory while the body fits
    /// `client_body_buffer_size` (and the budget), otherwise in the file.
    fn take_body(&mut self, content: &[u8], limits: &ConnectionLimits) {
        let threshold = limits.client_body_buffer_size;
        if let BodySink::Memory(held) = &self.body
            && (held.len() + content.len() > threshold
                || self.declared_body_len.is_some_and(|len| len > threshold))
            && let Err(error) = self.spill(limits)
        {
            self.refuse_for_disk(limits, &error);
            return;
        }
        match &mut self.body {
            BodySink::Memory(held) => {
                let needed = held.len() + content.len();
                if !self
                    .body_share
                    .grow(needed.saturating_sub(self.body_share.held()))
                {
                    self.refuse_for_budget(limits);
                    return;
                }
                held.extend_from_slice(content);
            }
            BodySink::File(file) => {
                if let Err(error) = file.write(content) {
                    self.refuse_for_disk(limits, &error);
                    return;
                }
            }
        }
        self.body_len += content.len();
    }

    /// Moves the body to a temporary file: what was held in memory is
    /// written first and its budget given back.
    fn spill(&mut self, limits: &ConnectionLimits) -> std::io::Result<()> {
        let mut file = SpillFile::create(&limits.upload_tmp_dir)?;
        if let BodySink::Memory(held) = &self.body {
            file.write(held)?;
        }
        self.body = BodySink::File(file);
        self.body_share.release();
        Ok(())
    }

    fn refuse_for_disk(&mut self, limits: &ConnectionLimits, error: &std::io::Error) {
        if let Some(left_out) = SPILL_FAILURE_LINES.admit() {
            tracing::warn!(
                "request {}: cannot write its body to upload_tmp_dir {}: {error}; answered 503{}",
                self.id,
                limits.upload_tmp_dir.display(),
                and_more(left_out)
            );
        }
        self.reject(Rejection::SpillFailed, limits);
    }

    fn refuse_for_budget(&mut self, limits: &ConnectionLimits) {
        if let Some(left_out) = BUDGET_LINES.admit() {
            tracing::warn!(
                "request {}: all of server.max_buffered_bytes ({} bytes) is held by requests in progress; answered 503{}",
                self.id,
                limits.max_buffered_bytes,
                and_more(left_out)
            );
        }
        self.reject(Rejection::NoBudget, limits);
    }

    fn check_declared_length(&mut self, limits: &ConnectionLimits) {
        let Some(raw) = self.params.as_ref().and_then(|p| p.get("CONTENT_LENGTH")) else {
            return;
        };
        // Empty: no body. `-1`: Caddy's "length unknown" for a chunked
        // upload. Either way the empty STDIN record ends the body, and the
        // bound is checked as it arrives.
        if raw.is_empty() || raw == b"-1" {
            return;
        }
        let declared = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<usize>().ok());
        match declared {
            None => self.reject(Rejection::BadContentLength, limits),
            Some(len) if len > limits.max_body_bytes => {
                self.reject(Rejection::BodyTooLarge, limits)
            }
            Some(len) => {
                self.declared_body_len = Some(len);
                // A body that will stay in memory gets its buffer at once,
                // paid for from the budget: a declared length within
                // client_body_buffer_size costs no more than a record.
                if len <= limits.client_body_buffer_size
                    && let BodySink::Memory(held) = &mut self.body
                {
                    if self.body_share.grow(len) {
                        held.reserve(len);
                    } else {
                        self.refuse_for_budget(limits);
                    }
                }
            }
        }
    }

    fn reject(&mut self, rejection: Rejection, limits: &ConnectionLimits) {
        self.rejection.get_or_insert(rejection);
        // Params still arriving are cut here: their whole pairs are kept
        // for the access log (and keep their share of the budget until the
        // request ends), the rest is discarded.
        if self.params.is_none() && self.known_params.is_none() {
            let raw = std::mem::take(&mut self.params_bytes).freeze();
            self.known_params = Some(CgiParams::parse_prefix(raw, limits.max_params));
        }
        // Free the body: a rejected request's body bytes are discarded, a
        // file with them closed (and so deleted).
        self.body = BodySink::Memory(BytesMut::new());
        self.body_share.release();
    }

    fn progress(&mut self, limits: &ConnectionLimits) -> Progress {
        if !self.body_done || self.params.is_none() {
            return Progress::Pending;
        }
        if let Some(declared) = self.declared_body_len
            && self.rejection.is_none()
            && declared != self.body_len
        {
            self.reject(Rejection::BadContentLength, limits);
        }
        if let Some(rejection) = self.rejection {
            return Progress::Rejected(rejection, self.params.take().unwrap_or_default());
        }
        let body = match std::mem::replace(&mut self.body, BodySink::Memory(BytesMut::new())) {
            BodySink::Memory(held) => RequestBody::Memory(held.freeze()),
            BodySink::File(file) => match file.finish() {
                Ok(body) => body,
                Err(error) => {
                    self.refuse_for_disk(limits, &error);
                    return Progress::Rejected(
                        Rejection::SpillFailed,
                        self.params.take().unwrap_or_default(),
                    );
                }
            },
        };
        Progress::Complete(
            CgiRequest {
                params: self.params.take().unwrap_or_default(),
                body,
            },
            HeldBudget {
                _params: self.params_share.take(),
                _body: self.body_share.take(),
            },
        )
    }
}
