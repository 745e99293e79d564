//! The public API is a reviewed list (docs/public-api.txt): what
//! `src/lib.rs` exports must be exactly that list, at most 40 items, and
//! nene's modules must be private unless the `internals` feature (nene's
//! own tests) makes them public and hidden from the docs.

use std::collections::BTreeSet;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The names `src/lib.rs` makes public: its `pub use` re-exports (but
/// those only the `internals` feature makes, hidden) and any item declared
/// `pub` at its top level.
fn exported(lib: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    // Statements, not lines: a `pub use` may span several.
    for statement in lib.split(';') {
        let statement = statement
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join(" ");
        let Some((attributes, path)) = statement.split_once("pub use ") else {
            continue;
        };
        // nene's own tests' view of it, hidden from the docs.
        if attributes.contains("cfg(feature = \"internals\")") {
            assert!(attributes.contains("#[doc(hidden)]"), "{statement}");
            continue;
        }
        let path = path.trim();
        let list = match path.split_once('{') {
            Some((_, list)) => list.trim_end_matches('}').to_string(),
            None => path.rsplit("::").next().unwrap_or(path).to_string(),
        };
        for name in list.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                names.insert(name.rsplit(" as ").next().unwrap().to_string());
            }
        }
    }
    let lines: Vec<&str> = lib.lines().collect();
    for (at, line) in lines.iter().enumerate() {
        let internal = lines[at.saturating_sub(2)..at]
            .iter()
            .any(|before| before.contains("cfg(feature = \"internals\")"));
        for kind in [
            "fn", "struct", "enum", "trait", "const", "static", "type", "mod",
        ] {
            if let Some(rest) = line.strip_prefix(&format!("pub {kind} "))
                && !internal
            {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn the_public_api_is_the_reviewed_list() {
    let lib = std::fs::read_to_string(format!("{ROOT}/src/lib.rs")).unwrap();
    let listed: BTreeSet<String> = std::fs::read_to_string(format!("{ROOT}/docs/public-api.txt"))
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.trim().to_string())
        .collect();
    let exported = exported(&lib);
    assert!(
        exported.contains("run") && exported.contains("Session"),
        "the reading of src/lib.rs found {exported:?}"
    );
    let added: Vec<_> = exported.difference(&listed).collect();
    let removed: Vec<_> = listed.difference(&exported).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "src/lib.rs and docs/public-api.txt differ: exported but not listed {added:?}, listed but not exported {removed:?}; an API change is a change to the list"
    );
    assert!(listed.len() <= 40, "{} public items", listed.len());
}

/// Every module is declared private, or public only with `internals`
/// and hidden from the docs.
#[test]
fn modules_are_public_only_for_nenes_own_tests() {
    let lib = std::fs::read_to_string(format!("{ROOT}/src/lib.rs")).unwrap();
    let lines: Vec<&str> = lib.lines().collect();
    for (at, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("pub mod ") {
            let before = &lines[at.saturating_sub(2)..at];
            assert!(
                before.iter().any(|l| l.contains("#[doc(hidden)]"))
                    && before
                        .iter()
                        .any(|l| l.contains("#[cfg(feature = \"internals\")]")),
                "line {}: a public module outside `internals`: {line}",
                at + 1
            );
        }
    }
}
