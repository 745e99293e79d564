//! Stored session data nene cannot use: too large, not a string, or bytes
//! the codec cannot read. Such a session starts empty for the request, is
//! logged with its tag, and is never written back unless the handler
//! changes it — the value may belong to another application sharing the
//! store (a PHP application, most often).

use std::fmt;

/// Why a stored session could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// The stored value is larger than `session.max_size`; it was not loaded.
    TooLarge {
        /// Its size in bytes, as the backend reports it.
        size: u64,
        /// `session.max_size`.
        max: u64,
    },
    /// The key holds another kind of value (a Redis hash, list, …).
    WrongType(String),
    /// The codec cannot read the bytes.
    Undecodable {
        /// What the codec said.
        reason: String,
        /// What the bytes look like, when that is recognisable.
        looks_like: Option<&'static str>,
    },
}

impl Unreadable {
    /// Bytes the codec refused with `reason`; recognises other formats a
    /// shared store often holds, for the log line.
    pub fn undecodable(bytes: &[u8], reason: String) -> Self {
        Unreadable::Undecodable {
            reason,
            looks_like: recognise(bytes),
        }
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::TooLarge { size, max } => write!(
                f,
                "the stored value is {size} bytes, over session.max_size ({max}); not loaded"
            ),
            Unreadable::WrongType(kind) => {
                write!(f, "the key holds a {kind}, not a string")
            }
            Unreadable::Undecodable {
                reason,
                looks_like: Some(format),
            } => write!(
                f,
                "the stored value is {format}, not nene's JSON ({reason})"
            ),
            Unreadable::Undecodable {
                reason,
                looks_like: None,
            } => write!(f, "the stored value is not readable ({reason})"),
        }
    }
}

/// A guess at the format of bytes the JSON codec refused: enough for an
/// operator to see that another application shares the store.
fn recognise(bytes: &[u8]) -> Option<&'static str> {
    if bytes.is_empty() {
        return Some("empty");
    }
    if php_serialize_array(bytes) {
        return Some("in PHP's php_serialize format (session.serialize_handler = php_serialize)");
    }
    if php_session_format(bytes) {
        return Some("in PHP's session format (session.serialize_handler = php)");
    }
    if bytes.starts_with(b"\x01\x02\x00\x00\x00\x02") || bytes.starts_with(b"\x00\x00\x00\x02") {
        return Some("in igbinary format");
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(_)) => {
            return Some("in nene's JSON format (session.serialize_handler = json)");
        }
        Ok(_) => return Some("JSON but not an object"),
        Err(_) => {}
    }
    None
}

/// `a:2:{…}`: what PHP's `serialize($_SESSION)` starts with.
fn php_serialize_array(bytes: &[u8]) -> bool {
    let Some(rest) = bytes.strip_prefix(b"a:") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest[digits..].starts_with(b":{")
}

/// `name|i:5;…`: a variable name, a `|` and the start of a `serialize()`
/// value — how PHP's default session handler stores `$_SESSION`.
fn php_session_format(bytes: &[u8]) -> bool {
    let Some(bar) = bytes.iter().position(|&b| b == b'|') else {
        return false;
    };
    let name = &bytes[..bar];
    let value = &bytes[bar + 1..];
    !name.is_empty()
        && !name
            .iter()
            .any(|&b| b == b';' || b == b'"' || b.is_ascii_whitespace())
        && matches!(
            value,
            [b'N', b';', ..]
                | [
                    b'b' | b'i' | b'd' | b's' | b'a' | b'O' | b'C' | b'E',
                    b':',
                    ..
                ]
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_formats_and_json_that_is_not_an_object_are_recognised() {
        assert_eq!(
            recognise(b"count|i:5;user|s:5:\"alice\";"),
            Some("in PHP's session format (session.serialize_handler = php)")
        );
        assert_eq!(
            recognise(b"flag|N;"),
            Some("in PHP's session format (session.serialize_handler = php)")
        );
        assert_eq!(
            recognise(b"a:1:{s:5:\"count\";i:5;}"),
            Some("in PHP's php_serialize format (session.serialize_handler = php_serialize)")
        );
        assert_eq!(recognise(b"[1,2]"), Some("JSON but not an object"));
        assert_eq!(recognise(b"null"), Some("JSON but not an object"));
        assert_eq!(recognise(b""), Some("empty"));
        assert_eq!(recognise(b"\xff\xfe garbage"), None);
        assert_eq!(recognise(b"a|b"), None);
        assert_eq!(recognise(b"a:x:{"), None);
    }

    #[test]
    fn the_message_names_the_format_and_the_bound() {
        let php = Unreadable::undecodable(b"count|i:5;", "expected value".into());
        assert!(php.to_string().contains("PHP's session format"), "{php}");
        let big = Unreadable::TooLarge {
            size: 20_000_000,
            max: 4_194_304,
        };
        assert!(big.to_string().contains("20000000 bytes"), "{big}");
        assert!(big.to_string().contains("session.max_size"), "{big}");
        assert_eq!(
            Unreadable::WrongType("hash".into()).to_string(),
            "the key holds a hash, not a string"
        );
    }
}
