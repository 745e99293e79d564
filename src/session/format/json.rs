//! `json`: nene's own format (docs/decisions/0010), one JSON object.

use bytes::Bytes;

use crate::session::error::SessionError;

use super::{Decoded, KeptValues, SessionCodec, SessionData};

/// Stores the map as one JSON object. Everything JSON holds maps to nene's
/// data, so nothing is kept aside.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

impl SessionCodec for JsonCodec {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode(&self, data: &SessionData, _kept: &KeptValues) -> Result<Bytes, SessionError> {
        // Serialising a map of JSON values cannot fail.
        Ok(Bytes::from(serde_json::to_vec(data).unwrap_or_default()))
    }

    fn decode(&self, bytes: &Bytes) -> Result<Decoded, SessionError> {
        if bytes.is_empty() {
            return Ok(Decoded::default());
        }
        let data = serde_json::from_slice(bytes)
            .map_err(|error| SessionError::Corrupt(error.to_string()))?;
        Ok(Decoded {
            data,
            kept: KeptValues::default(),
        })
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
        let bytes = JsonCodec.encode(&data, &KeptValues::default()).unwrap();
        assert_eq!(JsonCodec.decode(&bytes).unwrap().data, data);
        assert!(
            JsonCodec
                .decode(&Bytes::from_static(b"\xff not json"))
                .is_err()
        );
        assert!(JsonCodec.decode(&Bytes::from_static(b"[1]")).is_err());
        assert!(JsonCodec.decode(&Bytes::new()).unwrap().data.is_empty());
    }
}
