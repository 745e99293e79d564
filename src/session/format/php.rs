//! PHP's own session formats, `session.serialize_handler = php` (PHP's
//! default: `name|value` for each variable, back to back) and
//! `php_serialize` (`serialize($_SESSION)`: one array), read and written as
//! PHP's `session_decode` and `session_encode` do.

use std::ops::Range;

use bytes::Bytes;

use crate::session::error::SessionError;

use super::php_value::{Parsed, PhpSyntaxError, encode_key, encode_value, parse_value};
use super::{Decoded, KeptValues, Planned, SessionCodec, SessionData};

/// Which of PHP's two formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhpHandler {
    /// `php`: `name|value` repeated; names may not contain `|` or `!`.
    Php,
    /// `php_serialize`: `a:N:{key value …}`.
    PhpSerialize,
}

/// A PHP session format.
#[derive(Clone, Copy, Debug)]
pub struct PhpCodec(pub PhpHandler);

impl SessionCodec for PhpCodec {
    fn name(&self) -> &'static str {
        match self.0 {
            PhpHandler::Php => "php",
            PhpHandler::PhpSerialize => "php_serialize",
        }
    }

    fn encode(&self, data: &SessionData, kept: &KeptValues) -> Result<Bytes, SessionError> {
        let plan = kept.plan(data);
        let mut out = Vec::new();
        if self.0 == PhpHandler::PhpSerialize {
            out.extend_from_slice(format!("a:{}:{{", plan.len()).as_bytes());
        }
        for planned in plan {
            match planned {
                Planned::Stored(raw) => out.extend_from_slice(raw),
                Planned::Changed(key, value) => {
                    match self.0 {
                        PhpHandler::Php => {
                            // PHP's session_encode skips such names with a
                            // warning; nene refuses rather than drop data.
                            if key.contains(['|', '!']) {
                                return Err(SessionError::Unencodable {
                                    key: key.to_string(),
                                    reason: "session.serialize_handler = php cannot store a key containing `|` or `!`",
                                });
                            }
                            out.extend_from_slice(key.as_bytes());
                            out.push(b'|');
                        }
                        PhpHandler::PhpSerialize => encode_key(key, &mut out),
                    }
                    encode_value(value, &mut out);
                }
            }
        }
        if self.0 == PhpHandler::PhpSerialize {
            out.push(b'}');
        }
        Ok(Bytes::from(out))
    }

    fn decode(&self, bytes: &Bytes) -> Result<Decoded, SessionError> {
        let decoded = match self.0 {
            PhpHandler::Php => decode_php(bytes),
            PhpHandler::PhpSerialize => decode_php_serialize(bytes),
        };
        decoded.map_err(|error| SessionError::Corrupt(error.to_string()))
    }
}

/// The most top-level variables a session may hold: far past what an
/// application stores, and a bound on the work one read can ask for (the
/// smallest variable, `a|N;`, takes 4 bytes, so `session.max_size` alone
/// would allow a million).
const MAX_ENTRIES: usize = 200_000;

/// Records one stored entry: in `data` when it maps, kept either way.
fn keep(decoded: &mut Decoded, key: String, raw: Range<usize>, parsed: Parsed) {
    let value = match parsed {
        Parsed::Mapped(value) => {
            decoded.data.insert(key.clone(), value.clone());
            Ok(value)
        }
        Parsed::Opaque(what) => Err(what),
    };
    // A later entry of the same name wins, as in PHP.
    decoded.kept.keep(key, raw, value);
}

/// `name|value` repeated, as PHP's `php` handler reads it.
fn decode_php(bytes: &Bytes) -> Result<Decoded, PhpSyntaxError> {
    // Every variable has a `|` after its name (values may hold more): sized
    // from their count, the maps are not grown and rehashed entry by entry,
    // a sixth of the decode time at 100,000 variables.
    let bars = bytes.iter().filter(|&&byte| byte == b'|').count();
    let mut decoded = Decoded::over(bytes, bars.min(MAX_ENTRIES));
    let mut pos = 0;
    let mut entries = 0;
    while pos < bytes.len() {
        entries += 1;
        if entries > MAX_ENTRIES {
            return Err(PhpSyntaxError {
                at: pos,
                what: "at most 200,000 top-level variables",
            });
        }
        let Some(bar) = bytes[pos..].iter().position(|&b| b == b'|') else {
            return Err(PhpSyntaxError {
                at: pos,
                what: "`|` after a variable name",
            });
        };
        let name = &bytes[pos..pos + bar];
        let (parsed, end) = parse_value(bytes, pos + bar + 1)?;
        let parsed = match std::str::from_utf8(name) {
            Ok(_) => parsed,
            Err(_) => Parsed::Opaque("a variable whose name is not UTF-8"),
        };
        let key = String::from_utf8_lossy(name).into_owned();
        keep(&mut decoded, key, pos..end, parsed);
        pos = end;
    }
    Ok(decoded)
}

/// `a:N:{key value …}`, as PHP's `php_serialize` handler reads it.
fn decode_php_serialize(bytes: &Bytes) -> Result<Decoded, PhpSyntaxError> {
    if bytes.is_empty() {
        return Ok(Decoded::default());
    }
    let fail = |at, what| PhpSyntaxError { at, what };
    let header = bytes
        .strip_prefix(b"a:")
        .ok_or(fail(0, "`a:` (an array)"))?;
    let digits = header.iter().take_while(|b| b.is_ascii_digit()).count();
    let count: usize = std::str::from_utf8(&header[..digits])
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(fail(2, "the array's length"))?;
    if count > MAX_ENTRIES {
        return Err(fail(2, "at most 200,000 top-level variables"));
    }
    let mut pos = 2 + digits;
    if bytes.get(pos..pos + 2) != Some(b":{") {
        return Err(fail(pos, "`:{`"));
    }
    pos += 2;
    // Sized up front (see decode_php), but never past what the bytes can
    // hold: the smallest entry, `i:0;N;`, takes 6 of them.
    let mut decoded = Decoded::over(bytes, count.min(bytes.len() / 6));
    for _ in 0..count {
        let entry_start = pos;
        let (key, after_key) = parse_value(bytes, pos)?;
        let key = match key {
            Parsed::Mapped(serde_json::Value::String(text)) => text,
            Parsed::Mapped(number @ serde_json::Value::Number(_)) => number.to_string(),
            _ => return Err(fail(pos, "an array key (i: or s:)")),
        };
        let (parsed, end) = parse_value(bytes, after_key)?;
        keep(&mut decoded, key, entry_start..end, parsed);
        pos = end;
    }
    if bytes.get(pos) != Some(&b'}') || pos + 1 != bytes.len() {
        return Err(fail(pos, "`}` closing the array, then the end"));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PHP: PhpCodec = PhpCodec(PhpHandler::Php);
    const PHP_SERIALIZE: PhpCodec = PhpCodec(PhpHandler::PhpSerialize);

    #[test]
    fn both_formats_read_what_php_writes() {
        let php = PHP
            .decode(&Bytes::from_static(
                b"count|i:5;user|s:5:\"alice\";cart|a:1:{i:0;s:1:\"x\";}",
            ))
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(php.data),
            json!({"count": 5, "user": "alice", "cart": ["x"]})
        );
        let serialized = PHP_SERIALIZE
            .decode(&Bytes::from_static(b"a:2:{s:5:\"count\";i:5;i:7;b:1;}"))
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(serialized.data),
            json!({"count": 5, "7": true})
        );
        assert!(
            PHP.decode(&Bytes::from_static(b""))
                .unwrap()
                .data
                .is_empty()
        );
        assert!(
            PHP_SERIALIZE
                .decode(&Bytes::from_static(b"a:0:{}"))
                .unwrap()
                .data
                .is_empty()
        );
    }

    #[test]
    fn unchanged_values_and_values_nene_cannot_map_are_written_back_byte_for_byte() {
        let stored: &[u8] =
            b"obj|O:8:\"stdClass\":1:{s:1:\"a\";d:0.1;}count|i:5;f|d:1.0E+25;ref|R:2;";
        let mut decoded = PHP.decode(&Bytes::from_static(stored)).unwrap();
        assert_eq!(decoded.kept.opaque("obj"), Some("a PHP object"));
        assert_eq!(decoded.kept.opaque("ref"), Some("a PHP reference"));
        assert_eq!(decoded.kept.opaque("count"), None);
        assert_eq!(PHP.encode(&decoded.data, &decoded.kept).unwrap(), stored);

        decoded.data.insert("count".into(), json!(6));
        decoded.data.insert("new".into(), json!({"k": [true]}));
        assert_eq!(
            PHP.encode(&decoded.data, &decoded.kept).unwrap(),
            &b"obj|O:8:\"stdClass\":1:{s:1:\"a\";d:0.1;}count|i:6;f|d:1.0E+25;ref|R:2;new|a:1:{s:1:\"k\";a:1:{i:0;b:1;}}"[..]
        );

        decoded.data.remove("f");
        decoded.kept.forget("obj");
        assert_eq!(
            PHP.encode(&decoded.data, &decoded.kept).unwrap(),
            &b"count|i:6;ref|R:2;new|a:1:{s:1:\"k\";a:1:{i:0;b:1;}}"[..]
        );
    }

    #[test]
    fn php_serialize_keeps_entries_and_counts_them() {
        let stored: &[u8] = b"a:2:{s:1:\"o\";O:1:\"X\":0:{}i:3;s:1:\"y\";}";
        let mut decoded = PHP_SERIALIZE.decode(&Bytes::from_static(stored)).unwrap();
        assert_eq!(
            PHP_SERIALIZE.encode(&decoded.data, &decoded.kept).unwrap(),
            stored
        );
        decoded.data.insert("n".into(), json!(1));
        assert_eq!(
            PHP_SERIALIZE.encode(&decoded.data, &decoded.kept).unwrap(),
            &b"a:3:{s:1:\"o\";O:1:\"X\":0:{}i:3;s:1:\"y\";s:1:\"n\";i:1;}"[..]
        );
    }

    #[test]
    fn bad_input_is_corrupt_and_a_key_php_forbids_is_refused() {
        for bad in [&b"count|i:5"[..], b"noname", b"a|x;", b"a:1:{}", b"a:0:{}x"] {
            let codec = if bad.starts_with(b"a:") {
                PHP_SERIALIZE
            } else {
                PHP
            };
            assert!(
                matches!(
                    codec.decode(&Bytes::from_static(bad)),
                    Err(SessionError::Corrupt(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut data = SessionData::new();
        data.insert("a|b".into(), json!(1));
        assert!(matches!(
            PHP.encode(&data, &KeptValues::default()),
            Err(SessionError::Unencodable { .. })
        ));
        assert!(PHP_SERIALIZE.encode(&data, &KeptValues::default()).is_ok());
    }

    /// `k0|i:0;k1|i:1;…` with `count` variables.
    fn many_variables(count: usize) -> Bytes {
        (0..count)
            .flat_map(|n| format!("k{n}|i:{n};").into_bytes())
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn a_session_of_100_000_variables_reads_changes_and_writes_back() {
        // Each entry used to be looked for by walking every entry kept so
        // far: 40,000 variables took 15 s of CPU, 100,000 would take
        // minutes (and this test with them). Now in proportion to the count.
        let stored = many_variables(100_000);
        let mut decoded = PHP.decode(&stored).unwrap();
        assert_eq!(decoded.data.len(), 100_000);
        assert_eq!(decoded.kept.len(), 100_000);
        assert_eq!(
            PHP.encode(&decoded.data, &decoded.kept).unwrap(),
            &stored[..],
            "unchanged, written back byte for byte"
        );
        decoded.data.insert("k99999".into(), json!("last"));
        decoded.kept.forget("k99999");
        decoded.data.insert("new".into(), json!(true));
        let written = PHP.encode(&decoded.data, &decoded.kept).unwrap();
        assert!(written.ends_with(b"k99999|s:4:\"last\";new|b:1;"));
        let serialized = format!(
            "a:100000:{{{}}}",
            (0..100_000)
                .map(|n| format!("i:{n};i:{n};"))
                .collect::<String>()
        );
        assert_eq!(
            PHP_SERIALIZE
                .decode(&Bytes::from(serialized))
                .unwrap()
                .data
                .len(),
            100_000
        );
    }

    #[test]
    fn a_later_variable_of_the_same_name_replaces_the_earlier_one_where_it_stood() {
        let decoded = PHP
            .decode(&Bytes::from_static(b"a|i:1;b|i:2;a|i:3;"))
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(decoded.data.clone()),
            json!({"a": 3, "b": 2})
        );
        // PHP 8: session_decode() then session_encode() gives the same.
        assert_eq!(
            PHP.encode(&decoded.data, &decoded.kept).unwrap(),
            &b"a|i:3;b|i:2;"[..]
        );
    }

    #[test]
    fn more_than_200_000_variables_are_refused_as_unreadable() {
        assert!(PHP.decode(&many_variables(200_000)).is_ok());
        assert!(matches!(
            PHP.decode(&many_variables(200_001)),
            Err(SessionError::Corrupt(_))
        ));
        assert!(matches!(
            PHP_SERIALIZE.decode(&Bytes::from_static(b"a:200001:{}")),
            Err(SessionError::Corrupt(_))
        ));
    }
}
