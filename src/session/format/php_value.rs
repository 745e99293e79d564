//! PHP's `serialize()` grammar, as PHP's own `var_unserializer` reads it:
//! `N;`, `b:1;`, `i:5;`, `d:0.5;`, `s:3:"abc";`, `a:2:{…}`, and the values
//! nene cannot map to its own data — objects `O:`, custom objects `C:`,
//! enums `E:`, references `r:`/`R:`, escaped strings `S:`. Those are parsed
//! only far enough to know where they end, so they can be carried through
//! byte for byte.
//!
//! Written here rather than taken from `muesli` (the crate that reads both
//! session formats): nene needs where each top-level value starts and ends,
//! to write what a handler did not change back byte for byte (PHP's float
//! text, key order, references that count positions), and a value tree does
//! not keep that. The grammar is small; PHP's own output is the test oracle
//! (`tests/protocol/php_format.rs`).

use serde_json::{Map, Number, Value};

/// How deep arrays may nest before the input is refused: far beyond real
/// sessions, well within the stack (the parser recurses once per level).
const MAX_DEPTH: usize = 128;

/// Why bytes are not a PHP value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not PHP serialize() data at byte {at}: {what}")]
pub struct PhpSyntaxError {
    /// Offset of the problem in the input.
    pub at: usize,
    /// What was expected or wrong there.
    pub what: &'static str,
}

/// One parsed value: what it maps to in nene's data, or why it does not.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// A value nene's data can hold.
    Mapped(Value),
    /// A value nene keeps as bytes; the text says what it is, for the error
    /// a handler gets when it reads it.
    Opaque(&'static str),
}

/// Parses one value starting at `start`; returns it and the offset just
/// past it.
pub fn parse_value(input: &[u8], start: usize) -> Result<(Parsed, usize), PhpSyntaxError> {
    Parser { input, pos: start }.value(0)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> PhpSyntaxError {
        PhpSyntaxError { at: self.pos, what }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), PhpSyntaxError> {
        if self.input.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// The bytes up to (not including) `end`, which is consumed.
    fn until(&mut self, end: u8, what: &'static str) -> Result<&[u8], PhpSyntaxError> {
        let rest = &self.input[self.pos.min(self.input.len())..];
        let Some(length) = rest.iter().position(|&b| b == end) else {
            return Err(self.error(what));
        };
        let found = &self.input[self.pos..self.pos + length];
        self.pos += length + 1;
        Ok(found)
    }

    fn integer(&mut self, end: u8) -> Result<i64, PhpSyntaxError> {
        let at = self.pos;
        let text = self.until(end, "an integer")?;
        std::str::from_utf8(text)
            .ok()
            .filter(|t| !t.starts_with('+'))
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(PhpSyntaxError {
                at,
                what: "an integer",
            })
    }

    fn length(&mut self, end: u8) -> Result<usize, PhpSyntaxError> {
        let at = self.pos;
        let n = self.integer(end)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.input.len())
            .ok_or(PhpSyntaxError {
                at,
                what: "a length within the input",
            })
    }

    /// `LEN:"bytes"` — the quoted bytes of a string or class name.
    fn quoted(&mut self) -> Result<&[u8], PhpSyntaxError> {
        let length = self.length(b':')?;
        self.expect(b'"', "an opening quote")?;
        let start = self.pos;
        let end = start
            .checked_add(length)
            .filter(|&end| end <= self.input.len())
            .ok_or(self.error("a string as long as its length says"))?;
        self.pos = end;
        self.expect(b'"', "a closing quote")?;
        Ok(&self.input[start..end])
    }

    /// `:LEN:"Class":` of an object, skipped (its data stays opaque).
    fn class_name(&mut self) -> Result<(), PhpSyntaxError> {
        self.expect(b':', "`:`")?;
        self.quoted()?;
        self.expect(b':', "`:`")
    }

    /// `N:{` opening an array, an object's properties or custom data: `N`.
    fn length_and_brace(&mut self) -> Result<usize, PhpSyntaxError> {
        let length = self.length(b':')?;
        self.expect(b'{', "`{`")?;
        Ok(length)
    }

    fn value(&mut self, depth: usize) -> Result<(Parsed, usize), PhpSyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error("values nested at most 128 deep"));
        }
        let kind = *self.input.get(self.pos).ok_or(self.error("a value"))?;
        self.pos += 1;
        let parsed = match kind {
            b'N' => {
                self.expect(b';', "`;` after N")?;
                Parsed::Mapped(Value::Null)
            }
            b'b' => {
                self.expect(b':', "`:`")?;
                match self.integer(b';')? {
                    0 => Parsed::Mapped(Value::Bool(false)),
                    1 => Parsed::Mapped(Value::Bool(true)),
                    _ => return Err(self.error("b:0 or b:1")),
                }
            }
            b'i' => {
                self.expect(b':', "`:`")?;
                Parsed::Mapped(Value::from(self.integer(b';')?))
            }
            b'd' => {
                self.expect(b':', "`:`")?;
                let at = self.pos;
                let text = self.until(b';', "a float")?;
                let float = std::str::from_utf8(text)
                    .ok()
                    .and_then(parse_php_float)
                    .ok_or(PhpSyntaxError {
                        at,
                        what: "a float",
                    })?;
                match Number::from_f64(float) {
                    Some(number) => Parsed::Mapped(Value::Number(number)),
                    None => Parsed::Opaque("a float that is infinite or not a number"),
                }
            }
            b's' => {
                self.expect(b':', "`:`")?;
                let mapped = match std::str::from_utf8(self.quoted()?) {
                    Ok(text) => Parsed::Mapped(Value::String(text.to_string())),
                    Err(_) => Parsed::Opaque("a string that is not UTF-8"),
                };
                self.expect(b';', "`;` after a string")?;
                mapped
            }
            b'S' => {
                // An escaped string (`\\xx` sequences); PHP never writes
                // it today but still reads it.
                self.expect(b':', "`:`")?;
                let length = self.length(b':')?;
                self.expect(b'"', "an opening quote")?;
                for _ in 0..length {
                    match self.input.get(self.pos) {
                        Some(b'\\') => self.pos += 3,
                        Some(_) => self.pos += 1,
                        None => return Err(self.error("an escaped string")),
                    }
                }
                self.expect(b'"', "a closing quote")?;
                self.expect(b';', "`;` after a string")?;
                Parsed::Opaque("an escaped string (S:)")
            }
            b'a' => {
                self.expect(b':', "`:`")?;
                let count = self.length_and_brace()?;
                let parsed = self.array(count, depth)?;
                self.expect(b'}', "`}` closing an array")?;
                parsed
            }
            b'O' => {
                self.class_name()?;
                let count = self.length_and_brace()?;
                self.array(count, depth)?;
                self.expect(b'}', "`}` closing an object")?;
                Parsed::Opaque("a PHP object")
            }
            b'C' => {
                self.class_name()?;
                let length = self.length_and_brace()?;
                self.pos = self
                    .pos
                    .checked_add(length)
                    .filter(|&end| end <= self.input.len())
                    .ok_or(self.error("custom data as long as its length says"))?;
                self.expect(b'}', "`}` closing custom data")?;
                Parsed::Opaque("a PHP object with custom serialization")
            }
            b'E' => {
                self.expect(b':', "`:`")?;
                self.quoted()?;
                self.expect(b';', "`;` after an enum")?;
                Parsed::Opaque("a PHP enum")
            }
            b'r' | b'R' => {
                self.expect(b':', "`:`")?;
                self.integer(b';')?;
                Parsed::Opaque("a PHP reference")
            }
            _ => {
                self.pos -= 1;
                return Err(self.error("one of N b i d s a O C E r R S"));
            }
        };
        Ok((parsed, self.pos))
    }

    /// `count` key-value pairs of an array (or an object's properties).
    fn array(&mut self, count: usize, depth: usize) -> Result<Parsed, PhpSyntaxError> {
        let mut pairs: Vec<(Value, Parsed)> = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let key_at = self.pos;
            let (key, _) = self.value(depth + 1)?;
            let key = match key {
                Parsed::Mapped(key @ (Value::Number(_) | Value::String(_))) => key,
                Parsed::Mapped(_) | Parsed::Opaque(_) => {
                    return Err(PhpSyntaxError {
                        at: key_at,
                        what: "an array key (i: or s:)",
                    });
                }
            };
            let (value, _) = self.value(depth + 1)?;
            pairs.push((key, value));
        }
        if let Some((_, Parsed::Opaque(what))) = pairs
            .iter()
            .find(|(_, value)| matches!(value, Parsed::Opaque(_)))
        {
            return Ok(Parsed::Opaque(what));
        }
        let is_list = pairs
            .iter()
            .enumerate()
            .all(|(index, (key, _))| key.as_i64() == Some(index as i64));
        let values = pairs.into_iter().map(|(key, value)| {
            let Parsed::Mapped(value) = value else {
                unreachable!("opaque values returned above")
            };
            (key, value)
        });
        if is_list {
            return Ok(Parsed::Mapped(Value::Array(
                values.map(|(_, value)| value).collect(),
            )));
        }
        let mut map = Map::new();
        for (key, value) in values {
            let key = match key {
                Value::String(text) => text,
                other => other.to_string(),
            };
            map.insert(key, value);
        }
        Ok(Parsed::Mapped(Value::Object(map)))
    }
}

/// PHP's float text: decimal or exponent notation, `INF`, `-INF`, `NAN`.
fn parse_php_float(text: &str) -> Option<f64> {
    match text {
        "INF" => Some(f64::INFINITY),
        "-INF" => Some(f64::NEG_INFINITY),
        "NAN" => Some(f64::NAN),
        _ if text.is_empty() || text.starts_with('+') => None,
        _ => text.parse().ok(),
    }
}

/// Appends `value` in PHP's `serialize()` form. Map keys that are integers
/// in PHP's canonical form become `i:` keys, as PHP itself stores them.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"N;"),
        Value::Bool(flag) => out.extend_from_slice(if *flag { b"b:1;" } else { b"b:0;" }),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => out.extend_from_slice(format!("i:{integer};").as_bytes()),
            // A u64 over i64::MAX or a float: PHP has no wider integer.
            None => {
                let float = number.as_f64().unwrap_or(f64::NAN);
                out.extend_from_slice(format!("d:{float:?};").as_bytes());
            }
        },
        Value::String(text) => encode_string(text.as_bytes(), out),
        Value::Array(items) => {
            out.extend_from_slice(format!("a:{}:{{", items.len()).as_bytes());
            for (index, item) in items.iter().enumerate() {
                out.extend_from_slice(format!("i:{index};").as_bytes());
                encode_value(item, out);
            }
            out.push(b'}');
        }
        Value::Object(map) => {
            out.extend_from_slice(format!("a:{}:{{", map.len()).as_bytes());
            for (key, item) in map {
                encode_key(key, out);
                encode_value(item, out);
            }
            out.push(b'}');
        }
    }
}

/// An array key: `i:N;` when PHP would store the key as an integer (a
/// canonical decimal in i64's range), `s:…;` otherwise.
pub fn encode_key(key: &str, out: &mut Vec<u8>) {
    match canonical_integer(key) {
        Some(integer) => out.extend_from_slice(format!("i:{integer};").as_bytes()),
        None => encode_string(key.as_bytes(), out),
    }
}

fn encode_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("s:{}:\"", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\";");
}

/// PHP turns a string array key into an integer key when it is a decimal
/// integer without leading zeros, `+` or spaces (`"5"`, `"-3"`, not `"05"`
/// or `"-0"`), within the integer range.
fn canonical_integer(key: &str) -> Option<i64> {
    let digits = key.strip_prefix('-').unwrap_or(key);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && key != "-0";
    if !canonical {
        return None;
    }
    key.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &[u8]) -> Parsed {
        let (parsed, end) = parse_value(text, 0).unwrap();
        assert_eq!(end, text.len(), "{}", String::from_utf8_lossy(text));
        parsed
    }

    #[test]
    fn scalars_and_arrays_map_to_nenes_data() {
        assert_eq!(parse(b"N;"), Parsed::Mapped(Value::Null));
        assert_eq!(parse(b"b:1;"), Parsed::Mapped(json!(true)));
        assert_eq!(parse(b"i:-42;"), Parsed::Mapped(json!(-42)));
        assert_eq!(parse(b"d:0.5;"), Parsed::Mapped(json!(0.5)));
        assert_eq!(parse(b"d:1.0E+25;"), Parsed::Mapped(json!(1.0e25)));
        assert_eq!(parse(b"s:5:\"a\"b;c\";"), Parsed::Mapped(json!("a\"b;c")));
        assert_eq!(
            parse(b"a:2:{i:0;s:1:\"x\";i:1;b:0;}"),
            Parsed::Mapped(json!(["x", false]))
        );
        assert_eq!(
            parse(b"a:2:{s:4:\"user\";s:5:\"alice\";i:7;N;}"),
            Parsed::Mapped(json!({"user": "alice", "7": null}))
        );
    }

    #[test]
    fn values_nene_cannot_map_are_opaque_with_a_known_end() {
        let opaque: [&[u8]; 8] = [
            b"O:8:\"stdClass\":1:{s:1:\"a\";i:1;}",
            b"C:11:\"ArrayObject\":21:{x:i:0;a:0:{};m:a:0:{}}",
            b"E:11:\"Suit:Hearts\";",
            b"r:2;",
            b"R:3;",
            b"d:INF;",
            b"s:2:\"\xff\xfe\";",
            b"a:1:{i:0;O:8:\"stdClass\":0:{}}",
        ];
        for text in opaque {
            assert!(
                matches!(parse(text), Parsed::Opaque(_)),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn malformed_and_truncated_input_is_an_error_never_a_guess() {
        let bad: [&[u8]; 12] = [
            b"",
            b"x:1;",
            b"i:;",
            b"i:+1;",
            b"i:1",
            b"b:2;",
            b"s:10:\"short\";",
            b"s:-1:\"\";",
            b"a:2:{i:0;N;}",
            b"a:1:{N;N;}",
            b"O:8:\"stdClass\":1:{",
            b"C:1:\"X\":99:{}",
        ];
        for text in bad {
            assert!(
                parse_value(text, 0).is_err(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        let deep = "a:1:{i:0;".repeat(200) + "N;" + &"}".repeat(200);
        assert!(parse_value(deep.as_bytes(), 0).is_err());
    }

    #[test]
    fn encoding_writes_what_php_writes() {
        let mut out = Vec::new();
        encode_value(
            &json!({"user": "alice", "cart": [1, 2.5], "7": null, "07": true}),
            &mut out,
        );
        // Keys in the order they were inserted.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a:4:{s:4:\"user\";s:5:\"alice\";s:4:\"cart\";a:2:{i:0;i:1;i:1;d:2.5;}i:7;N;s:2:\"07\";b:1;}"
        );
        assert_eq!(canonical_integer("-3"), Some(-3));
        assert_eq!(canonical_integer("-0"), None);
        assert_eq!(canonical_integer("99999999999999999999"), None);
    }
}
