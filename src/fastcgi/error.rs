//! What can go wrong on one FastCGI connection. Every variant closes that
//! connection (and only that one) with a logged warning.

use super::record::RecordType;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("unsupported FastCGI version {0} (only version 1 exists)")]
    UnsupportedVersion(u8),
    #[error("{record_type} record has {actual} content bytes, expected {expected}")]
    BadContentLength {
        record_type: RecordType,
        actual: usize,
        expected: usize,
    },
    #[error("a name-value pair's length runs past the end of its data")]
    TruncatedNameValue,
    #[error("BEGIN_REQUEST for request id {0}, which is already active on this connection")]
    DuplicateRequest(u16),
    #[error("{record_type} record for request id {request_id} was not expected at this point")]
    UnexpectedRecord {
        record_type: RecordType,
        request_id: u16,
    },
    #[error("the peer closed the connection in the middle of a record")]
    TruncatedRecord,
    #[error("the peer closed the connection before finishing a request")]
    ClosedMidRequest,
    #[error("no complete request arrived within {0:?}")]
    ReceiveTimeout(std::time::Duration),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
