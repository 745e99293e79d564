//! Why the configuration cannot be used. Each message names where the bad
//! value came from (file:line, env var or flag), the value (secrets
//! redacted) and what is accepted; `main` prints it and exits non-zero.

use std::path::PathBuf;

use super::source::Source;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read ini file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{origin}: {name} = {value:?} is not accepted: expected {accepted}")]
    Invalid {
        origin: Source,
        name: String,
        value: String,
        accepted: String,
    },
    #[error("{origin}: unknown setting {name}{}", did_you_mean(.suggestion))]
    UnknownKey {
        origin: Source,
        name: String,
        suggestion: Option<String>,
    },
    #[error(
        "{origin}: [{section}] holds nene's own settings; it belongs in system.ini, not site.ini"
    )]
    MisplacedSection { origin: Source, section: String },
    #[error(
        "{origin}: a `;` after a value would be part of the value here; put comments on their own line (or quote the value)"
    )]
    InlineComment { origin: Source },
    #[error("{0}")]
    Conflict(String),
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
