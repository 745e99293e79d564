//! PHP's command line for tests of nene's PHP session formats: runs a
//! script (with a throw-away `session.save_path`) and hands back its
//! output, with hex helpers for passing session bytes in and out.

#![allow(dead_code)]

use std::process::Command;

use crate::require_program;

/// Runs `script` with `php` and returns its standard output. A warning
/// fails the test: a session PHP warned about is not what the test meant.
pub fn run_php(script: &str) -> String {
    let php = require_program("php", "php-cli");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.php");
    std::fs::write(&path, script).unwrap();
    let output = Command::new(php)
        .arg("-d")
        .arg(format!("session.save_path={}", dir.path().display()))
        .arg(&path)
        .output()
        .expect("run php");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("Warning"),
        "php failed or warned: {stderr}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
