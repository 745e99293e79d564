//! Settings whose value is one word from a fixed list (`session.cookie_samesite`,
//! `session.serialize_handler`, `log.format`, …): the error that says what is
//! accepted, and a macro that writes the `FromStr` from the list once.

/// A value outside what a setting accepts; the message lists what is.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not one of {accepted}")]
pub struct BadChoice {
    /// The rejected value, as given.
    pub value: String,
    /// The accepted values, as the message lists them.
    pub accepted: &'static str,
}

/// `FromStr` for an enum of words, matched case-insensitively after trimming:
/// `choice_from_str!(Type, "a, b", { "a" => Type::A, "b" | "bee" => Type::B })`.
macro_rules! choice_from_str {
    ($type:ty, $accepted:literal, { $($($text:literal)|+ => $variant:expr),+ $(,)? }) => {
        impl std::str::FromStr for $type {
            type Err = $crate::choice::BadChoice;
            fn from_str(text: &str) -> Result<Self, $crate::choice::BadChoice> {
                match text.trim().to_ascii_lowercase().as_str() {
                    $($($text)|+ => Ok($variant),)+
                    _ => Err($crate::choice::BadChoice { value: text.to_string(), accepted: $accepted }),
                }
            }
        }
    };
}
pub(crate) use choice_from_str;
