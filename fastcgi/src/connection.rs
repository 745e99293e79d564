//! One FastCGI connection: reads records, assembles requests (several at once
//! when the peer multiplexes), runs the responder for each complete request
//! and writes its response back as STDOUT records and an END_REQUEST.
//!
//! Everything runs on the connection's own task: handler futures are polled
//! here beside the socket, so an nginx connection (one request at a time) costs
//! no extra task or channel. Deadlines are checked in the same loop, so a slow
//! peer only ever holds up its own connection.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::log_limit::{LogLimit, and_more};

use super::budget::BufferBudget;
use super::error::ProtocolError;
use super::limits::ConnectionLimits;
use super::name_value::{encode_name_value, parse_name_values};
use super::record::{Record, RecordCodec, RecordType, Role, encode_record, encode_stream};
use super::refusal::Refusal;
use super::request::{IncomingRequest, Progress};
use super::request_id_map::RequestIdMap;
use super::responder::{CgiResponse, Responder, ResponseBody, simple_response};
use super::running::{Outcome, Running};
use super::running_set::RunningSet;

/// The warning for a request over `max_requests_per_connection`: a peer can
/// send thousands in a few kilobytes.
static OVERLOAD_LINES: LogLimit = LogLimit::new();

const FLAG_KEEP_CONN: u8 = 1;

/// END_REQUEST protocol statuses.
const REQUEST_COMPLETE: u8 = 0;
const OVERLOADED: u8 = 2;
const UNKNOWN_ROLE: u8 = 3;

/// The application status sent for a request that was aborted or whose body
/// stream failed: like a CGI script's non-zero exit.
const APP_STATUS_FAILED: u32 = 1;

/// Buffered output is written to the socket once it reaches this size, and
/// at the latest when the loop has nothing else ready.
const WRITE_BUFFER_FLUSH: usize = 64 * 1024;

/// What the connection needs from the server around it.
#[derive(Clone)]
pub struct ConnectionGate {
    /// Cancelled when the server starts draining: finish what has begun,
    /// then close.
    pub shutdown: CancellationToken,
    /// The limits every peer is held to.
    pub limits: Arc<ConnectionLimits>,
    /// The bytes all connections together may hold in memory for requests.
    pub budget: BufferBudget,
}

impl ConnectionGate {
    /// A gate with `limits` and a new budget of `limits.max_buffered_bytes`
    /// (one per server: every connection shares it).
    pub fn new(shutdown: CancellationToken, limits: ConnectionLimits) -> Self {
        Self {
            shutdown,
            budget: BufferBudget::new(limits.max_buffered_bytes),
            limits: Arc::new(limits),
        }
    }
}

/// Serves one connection until the peer closes it, a request without
/// FCGI_KEEP_CONN is answered, a deadline passes, or the server drains.
/// A protocol error closes the connection and is returned for logging.
pub async fn serve_connection<IO, R>(
    io: IO,
    responder: R,
    gate: ConnectionGate,
) -> Result<(), ProtocolError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    R: Responder,
{
    let mut connection = Connection {
        io,
        responder,
        limits: gate.limits,
        budget: gate.budget,
        read_buf: BytesMut::with_capacity(8 * 1024),
        // Grown on the first answer: an idle connection holds only its read buffer.
        write_buf: BytesMut::new(),
        receiving: RequestIdMap::default(),
        running: RunningSet::new(),
        close_when_idle: false,
        peer_closed: false,
        partial_since: None,
        last_activity: Instant::now(),
    };
    let result = connection.run(&gate.shutdown).await;
    // Best effort: whatever was answered before an error still goes out.
    let _ = connection.flush().await;
    // Requests the peer never finished sending (it closed, stalled past
    // the receive timeout or broke the protocol) get their access-log line.
    for (_, request) in connection.receiving.drain() {
        connection
            .responder
            .refused(&Refusal::client_gone(&request));
    }
    result
}

struct Connection<IO, R: Responder> {
    io: IO,
    responder: R,
    limits: Arc<ConnectionLimits>,
    budget: BufferBudget,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Requests whose records are still arriving, by request id.
    receiving: RequestIdMap<IncomingRequest>,
    /// Complete requests being answered, each yielding its request id.
    running: RunningSet<Running<R::Future>>,
    /// Set by a request without FCGI_KEEP_CONN, or by draining: close as soon
    /// as nothing is in progress.
    close_when_idle: bool,
    /// The peer closed its side; answer what is running, then close.
    peer_closed: bool,
    /// When bytes of a not-yet-complete record started waiting in `read_buf`.
    partial_since: Option<Instant>,
    /// When the connection last finished something; the idle deadline counts from here.
    last_activity: Instant,
}

/// What woke the connection loop.
enum Event {
    Finished(u16, Outcome),
    Read(std::io::Result<usize>),
    Deadline,
    Shutdown,
}

impl<IO, R> Connection<IO, R>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    R: Responder,
{
    async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), ProtocolError> {
        let mut draining = false;
        loop {
            if self.nothing_in_progress() && (self.close_when_idle || self.peer_closed) {
                return Ok(());
            }
            let deadline = self.deadline();
            let event = tokio::select! {
                biased;
                Some((id, outcome)) = self.running.next(), if !self.running.is_empty() => {
                    Event::Finished(id, outcome)
                }
                read = self.io.read_buf(&mut self.read_buf), if !self.peer_closed => Event::Read(read),
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Event::Deadline,
                _ = shutdown.cancelled(), if !draining => Event::Shutdown,
            };
            match event {
                Event::Finished(id, outcome) => {
                    self.write_outcome(id, outcome).await?;
                    self.last_activity = Instant::now();
                }
                Event::Read(Ok(0)) => {
                    if !self.read_buf.is_empty() {
                        return Err(ProtocolError::TruncatedRecord);
                    }
                    if !self.receiving.is_empty() {
                        return Err(ProtocolError::ClosedMidRequest);
                    }
                    self.peer_closed = true;
                }
                Event::Read(Ok(_)) => self.process_read_buffer()?,
                Event::Read(Err(error)) => return Err(error.into()),
                Event::Deadline => {
                    if self.receiving.is_empty() && self.read_buf.is_empty() {
                        tracing::debug!(
                            "closing a connection idle for {:?}",
                            self.limits.idle_timeout
                        );
                        return Ok(());
                    }
                    return Err(ProtocolError::ReceiveTimeout(self.limits.receive_timeout));
                }
                Event::Shutdown => {
                    draining = true;
                    self.close_when_idle = true;
                }
            }
            // Everything this turn produced (all answers to the records of
            // one read) goes out in one write.
            self.flush().await?;
        }
    }

    fn nothing_in_progress(&self) -> bool {
        self.receiving.is_empty() && self.running.is_empty() && self.read_buf.is_empty()
    }

    /// The next moment something must give up: a request still arriving must
    /// complete within `receive_timeout`; an idle connection closes after
    /// `idle_timeout`. While only handlers run there is no protocol deadline.
    fn deadline(&self) -> Option<Instant> {
        let receive_start = self
            .receiving
            .values()
            .map(|request| request.started)
            .chain(self.partial_since)
            .min();
        if let Some(start) = receive_start {
            return Some(start + self.limits.receive_timeout);
        }
        if self.running.is_empty() {
            return Some(self.last_activity + self.limits.idle_timeout);
        }
        None
    }

    async fn flush(&mut self) -> Result<(), ProtocolError> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let write = self.io.write_all(&self.write_buf);
        match tokio::time::timeout(self.limits.write_timeout(), write).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ProtocolError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the peer stopped reading responses",
                )));
            }
        }
        self.write_buf.clear();
        Ok(())
    }

    fn process_read_buffer(&mut self) -> Result<(), ProtocolError> {
        let mut decoded_any = false;
        let mut progressed = false;
        while let Some(record) = RecordCodec.decode(&mut self.read_buf)? {
            decoded_any = true;
            let id = record.request_id;
            let carries_a_request = matches!(
                record.record_type,
                RecordType::BEGIN_REQUEST | RecordType::PARAMS | RecordType::STDIN
            );
            let open_before = self.receiving.contains_key(&id);
            self.handle_record(record)?;
            progressed |= carries_a_request && (open_before || self.receiving.contains_key(&id));
        }
        let now = Instant::now();
        if progressed {
            // Only a request moving forward is activity: management records,
            // ignored records and refused requests do not keep an idle
            // connection (and its slot) alive — a few bytes a minute did.
            self.last_activity = now;
        }
        if self.read_buf.is_empty() {
            self.partial_since = None;
        } else if decoded_any || self.partial_since.is_none() {
            // The bytes left over begin a new record: its clock starts now,
            // so a peer that pipelines steadily is never cut for the age of
            // an earlier record.
            self.partial_since = Some(now);
        }
        Ok(())
    }

    fn handle_record(&mut self, record: Record) -> Result<(), ProtocolError> {
        let id = record.request_id;
        if id == 0 {
            return self.handle_management_record(record);
        }
        match record.record_type {
            RecordType::BEGIN_REQUEST => self.begin_request(id, &record.content),
            RecordType::ABORT_REQUEST => {
                self.abort_request(id);
                Ok(())
            }
            RecordType::PARAMS | RecordType::STDIN => {
                let Some(request) = self.receiving.get_mut(&id) else {
                    return self.ignore_or_reject(record);
                };
                let progress = if record.record_type == RecordType::PARAMS {
                    request.on_params(&record.content, &self.limits)?
                } else {
                    request.on_stdin(&record.content, &self.limits)?
                };
                self.on_progress(id, progress);
                Ok(())
            }
            _ => self.ignore_or_reject(record),
        }
    }

    /// The spec says records for a request id that is not active are ignored;
    /// a record that makes no sense for an active request is a protocol error.
    fn ignore_or_reject(&self, record: Record) -> Result<(), ProtocolError> {
        let id = record.request_id;
        if self.receiving.contains_key(&id) || self.is_running(id) {
            return Err(ProtocolError::UnexpectedRecord {
                record_type: record.record_type,
                request_id: id,
            });
        }
        tracing::debug!(
            "ignoring {} record for inactive request id {id}",
            record.record_type
        );
        Ok(())
    }

    fn handle_management_record(&mut self, record: Record) -> Result<(), ProtocolError> {
        if record.record_type != RecordType::GET_VALUES {
            let mut body = [0u8; 8];
            body[0] = record.record_type.0;
            encode_record(&mut self.write_buf, RecordType::UNKNOWN_TYPE, 0, &body);
            return Ok(());
        }
        // Each known name is answered once, however often it is asked: the
        // answer then has at most three short pairs, so it always fits one
        // record (4,369 repeated names used to make an answer over 65,535
        // bytes).
        let mut answered: [Option<String>; 3] = [None, None, None];
        for (name, _) in parse_name_values(&record.content)? {
            let (slot, value) = match name.as_ref() {
                b"FCGI_MAX_CONNS" => (0, self.limits.max_connections.to_string()),
                b"FCGI_MAX_REQS" => (1, self.limits.max_requests().to_string()),
                b"FCGI_MPXS_CONNS" => (2, "1".to_string()),
                _ => continue,
            };
            answered[slot].get_or_insert(value);
        }
        let mut answer = BytesMut::new();
        let names: [&[u8]; 3] = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"];
        for (name, value) in names.iter().zip(&answered) {
            if let Some(value) = value {
                encode_name_value(&mut answer, name, value.as_bytes());
            }
        }
        encode_record(
            &mut self.write_buf,
            RecordType::GET_VALUES_RESULT,
            0,
            &answer,
        );
        Ok(())
    }

    fn begin_request(&mut self, id: u16, content: &[u8]) -> Result<(), ProtocolError> {
        if content.len() != 8 {
            return Err(ProtocolError::BadContentLength {
                record_type: RecordType::BEGIN_REQUEST,
                actual: content.len(),
                expected: 8,
            });
        }
        if self.receiving.contains_key(&id) || self.is_running(id) {
            return Err(ProtocolError::DuplicateRequest(id));
        }
        let role = Role::from(u16::from_be_bytes([content[0], content[1]]));
        let keep_conn = content[2] & FLAG_KEEP_CONN != 0;
        if !keep_conn {
            self.close_when_idle = true;
        }
        if role != Role::Responder {
            tracing::debug!(
                "request {id} asks for role {role:?}; only the responder role is served"
            );
            self.end_request(id, 0, UNKNOWN_ROLE);
            return Ok(());
        }
        if self.receiving.len() + self.running.len() >= self.limits.max_requests_per_connection {
            if let Some(left_out) = OVERLOAD_LINES.admit() {
                tracing::warn!(
                    "request {id} refused: {} requests already open on this connection{}",
                    self.limits.max_requests_per_connection,
                    and_more(left_out)
                );
            }
            self.end_request(id, 0, OVERLOADED);
            return Ok(());
        }
        self.receiving
            .insert(id, IncomingRequest::new(id, &self.budget));
        Ok(())
    }

    fn abort_request(&mut self, id: u16) {
        if let Some(request) = self.receiving.remove(&id) {
            self.end_request(id, APP_STATUS_FAILED, REQUEST_COMPLETE);
            self.responder.refused(&Refusal::client_gone(&request));
            self.last_activity = Instant::now();
        } else if let Some(running) =
            (self.running.iter_pin_mut()).find(|running| running.id() == id)
        {
            // It resolves as `Aborted` and is answered then.
            running.abort();
        }
    }

    /// Whether request `id` is being answered (a few at most: a scan).
    fn is_running(&self, id: u16) -> bool {
        self.running.iter().any(|running| running.id() == id)
    }

    fn on_progress(&mut self, id: u16, progress: Progress) {
        match progress {
            Progress::Pending => {}
            Progress::Rejected(rejection, params) => {
                let started = self.receiving.remove(&id).map(|request| request.started);
                tracing::info!("request {id} rejected before the application: {rejection}");
                self.encode_full_response(id, rejection.response());
                let now = Instant::now();
                self.responder.refused(&Refusal {
                    status: rejection.status(),
                    params: Some(&params),
                    elapsed: started.map_or_else(Default::default, |started| now - started),
                });
                self.last_activity = now;
            }
            Progress::Complete(request, held) => {
                let started = self
                    .receiving
                    .remove(&id)
                    .map_or_else(Instant::now, |request| request.started);
                // A panic in the responder, in its call or its future, is
                // caught there. The request's budget is given back when it
                // ends (answered, aborted, panicked) or is dropped.
                let running = Running::start(&self.responder, id, request, started, held);
                self.running.push(running);
            }
        }
    }

    async fn write_outcome(&mut self, id: u16, outcome: Outcome) -> Result<(), ProtocolError> {
        match outcome {
            Outcome::Answered(response) => self.write_response(id, response).await,
            Outcome::Panicked { message, started } => {
                tracing::error!("request {id}: the handler panicked: {message}");
                let response =
                    simple_response(500, "Internal Server Error", "internal server error\n");
                self.encode_full_response(id, response);
                self.responder.refused(&Refusal {
                    status: 500,
                    params: None,
                    elapsed: started.elapsed(),
                });
                Ok(())
            }
            Outcome::Aborted => {
                tracing::debug!("request {id} aborted by the peer");
                self.end_request(id, APP_STATUS_FAILED, REQUEST_COMPLETE);
                Ok(())
            }
        }
    }

    async fn write_response(
        &mut self,
        id: u16,
        response: CgiResponse,
    ) -> Result<(), ProtocolError> {
        encode_stream(&mut self.write_buf, RecordType::STDOUT, id, &response.head);
        let mut stream = match response.body {
            ResponseBody::Full(body) => {
                encode_stream(&mut self.write_buf, RecordType::STDOUT, id, &body);
                self.end_stdout(id, 0);
                return Ok(());
            }
            ResponseBody::Stream(stream) => stream,
        };
        let mut app_status = 0;
        loop {
            // Take chunks that are ready without waiting; write what is
            // buffered before waiting for a slow producer.
            let next = match stream.next().now_or_never() {
                Some(next) => next,
                None => {
                    self.flush().await?;
                    stream.next().await
                }
            };
            match next {
                Some(Ok(chunk)) => {
                    encode_stream(&mut self.write_buf, RecordType::STDOUT, id, &chunk);
                    if self.write_buf.len() >= WRITE_BUFFER_FLUSH {
                        self.flush().await?;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!("request {id}: response body failed midway: {error}");
                    app_status = APP_STATUS_FAILED;
                    break;
                }
                None => break,
            }
        }
        self.end_stdout(id, app_status);
        Ok(())
    }

    fn encode_full_response(&mut self, id: u16, response: CgiResponse) {
        encode_stream(&mut self.write_buf, RecordType::STDOUT, id, &response.head);
        if let ResponseBody::Full(body) = response.body {
            encode_stream(&mut self.write_buf, RecordType::STDOUT, id, &body);
        }
        self.end_stdout(id, 0);
    }

    fn end_stdout(&mut self, id: u16, app_status: u32) {
        encode_record(&mut self.write_buf, RecordType::STDOUT, id, &[]);
        self.end_request(id, app_status, REQUEST_COMPLETE);
    }

    fn end_request(&mut self, id: u16, app_status: u32, protocol_status: u8) {
        let mut body = [0u8; 8];
        (&mut body[..4]).put_u32(app_status);
        body[4] = protocol_status;
        encode_record(&mut self.write_buf, RecordType::END_REQUEST, id, &body);
    }
}
