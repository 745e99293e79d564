//! Where a setting's value came from, for error messages and `nene config`.

use std::path::PathBuf;

/// The origin of one value; shown in messages as `file:line`, `env NAME` or
/// `command line --flag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// nene's built-in default.
    Default,
    /// A line of an ini file.
    File {
        /// The ini file.
        path: PathBuf,
        /// The 1-based line that set the value; 0 when it cannot be found.
        line: usize,
    },
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    CommandLine(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::CommandLine(flag) => write!(f, "command line {flag}"),
        }
    }
}
