//! The README shows the hello example whole: it must be the code that is
//! built and tested (examples/hello), not a copy that drifted.

mod common;

use std::path::Path;

use common::REPO;

/// The first ```rust block after `heading` in the README.
fn rust_block_after(readme: &str, heading: &str) -> String {
    let section = &readme[readme.find(heading).expect("the README section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let length = section[start..].find("```").expect("the block's end");
    section[start..start + length].to_string()
}

#[test]
fn the_readme_shows_the_hello_example_as_it_is_built() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let shown = rust_block_after(&readme, "## Write your application");
    let source =
        std::fs::read_to_string(Path::new(REPO).join("examples/hello/src/main.rs")).unwrap();
    // The file's `//!` header says what the example is; the README says it
    // in prose instead.
    let code: String = source
        .lines()
        .skip_while(|line| line.starts_with("//!") || line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(shown, code);
}
