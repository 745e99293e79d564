//! Session ids: generated from the OS CSPRNG, validated against
//! `sid_length` and `sid_bits_per_character` before anything reaches a
//! backend (an invalid id counts as no id).

use std::hash::BuildHasher;
use std::sync::OnceLock;

/// A session id that passed validation: only alphabet characters, exact
/// length. Safe to use in a file name or a Redis key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// The id itself, for the cookie and the backend key; never for logs
    /// (use [`log_tag`](Self::log_tag)).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What logs and errors call this session: 8 hex characters of a SipHash
    /// keyed with a random per-process key. Lines about one session share a
    /// tag, but no part of the id (a prefix would shrink a brute force) and
    /// nothing another process could compute from the id reaches a log.
    pub fn log_tag(&self) -> String {
        log_tag_of(&self.0)
    }
}

impl SessionId {
    /// An id found in a store (`nene sessions copy`), which may have been
    /// made by a PHP application with another `sid_length` or alphabet:
    /// accepted when it is 1 to 128 (`MAX_ID_LENGTH`) characters of the widest
    /// alphabet (`0-9a-zA-Z,-`), so it is still safe in a file name or key.
    pub fn from_store(text: &str) -> Option<SessionId> {
        (!text.is_empty()
            && text.len() <= MAX_ID_LENGTH
            && text.bytes().all(|b| is_in(ALPHABET_6, b)))
        .then(|| SessionId(text.to_string()))
    }
}

/// [`SessionId::log_tag`] of any text that names a session (gc sees ids in
/// file names before they are validated).
pub fn log_tag_of(id: &str) -> String {
    static KEY: OnceLock<std::hash::RandomState> = OnceLock::new();
    let hash = KEY.get_or_init(std::hash::RandomState::new).hash_one(id);
    format!("{:08x}", hash >> 32)
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId(#{})", self.log_tag())
    }
}

/// How ids look: PHP's `session.sid_length` and `session.sid_bits_per_character`.
#[derive(Clone, Copy, Debug)]
pub struct SessionIdFormat {
    length: usize,
    alphabet: &'static [u8],
}

const ALPHABET_4: &[u8] = b"0123456789abcdef";
const ALPHABET_5: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
const ALPHABET_6: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,-";

/// Whether `byte` is in `alphabet`, one of the three above. Each is the
/// start of the next, so this is the byte's place in the widest one, found
/// by its range rather than by searching the alphabet: a search per
/// character cost ~2,600 instructions for a 32-character id, on every
/// request that carries a cookie.
fn is_in(alphabet: &[u8], byte: u8) -> bool {
    let place = match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'z' => byte - b'a' + 10,
        b'A'..=b'Z' => byte - b'A' + 36,
        b',' => 62,
        b'-' => 63,
        _ => return false,
    };
    usize::from(place) < alphabet.len()
}

/// Fewer bits than this would make ids guessable (OWASP asks for 64 bits of
/// entropy at least; nene asks for twice that).
pub const MIN_ID_ENTROPY_BITS: usize = 128;
/// nene caps `session.sid_length` at 128 (PHP: 256): 768 bits is plenty, and
/// `sess_{id}` plus a temp-file suffix must fit a 255-byte file name.
pub const MAX_ID_LENGTH: usize = 128;

/// Settings that cannot make safe, usable ids; refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum IdFormatError {
    /// `sid_bits_per_character` is not 4, 5 or 6, the only alphabets there
    /// are.
    #[error("sid_bits_per_character must be 4, 5 or 6, not {0}")]
    BitsPerCharacter(u8),
    /// `sid_length` × bits per character is below [`MIN_ID_ENTROPY_BITS`].
    #[error(
        "sid_length {length} with {bits} bits per character gives {entropy} bits; at least {MIN_ID_ENTROPY_BITS} are needed"
    )]
    TooLittleEntropy {
        /// The configured `sid_length`.
        length: usize,
        /// The configured `sid_bits_per_character`.
        bits: u8,
        /// The bits of entropy they give.
        entropy: usize,
    },
    /// `sid_length` is above `MAX_ID_LENGTH` (128).
    #[error("sid_length {0} is above the maximum of {MAX_ID_LENGTH}")]
    TooLong(usize),
}

impl SessionIdFormat {
    /// The format for ids of `length` characters from the alphabet of
    /// `bits_per_character`; refuses what gives under 128 bits or over 128
    /// characters.
    pub fn new(length: usize, bits_per_character: u8) -> Result<Self, IdFormatError> {
        let alphabet = match bits_per_character {
            4 => ALPHABET_4,
            5 => ALPHABET_5,
            6 => ALPHABET_6,
            other => return Err(IdFormatError::BitsPerCharacter(other)),
        };
        let entropy = length * usize::from(bits_per_character);
        if entropy < MIN_ID_ENTROPY_BITS {
            return Err(IdFormatError::TooLittleEntropy {
                length,
                bits: bits_per_character,
                entropy,
            });
        }
        if length > MAX_ID_LENGTH {
            return Err(IdFormatError::TooLong(length));
        }
        Ok(Self { length, alphabet })
    }

    /// A fresh id from the operating system's CSPRNG: a random byte per
    /// character, taken modulo the alphabet's size (16, 32 or 64, each
    /// dividing 256, so every character is equally likely).
    pub fn generate(&self) -> SessionId {
        debug_assert!(256 % self.alphabet.len() == 0);
        let mut bytes = [0u8; MAX_ID_LENGTH];
        let bytes = &mut bytes[..self.length];
        getrandom::fill(bytes).expect("the operating system's random source");
        let id = bytes
            .iter()
            .map(|byte| self.alphabet[usize::from(*byte) % self.alphabet.len()] as char)
            .collect();
        SessionId(id)
    }

    /// The id if `text` has exactly the configured length and alphabet;
    /// anything else (empty, `*`, CR/LF, NUL, path separators …) is `None`.
    pub fn parse(&self, text: &str) -> Option<SessionId> {
        (text.len() == self.length && text.bytes().all(|b| is_in(self.alphabet, b)))
            .then(|| SessionId(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_validate_and_differ() {
        let format = SessionIdFormat::new(32, 5).unwrap();
        let a = format.generate();
        let b = format.generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(format.parse(a.as_str()), Some(a));
    }

    #[test]
    fn every_byte_is_in_an_alphabet_exactly_when_the_alphabet_holds_it() {
        for alphabet in [ALPHABET_4, ALPHABET_5, ALPHABET_6] {
            for byte in 0..=u8::MAX {
                assert_eq!(
                    is_in(alphabet, byte),
                    alphabet.contains(&byte),
                    "{:?} in {}",
                    char::from(byte),
                    String::from_utf8_lossy(alphabet)
                );
            }
        }
    }

    #[test]
    fn hostile_ids_are_not_ids() {
        let format = SessionIdFormat::new(32, 5).unwrap();
        let good = "0123456789abcdefghijklmnopqrstuv";
        assert!(format.parse(good).is_some());
        for bad in [
            "",
            "*",
            "sess_*",
            "0123456789abcdefghijklmnopqrstuw", // w is not in the 5-bit alphabet
            "0123456789abcdefghijklmnopqrstu",  // short
            "0123456789abcdefghijklmnopqrstuvv", // long
            "0123456789abcdefghijklmnopqrst\r\n",
            "0123456789abcdefghijklmnopqrst\0v",
            "../../../../etc/passwd00000000000",
            "0123456789ABCDEFGHIJKLMNOPQRSTUV",
            "é123456789abcdefghijklmnopqrstu",
        ] {
            assert!(format.parse(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn log_tags_are_stable_per_id_and_show_no_part_of_it() {
        let format = SessionIdFormat::new(32, 5).unwrap();
        let id = format.generate();
        let tag = id.log_tag();
        assert_eq!(tag.len(), 8);
        assert_eq!(tag, id.log_tag());
        assert_ne!(tag, format.generate().log_tag());
        assert!(!id.as_str().contains(&tag[..6]));
        assert!(!format!("{id:?}").contains(&id.as_str()[..6]));
        // Debug output (in a panic or a debug log) names the session by its
        // tag, so it can still be found in the logs.
        assert_eq!(format!("{id:?}"), format!("SessionId(#{tag})"));
    }

    #[test]
    fn formats_with_too_little_entropy_are_refused() {
        assert!(SessionIdFormat::new(22, 5).is_err());
        assert!(SessionIdFormat::new(26, 5).is_ok());
        assert!(SessionIdFormat::new(32, 3).is_err());
        assert!(SessionIdFormat::new(300, 6).is_err());
    }
}
