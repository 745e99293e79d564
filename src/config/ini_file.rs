//! One ini file, read in a single pass: each `key = value` with its
//! section and the line that set it (for `nene config` and error messages).
//!
//! Written here rather than taken from an ini crate: the syntax nene accepts
//! is small (PHP's `[section]`, `key = value`, `;`/`#` comment lines, quoted
//! values), and the crates that read it neither report lines nor refuse an
//! inline `;` comment, which PHP's parser treats differently from them — a
//! value that silently kept a trailing comment would be worse than an error.

use std::path::{Path, PathBuf};

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
    /// The value, quotes removed.
    pub value: String,
    /// The file and line that set it, for messages and `nene config`.
    pub source: Source,
}

/// Reads `path`. A missing file is `Ok(None)`; a file that exists but cannot
/// be read or parsed is an error naming it (and the line).
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
    parse_ini(path, &text).map(Some)
}

/// Every entry of `text` in file order (a key set twice appears twice; the
/// later one wins when applied).
fn parse_ini(path: &Path, text: &str) -> Result<Vec<IniEntry>, ConfigError> {
    let mut entries = Vec::new();
    let mut section = String::new();
    for (index, line) in text.lines().enumerate() {
        let origin = || Source::File {
            path: PathBuf::from(path),
            line: index + 1,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(ConfigError::Syntax {
                    origin: origin(),
                    problem: "a section header needs its closing ]",
                });
            };
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                origin: origin(),
                problem: "expected key = value, [section], or a comment starting with ;",
            });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                origin: origin(),
                problem: "a key is missing before =",
            });
        }
        entries.push(IniEntry {
            section: section.clone(),
            raw_key: key.to_string(),
            value: parse_value(value.trim(), origin)?,
            source: origin(),
        });
    }
    Ok(entries)
}

/// A value: `"quoted"` (where `\"` and `\\` are escapes), `'quoted'` (taken as
/// is), or bare. A comment may follow a quoted value; in a bare one a `;`
/// is refused, since PHP would end the value there and other ini readers
/// would not.
fn parse_value(value: &str, origin: impl Fn() -> Source) -> Result<String, ConfigError> {
    let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        if value.contains(';') {
            return Err(ConfigError::InlineComment { origin: origin() });
        }
        return Ok(value.to_string());
    };
    let mut text = String::new();
    let mut chars = value[1..].chars();
    loop {
        match chars.next() {
            None => {
                return Err(ConfigError::Syntax {
                    origin: origin(),
                    problem: "a quoted value does not end on its line",
                });
            }
            Some(c) if c == quote => break,
            Some('\\') if quote == '"' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => text.push(escaped),
                Some(other) => {
                    text.push('\\');
                    text.push(other);
                }
                None => text.push('\\'),
            },
            Some(c) => text.push(c),
        }
    }
    let rest = chars.as_str().trim();
    if !(rest.is_empty() || rest.starts_with(';') || rest.starts_with('#')) {
        return Err(ConfigError::Syntax {
            origin: origin(),
            problem: "only a comment may follow a quoted value",
        });
    }
    Ok(text)
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

    fn parsed(text: &str) -> Result<Vec<IniEntry>, String> {
        parse_ini(Path::new("t.ini"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn quotes_escapes_and_comments_after_a_quoted_value() {
        let entries =
            parsed("a = \"x \\\" y\\\\z\" ; comment\nb = 'no \\\" escapes'\nc = \"\"\nd =\n")
                .unwrap();
        let values: Vec<&str> = entries.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(values, ["x \" y\\z", "no \\\" escapes", "", ""]);
    }

    #[test]
    fn a_key_set_twice_appears_twice_in_file_order() {
        let entries = parsed("[s]\nk = 1\nk = 2\n").unwrap();
        let values: Vec<&str> = entries.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(values, ["1", "2"]);
    }

    #[test]
    fn lines_that_are_not_ini_name_their_line() {
        for (text, line, problem) in [
            ("a = 1\njust words\n", 2, "expected key = value"),
            ("[open\n", 1, "closing ]"),
            ("= 1\n", 1, "key is missing"),
            ("a = \"unended\n", 1, "does not end"),
            ("a = \"x\" y\n", 1, "only a comment"),
        ] {
            let error = parsed(text).unwrap_err();
            assert!(
                error.contains(&format!("t.ini:{line}")),
                "{text:?}: {error}"
            );
            assert!(error.contains(problem), "{text:?}: {error}");
        }
    }
}
