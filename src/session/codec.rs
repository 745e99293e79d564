//! How session data becomes bytes in the backend. JSON now; the trait keeps
//! the format swappable (a PHP `php_serialize` codec could share sessions
//! with a PHP application later).

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::session::error::SessionError;

/// Session data: string keys to JSON-like values.
pub type SessionData = Map<String, Value>;

/// Turns session data into the bytes a backend stores, and back. Shared by
/// every request, so it holds no per-request state.
pub trait SessionCodec: Send + Sync + 'static {
    /// The bytes to store for `data`.
    fn encode(&self, data: &SessionData) -> Bytes;
    /// The data `bytes` hold; empty bytes are an empty session. Unreadable
    /// bytes are [`SessionError::Corrupt`].
    fn decode(&self, bytes: &[u8]) -> Result<SessionData, SessionError>;
}

/// Stores the map as one JSON object.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

impl SessionCodec for JsonCodec {
    fn encode(&self, data: &SessionData) -> Bytes {
        // Serialising a map of JSON values cannot fail.
        Bytes::from(serde_json::to_vec(data).unwrap_or_default())
    }

    fn decode(&self, bytes: &[u8]) -> Result<SessionData, SessionError> {
        if bytes.is_empty() {
            return Ok(SessionData::new());
        }
        serde_json::from_slice(bytes).map_err(|error| SessionError::Corrupt(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_and_garbage_is_an_error() {
        let mut data = SessionData::new();
        data.insert("user".into(), json!("alice"));
        data.insert("cart".into(), json!([1, 2, {"sku": "x"}]));
        let bytes = JsonCodec.encode(&data);
        assert_eq!(JsonCodec.decode(&bytes).unwrap(), data);
        assert!(JsonCodec.decode(b"\xff not json").is_err());
        assert!(JsonCodec.decode(b"").unwrap().is_empty());
    }
}
