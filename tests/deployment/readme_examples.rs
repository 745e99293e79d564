//! The README shows the hello example whole, and excerpts of the web
//! servers' configurations: they must be the code and the files that are
//! built and tested (examples/hello, deploy/), not copies that drifted.

use std::path::Path;

use nene_test_support::REPO;

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

/// "Pages and forms" shows examples/hello/examples/notes.rs whole (it is
/// built by `cargo test`), and its two handlers stay under 30 lines.
#[test]
fn the_readme_shows_the_form_example_as_it_is_built() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let shown: String = rust_block_after(&readme, "- **Pages and forms.**")
        .lines()
        .map(|line| format!("{}\n", line.strip_prefix("  ").unwrap_or(line)))
        .collect();
    let source =
        std::fs::read_to_string(Path::new(REPO).join("examples/hello/examples/notes.rs")).unwrap();
    let code: String = source
        .lines()
        .skip_while(|line| line.starts_with("//!") || line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(shown.trim_end(), code.trim_end());
    let handlers = &code
        [code.find("/// `GET /notes`").unwrap()..code.find("/// What `htmlspecialchars`").unwrap()];
    assert!(handlers.lines().count() < 30, "{handlers}");
}

/// The example values the README's web-server excerpts use where the
/// templates in deploy/ have placeholders.
const EXCERPT_VALUES: [(&str, &str); 5] = [
    ("${NENE_UPSTREAM}", "127.0.0.1:9000"),
    ("${NENE_HTDOCS}", "/srv/nene/htdocs"),
    ("${NENE_HOST}", "127.0.0.1"),
    ("${NENE_PORT}", "9000"),
    ("${CADDY_SITE}", "example.com"),
];

/// "Behind Apache, lighttpd or Caddy" shows excerpts of the files in
/// deploy/: every line of them (comments aside) is a line of one of those
/// files, with example values for the placeholders, so an excerpt cannot
/// drift from what the tests run.
#[test]
fn the_readmes_web_server_excerpts_are_lines_of_the_deploy_files() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let start = readme
        .find("## Behind Apache, lighttpd or Caddy")
        .expect("the README section");
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").expect("the next section")];
    let mut deployed = std::collections::HashSet::new();
    for template in [
        "deploy/nginx/php-style.conf.template",
        "deploy/apache/nene-proxypass.conf.template",
        "deploy/apache/nene-handler.conf.template",
        "deploy/lighttpd/lighttpd.conf.template",
        "deploy/caddy/Caddyfile.template",
    ] {
        let mut text = std::fs::read_to_string(Path::new(REPO).join(template)).unwrap();
        for (placeholder, value) in EXCERPT_VALUES {
            text = text.replace(placeholder, value);
        }
        deployed.extend(text.lines().map(|line| line.trim().to_string()));
    }
    // The fenced blocks are every other piece between the fences.
    let blocks: Vec<&str> = section.split("```").skip(1).step_by(2).collect();
    assert_eq!(blocks.len(), 4, "one excerpt per server");
    for block in blocks {
        for line in block.lines().skip(1).map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(
                deployed.contains(line),
                "the README shows `{line}`, which no file in deploy/ has"
            );
        }
    }
}
