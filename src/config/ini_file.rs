//! One ini file: its values read with the `config` crate, plus a line scan
//! that the crate does not offer — which line set each key (for `nene config`
//! and error messages) and PHP-style inline comments, which the crate would
//! silently keep as part of the value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, File, FileFormat, Source as _, ValueKind};

use super::error::ConfigError;
use super::source::Source;

/// One `key = value` of an ini file. Section and key are lower-cased for
/// nene's settings; `raw_key` keeps the spelling for application constants.
#[derive(Clone, Debug)]
pub struct IniEntry {
    /// Lower-cased section; empty for keys before any `[section]`.
    pub section: String,
    /// The key as written; lower-cased later for nene's own settings.
    pub raw_key: String,
    /// The value as the `config` crate read it (quotes removed).
    pub value: String,
    /// The file and line that set it, for messages and `nene config`.
    pub source: Source,
}

/// Reads `path`. A missing file is `Ok(None)`; a file that exists but cannot
/// be read or parsed is an error naming it.
pub fn read_ini_file(path: &Path) -> Result<Option<Vec<IniEntry>>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(ConfigError::Unreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            });
        }
    };
    let lines = scan_lines(path, &text)?;
    let parsed = Config::builder()
        .add_source(File::from_str(&text, FileFormat::Ini))
        .build()
        .and_then(|config| config.collect())
        .map_err(|error| ConfigError::Unreadable {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    let mut entries = Vec::new();
    for (outer_key, value) in parsed {
        match value.kind {
            ValueKind::Table(table) => {
                for (key, value) in table {
                    entries.push(entry(path, &lines, &outer_key, &key, value.into_string()));
                }
            }
            // rust-ini puts keys before the first section at the top level.
            other => {
                let value = config::Value::new(None, other).into_string();
                entries.push(entry(path, &lines, "", &outer_key, value));
            }
        }
    }
    entries.sort_by_key(|e| match &e.source {
        Source::File { line, .. } => *line,
        _ => 0,
    });
    Ok(Some(entries))
}

fn entry(
    path: &Path,
    lines: &HashMap<(String, String), usize>,
    section: &str,
    key: &str,
    value: Result<String, config::ConfigError>,
) -> IniEntry {
    let section = section.to_ascii_lowercase();
    let line = lines
        .get(&(section.clone(), key.to_string()))
        .copied()
        .unwrap_or(0);
    IniEntry {
        section,
        raw_key: key.to_string(),
        value: value.unwrap_or_default(),
        source: Source::File {
            path: path.to_path_buf(),
            line,
        },
    }
}

/// Maps (section, key) to the line that last set it, and refuses inline
/// comments in unquoted values.
fn scan_lines(path: &Path, text: &str) -> Result<HashMap<(String, String), usize>, ConfigError> {
    let mut lines = HashMap::new();
    let mut section = String::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let quoted = value.starts_with('"') || value.starts_with('\'');
        if !quoted && value.contains(';') {
            return Err(ConfigError::InlineComment {
                origin: Source::File {
                    path: PathBuf::from(path),
                    line: number,
                },
            });
        }
        lines.insert((section.clone(), key.trim().to_string()), number);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.ini");
        std::fs::write(
            &path,
            "; comment\nTOP = 1\n[Session]\nname = \"MY ID\"\n\ngc_maxlifetime = 600\n",
        )
        .unwrap();
        let entries = read_ini_file(&path).unwrap().unwrap();
        let find = |key: &str| entries.iter().find(|e| e.raw_key == key).unwrap();
        assert_eq!(find("TOP").section, "");
        assert_eq!(find("name").section, "session");
        assert_eq!(find("name").value, "MY ID");
        assert_eq!(
            find("gc_maxlifetime").source,
            Source::File {
                path: path.clone(),
                line: 6
            }
        );
    }

    #[test]
    fn a_missing_file_is_none_and_an_inline_comment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_ini_file(&dir.path().join("nope.ini"))
                .unwrap()
                .is_none()
        );
        let path = dir.path().join("bad.ini");
        std::fs::write(&path, "[site]\ntitle = x ; a comment\n").unwrap();
        let error = read_ini_file(&path).unwrap_err().to_string();
        assert!(error.contains("bad.ini:2"), "{error}");
        std::fs::write(&path, "[site]\ntitle = \"x ; not a comment\"\n").unwrap();
        assert!(read_ini_file(&path).is_ok());
    }
}
