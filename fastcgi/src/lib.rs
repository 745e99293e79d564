//! The FastCGI 1.0 protocol for a responder: records on the wire, name-value
//! pairs, and the connection state machine that turns records into complete
//! requests and responses back into records.
//!
//! This layer knows bytes and CGI, nothing of HTTP types, sessions or
//! applications: whatever answers requests implements [`Responder`]. It is a
//! crate of its own so that it can be used without nene; nene is its first
//! user.
//!
//! Why our own implementation rather than `tokio-fastcgi`: that crate buffers a
//! whole request body with no bound and gives no hook for per-request
//! deadlines; the protocol is small (eleven record types, one pair encoding), and
//! writing it here lets every length read off the wire be checked against
//! [`ConnectionLimits`] before anything is allocated.

#![deny(missing_docs)]

mod body;
mod budget;
mod connection;
mod error;
mod limits;
pub mod log_limit;
mod name_value;
mod params;
mod record;
mod refusal;
mod request;
mod request_id_map;
mod responder;
mod running;
mod running_set;

pub use body::RequestBody;
pub use budget::{BudgetShare, BufferBudget};
pub use connection::{ConnectionGate, serve_connection};
pub use error::ProtocolError;
pub use limits::ConnectionLimits;
pub use name_value::{encode_name_value, parse_name_values};
pub use params::CgiParams;
pub use record::{
    HEADER_LEN, MAX_CONTENT_LEN, Record, RecordCodec, RecordType, Role, VERSION_1, encode_record,
    encode_stream,
};
pub use refusal::{CLIENT_GONE, Refusal};
pub use request::CgiRequest;
pub use responder::{BoxError, CgiResponse, Responder, ResponseBody, simple_response};
