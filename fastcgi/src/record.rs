//! The record: FastCGI's unit on the wire (an 8-byte header, content, padding),
//! and a `tokio-util` codec that cuts a byte stream into records.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::error::ProtocolError;

/// The only protocol version that exists.
pub const VERSION_1: u8 = 1;
/// Every record starts with a fixed 8-byte header.
pub const HEADER_LEN: usize = 8;
/// Content length is a u16, so one record carries at most this many bytes.
pub const MAX_CONTENT_LEN: usize = 65535;

/// A record type byte. A newtype rather than an enum because unknown types must
/// survive decoding: the answer to one is an `UNKNOWN_TYPE` record naming it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordType(pub u8);

impl RecordType {
    /// Opens a request and names the role it asks for.
    pub const BEGIN_REQUEST: Self = Self(1);
    /// The peer abandons a request (for example, the client went away).
    pub const ABORT_REQUEST: Self = Self(2);
    /// Ends a request: the application status and the protocol status.
    pub const END_REQUEST: Self = Self(3);
    /// A stream of CGI name-value pairs; an empty record ends it.
    pub const PARAMS: Self = Self(4);
    /// A stream of request body bytes; an empty record ends it.
    pub const STDIN: Self = Self(5);
    /// A stream of response bytes (CGI head, then body).
    pub const STDOUT: Self = Self(6);
    /// A stream of error text for the web server's log.
    pub const STDERR: Self = Self(7);
    /// A stream of extra data for the filter role, which nene does not serve.
    pub const DATA: Self = Self(8);
    /// A management query for server values such as `FCGI_MAX_CONNS`.
    pub const GET_VALUES: Self = Self(9);
    /// The answer to GET_VALUES.
    pub const GET_VALUES_RESULT: Self = Self(10);
    /// The answer to a management record of a type the server does not know.
    pub const UNKNOWN_TYPE: Self = Self(11);

    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "BEGIN_REQUEST",
            2 => "ABORT_REQUEST",
            3 => "END_REQUEST",
            4 => "PARAMS",
            5 => "STDIN",
            6 => "STDOUT",
            7 => "STDERR",
            8 => "DATA",
            9 => "GET_VALUES",
            10 => "GET_VALUES_RESULT",
            11 => "UNKNOWN_TYPE",
            _ => return None,
        })
    }
}

impl std::fmt::Debug for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.0),
        }
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The role a BEGIN_REQUEST asks for. nene is a responder; the other roles are
/// answered with `UNKNOWN_ROLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Answers requests and returns a response; the only role nene serves.
    Responder,
    /// Decides whether a request may proceed; answered with `UNKNOWN_ROLE`.
    Authorizer,
    /// Transforms a file sent as DATA; answered with `UNKNOWN_ROLE`.
    Filter,
    /// A role number the specification does not define, kept for the log.
    Other(u16),
}

impl From<u16> for Role {
    fn from(value: u16) -> Self {
        match value {
            1 => Role::Responder,
            2 => Role::Authorizer,
            3 => Role::Filter,
            other => Role::Other(other),
        }
    }
}

/// One decoded record. `content` is a zero-copy slice of the read buffer;
/// padding has already been dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// What the record carries; decides which part of a request it feeds.
    pub record_type: RecordType,
    /// 0 for management records, otherwise the request this record belongs to.
    pub request_id: u16,
    /// Content bytes without padding.
    pub content: Bytes,
}

/// Cuts a byte stream into [`Record`]s. Each record is bounded by the u16
/// content length, so the codec never buffers more than 64 KiB + 255 bytes
/// waiting for one record; what a sequence of records may add up to is bounded
/// by the connection (see `ConnectionLimits`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordCodec;

impl Decoder for RecordCodec {
    type Item = Record;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Record>, ProtocolError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let version = src[0];
        if version != VERSION_1 {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        let record_type = RecordType(src[1]);
        let request_id = u16::from_be_bytes([src[2], src[3]]);
        let content_len = usize::from(u16::from_be_bytes([src[4], src[5]]));
        let padding_len = usize::from(src[6]);
        let total = HEADER_LEN + content_len + padding_len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let content = src.split_to(content_len).freeze();
        src.advance(padding_len);
        Ok(Some(Record {
            record_type,
            request_id,
            content,
        }))
    }
}

/// Appends one record with `content` (at most [`MAX_CONTENT_LEN`] bytes) to `dst`.
/// No padding: it is optional and nginx does not need it.
/// Longer content is a bug in the caller (use [`encode_stream`]), so it panics
/// rather than write a length that lies.
pub fn encode_record(dst: &mut BytesMut, record_type: RecordType, request_id: u16, content: &[u8]) {
    assert!(
        content.len() <= MAX_CONTENT_LEN,
        "one FastCGI record holds at most {MAX_CONTENT_LEN} bytes"
    );
    dst.reserve(HEADER_LEN + content.len());
    dst.put_u8(VERSION_1);
    dst.put_u8(record_type.0);
    dst.put_u16(request_id);
    dst.put_u16(content.len() as u16);
    dst.put_u8(0); // padding length
    dst.put_u8(0); // reserved
    dst.put_slice(content);
}

/// Appends `data` as a stream of records of at most [`MAX_CONTENT_LEN`] bytes
/// each. Does not write the empty record that ends a stream.
pub fn encode_stream(dst: &mut BytesMut, record_type: RecordType, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        encode_record(dst, record_type, request_id, chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_padding_is_skipped() {
        let mut buf = BytesMut::new();
        encode_record(&mut buf, RecordType::PARAMS, 7, b"abc");
        // Add a padded record by hand.
        buf.extend_from_slice(&[1, 5, 0, 7, 0, 2, 6, 0, b'h', b'i', 0, 0, 0, 0, 0, 0]);
        let mut codec = RecordCodec;
        let first = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(first.record_type, RecordType::PARAMS);
        assert_eq!(first.request_id, 7);
        assert_eq!(&first.content[..], b"abc");
        let second = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(second.record_type, RecordType::STDIN);
        assert_eq!(&second.content[..], b"hi");
        assert!(buf.is_empty());
    }

    #[test]
    fn a_partial_record_waits_for_more_bytes() {
        let mut buf = BytesMut::from(&[1u8, 5, 0, 1, 0, 4, 0, 0, b'a'][..]);
        assert_eq!(RecordCodec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"bcd");
        let record = RecordCodec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&record.content[..], b"abcd");
    }

    #[test]
    fn a_wrong_version_is_an_error() {
        let mut buf = BytesMut::from(&[2u8, 1, 0, 1, 0, 0, 0, 0][..]);
        assert!(matches!(
            RecordCodec.decode(&mut buf),
            Err(ProtocolError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn long_streams_are_cut_into_records_of_at_most_65535_bytes() {
        let data = vec![b'x'; MAX_CONTENT_LEN * 2 + 10];
        let mut buf = BytesMut::new();
        encode_stream(&mut buf, RecordType::STDOUT, 1, &data);
        let mut lengths = Vec::new();
        while let Some(record) = RecordCodec.decode(&mut buf).unwrap() {
            lengths.push(record.content.len());
        }
        assert_eq!(lengths, vec![MAX_CONTENT_LEN, MAX_CONTENT_LEN, 10]);
    }
}
