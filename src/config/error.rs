//! Why the configuration cannot be used. Each message names where the bad
//! value came from (file:line, env var or flag), the value (secrets
//! redacted) and what is accepted; `main` prints it and exits non-zero.

use std::path::PathBuf;

use super::layering::RawValue;
use super::setting::SettingSpec;
use super::source::Source;

/// A configuration nene refuses to start with; the message is for the
/// operator and says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An ini file exists but cannot be read. (A missing
    /// file is not an error: every layer is optional.)
    #[error("cannot read ini file {path}: {reason}")]
    Unreadable {
        /// The file that failed.
        path: PathBuf,
        /// The I/O or parse error, as text.
        reason: String,
    },
    /// A known setting has a value that does not parse or is out of range.
    #[error("{origin}: {name} = {value:?} is not accepted: expected {accepted}")]
    Invalid {
        /// Where the rejected value was set.
        origin: Source,
        /// The setting, as `section.key`.
        name: String,
        /// The value as given, or `(redacted)` for a DSN, which may hold a
        /// password.
        value: String,
        /// What the setting takes, in words.
        accepted: String,
    },
    /// A name where only nene's own settings belong (a key in one of its
    /// sections, a `NENE_` variable) that no setting has, or a section one
    /// typo away from one of nene's.
    #[error("{origin}: unknown setting {name}{}", did_you_mean(.suggestion))]
    UnknownKey {
        /// Where the unknown name appeared.
        origin: Source,
        /// The name as written, so the operator can find it.
        name: String,
        /// The nearest known name, when one is close enough to be the
        /// intended one.
        suggestion: Option<String>,
    },
    /// One of nene's own sections appears in site.ini, which is for the
    /// application's constants only.
    #[error(
        "{origin}: [{section}] holds nene's own settings; it belongs in system.ini, not site.ini"
    )]
    MisplacedSection {
        /// The site.ini line that sets a key in that section.
        origin: Source,
        /// The section that belongs in system.ini.
        section: String,
    },
    /// An unquoted ini value contains `;`, which here would be part of the
    /// value rather than start a comment; refused so a trailing comment never
    /// ends up in a value.
    #[error(
        "{origin}: a `;` after a value would be part of the value here; put comments on their own line (or quote the value)"
    )]
    InlineComment {
        /// The line with the `;`.
        origin: Source,
    },
    /// A line of an ini file that is not `[section]`, `key = value`, a
    /// comment or blank, or a quoted value that does not end.
    #[error("{origin}: {problem}")]
    Syntax {
        /// The line.
        origin: Source,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Settings that are each valid but do not work together (SameSite=None
    /// without Secure, too few session id bits); the text names both.
    #[error("{0}")]
    Conflict(String),
}

impl ConfigError {
    /// `spec`'s value `raw` is not what it accepts.
    pub(super) fn invalid(spec: &SettingSpec, raw: &RawValue, accepted: String) -> Self {
        let value = if spec.secret {
            "(redacted)".to_string()
        } else {
            raw.text.clone()
        };
        ConfigError::Invalid {
            origin: raw.source.clone(),
            name: spec.dotted(),
            value,
            accepted,
        }
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean {name}?)"),
        None => String::new(),
    }
}

/// The closest of `candidates` to `unknown`, if it is close enough to be a typo.
pub fn closest<'a>(unknown: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|candidate| (strsim::jaro_winkler(unknown, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.to_string())
}
