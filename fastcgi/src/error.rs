//! What can go wrong on one FastCGI connection. Every variant closes that
//! connection (and only that one) with a logged warning.

use super::record::RecordType;

/// A reason to close one FastCGI connection; `serve_connection` returns it for
/// logging.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A record header names a protocol version other than 1.
    #[error("unsupported FastCGI version {0} (only version 1 exists)")]
    UnsupportedVersion(u8),
    /// A record whose content has a fixed size arrived with another size
    /// (BEGIN_REQUEST must carry 8 bytes).
    #[error("{record_type} record has {actual} content bytes, expected {expected}")]
    BadContentLength {
        /// The type of the malformed record.
        record_type: RecordType,
        /// Content bytes the record carried.
        actual: usize,
        /// Content bytes the protocol requires for this type.
        expected: usize,
    },
    /// A name-value length in PARAMS or GET_VALUES content points past the end
    /// of the content.
    #[error("a name-value pair's length runs past the end of its data")]
    TruncatedNameValue,
    /// A BEGIN_REQUEST reuses the id of a request still arriving or running.
    #[error("BEGIN_REQUEST for request id {0}, which is already active on this connection")]
    DuplicateRequest(u16),
    /// A record arrives for an active request that cannot take it: a second end
    /// of params or of STDIN, or a type a responder request never receives.
    #[error("{record_type} record for request id {request_id} was not expected at this point")]
    UnexpectedRecord {
        /// The type of the out-of-place record.
        record_type: RecordType,
        /// The request id the record was sent for.
        request_id: u16,
    },
    /// The peer closes the connection with part of a record still unread.
    #[error("the peer closed the connection in the middle of a record")]
    TruncatedRecord,
    /// The peer closes the connection while a request's params or body are
    /// still arriving.
    #[error("the peer closed the connection before finishing a request")]
    ClosedMidRequest,
    /// A request, or a record already begun, is still incomplete when
    /// `receive_timeout` (carried here for the message) runs out.
    #[error("no complete request arrived within {0:?}")]
    ReceiveTimeout(std::time::Duration),
    /// Reading from or writing to the socket fails, including a peer that stops
    /// reading responses for longer than the write timeout.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
