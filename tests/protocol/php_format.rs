//! nene's PHP session formats against PHP itself (the `php` command line,
//! Debian's php-cli): generated sessions — scalars, floats PHP prints in
//! its own way, byte strings, nested lists and maps with int and string
//! keys, objects, enums and references — are encoded by PHP's
//! `session_encode`, decoded by nene and written back unchanged byte for
//! byte; and what nene writes from its own data, PHP's `session_decode`
//! reads back as the same values (`===`).

use std::fmt::Write as _;

use bytes::Bytes;
use nene::session::{KeptValues, PhpCodec, PhpHandler, SessionCodec};
use nene_test_support::php_cli::{hex, run_php, unhex};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// A PHP value, as PHP source.
#[derive(Clone, Debug)]
enum Php {
    Null,
    Bool(bool),
    Int(i64),
    Float(&'static str),
    Bytes(Vec<u8>),
    List(Vec<Php>),
    Map(Vec<(Key, Php)>),
    Object(Vec<(String, Php)>),
    Enum,
}

#[derive(Clone, Debug)]
enum Key {
    Int(i64),
    Text(String),
}

fn php_string(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &byte in bytes {
        write!(out, "\\x{byte:02x}").unwrap();
    }
    out.push('"');
    out
}

impl Php {
    fn source(&self) -> String {
        match self {
            Php::Null => "null".into(),
            Php::Bool(flag) => flag.to_string(),
            Php::Int(n) if *n == i64::MIN => "PHP_INT_MIN".into(),
            Php::Int(n) => n.to_string(),
            Php::Float(text) => text.to_string(),
            Php::Bytes(bytes) => php_string(bytes),
            Php::List(items) => {
                let items: Vec<String> = items.iter().map(Php::source).collect();
                format!("[{}]", items.join(", "))
            }
            Php::Map(pairs) => {
                let pairs: Vec<String> = pairs
                    .iter()
                    .map(|(key, value)| {
                        let key = match key {
                            Key::Int(n) => n.to_string(),
                            Key::Text(text) => php_string(text.as_bytes()),
                        };
                        format!("{key} => {}", value.source())
                    })
                    .collect();
                format!("[{}]", pairs.join(", "))
            }
            Php::Object(props) => {
                let props: Vec<String> = props
                    .iter()
                    .map(|(name, value)| {
                        format!("{} => {}", php_string(name.as_bytes()), value.source())
                    })
                    .collect();
                format!("(object)[{}]", props.join(", "))
            }
            Php::Enum => "Suit::Hearts".into(),
        }
    }
}

fn key_text() -> impl Strategy<Value = String> {
    // Names that are valid in PHP's `php` format (no `|` or `!`), including
    // digit-only ones, which PHP turns into int keys inside arrays.
    prop_oneof![
        "[a-z_][a-z0-9_]{0,8}",
        "[0-9]{1,3}",
        "[ -{}~é]{0,6}".prop_map(|s| s.replace(['|', '!'], "_")),
    ]
}

fn php_value() -> impl Strategy<Value = Php> {
    let leaf = prop_oneof![
        Just(Php::Null),
        any::<bool>().prop_map(Php::Bool),
        any::<i64>().prop_map(Php::Int),
        prop::sample::select(vec![
            "0.1",
            "1.5",
            "-0.0",
            "1e25",
            "1.0E-10",
            "100.0",
            "123456789.125",
            "PHP_FLOAT_EPSILON",
            "1e15",
            "-2.5e-300",
            "INF",
            "NAN",
        ])
        .prop_map(Php::Float),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Php::Bytes),
        "[a-zA-Z0-9 \"';:|{}é]{0,12}".prop_map(|s| Php::Bytes(s.into_bytes())),
        Just(Php::Enum),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Php::List),
            prop::collection::vec(
                (
                    prop_oneof![
                        any::<i32>().prop_map(|n| Key::Int(n.into())),
                        key_text().prop_map(Key::Text)
                    ],
                    inner.clone()
                ),
                0..5
            )
            .prop_map(Php::Map),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..3).prop_map(Php::Object),
        ]
    })
}

/// A session: variables with names valid in both formats.
fn session() -> impl Strategy<Value = Vec<(String, Php)>> {
    prop::collection::vec(("[a-z][a-z0-9_]{0,8}", php_value()), 0..6)
}

const PRELUDE: &str = "<?php\nob_start();\nenum Suit { case Hearts; }\nini_set('session.use_cookies', '0');\nini_set('session.cache_limiter', '');\n";

/// `count` generated sessions as PHP's `session_encode` writes them in
/// `handler`'s format (hex, one per line), with one shared reference added
/// to every other session so that `R:` appears too.
fn encoded_by_php(handler: &str, count: usize) -> Vec<Bytes> {
    let mut runner = TestRunner::deterministic();
    let mut script = format!("{PRELUDE}ini_set('session.serialize_handler', '{handler}');\n");
    for case in 0..count {
        let vars = session().new_tree(&mut runner).unwrap().current();
        script.push_str("session_start(); $_SESSION = [];\n");
        for (name, value) in &vars {
            writeln!(script, "$_SESSION['{name}'] = {};", value.source()).unwrap();
        }
        if case % 2 == 1 {
            script.push_str("$shared = [1, 'two']; $_SESSION['ref_a'] = &$shared; $_SESSION['ref_b'] = &$shared;\n");
        }
        script.push_str("echo bin2hex(session_encode()), \"\\n\"; session_abort();\n");
    }
    run_php(&script)
        .lines()
        .map(|line| Bytes::from(unhex(line)))
        .collect()
}

fn round_trips_byte_for_byte(handler: &str, codec: PhpCodec) {
    let sessions = encoded_by_php(handler, 200);
    assert_eq!(sessions.len(), 200);
    for stored in sessions {
        let decoded = codec
            .decode(&stored)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&stored)));
        let written = codec.encode(&decoded.data, &decoded.kept).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&stored)
        );
        assert_eq!(written, stored);
    }
}

#[test]
fn every_session_php_writes_in_the_php_format_round_trips_byte_for_byte() {
    round_trips_byte_for_byte("php", PhpCodec(PhpHandler::Php));
}

#[test]
fn every_session_php_writes_in_php_serialize_round_trips_byte_for_byte() {
    round_trips_byte_for_byte("php_serialize", PhpCodec(PhpHandler::PhpSerialize));
}

/// What nene writes from the values it mapped (nothing kept aside), PHP
/// reads as the values it started from.
fn php_reads_what_nene_writes(handler: &str, codec: PhpCodec) {
    let sessions = encoded_by_php(handler, 100);
    let mut script = format!("{PRELUDE}ini_set('session.serialize_handler', '{handler}');\n");
    let mut expected = Vec::new();
    for stored in &sessions {
        let decoded = codec.decode(stored).unwrap();
        // Only what nene maps: drop the values it keeps as bytes.
        let mut data = decoded.data.clone();
        data.retain(|key, _| decoded.kept.opaque(key).is_none());
        let written = codec.encode(&data, &KeptValues::default()).unwrap();
        expected.push(format!("ok {}", data.len()));
        writeln!(
            script,
            "session_start(); session_decode(hex2bin('{}')); $original = $_SESSION; \
             session_unset(); session_decode(hex2bin('{}')); $ours = $_SESSION; session_abort(); \
             foreach ($ours as $k => $v) {{ if ($original[$k] !== $v && !(is_float($v) && is_nan($v))) {{ echo 'DIFFERENT ', $k, ' ', bin2hex(serialize($original[$k])), ' ', bin2hex(serialize($v)), \"\\n\"; }} }} \
             echo 'ok ', count($ours), \"\\n\";",
            hex(stored),
            hex(&written)
        )
        .unwrap();
    }
    let output = run_php(&script);
    let lines: Vec<String> = output.lines().map(str::to_string).collect();
    let different: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("DIFFERENT"))
        .collect();
    assert!(different.is_empty(), "{different:#?}");
    // PHP read every value nene wrote (a session PHP cannot decode at all
    // would read as fewer).
    let counts: Vec<&String> = lines.iter().filter(|l| l.starts_with("ok ")).collect();
    assert_eq!(counts, expected.iter().collect::<Vec<_>>());
}

#[test]
fn php_reads_back_what_nene_writes_in_the_php_format() {
    php_reads_what_nene_writes("php", PhpCodec(PhpHandler::Php));
}

#[test]
fn php_reads_back_what_nene_writes_in_php_serialize() {
    php_reads_what_nene_writes("php_serialize", PhpCodec(PhpHandler::PhpSerialize));
}

/// The generated sessions cover what they claim to: without this, a
/// generator that only made empty sessions would pass every test above.
#[test]
fn the_generated_sessions_hold_every_kind_of_value() {
    let sessions = encoded_by_php("php", 200);
    let all: Vec<u8> = sessions.iter().flat_map(|s| s.iter().copied()).collect();
    let contains = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    for needle in [
        &b"O:8:\"stdClass\""[..],
        b"E:11:\"Suit:Hearts\"",
        b"R:",
        b"d:INF",
        b"d:NAN",
        b"d:1.0E+25",
        b"d:-0",
        b"i:-",
        b"a:",
        b"b:1",
        b"N;",
    ] {
        assert!(
            contains(needle),
            "no session holds {}",
            String::from_utf8_lossy(needle)
        );
    }
    let codec = PhpCodec(PhpHandler::Php);
    let mapped: usize = sessions
        .iter()
        .map(|s| codec.decode(s).unwrap().data.len())
        .sum();
    assert!(mapped > 150, "only {mapped} values mapped");
    let with_invalid_utf8 = sessions
        .iter()
        .filter(|s| std::str::from_utf8(s).is_err())
        .count();
    assert!(
        with_invalid_utf8 > 10,
        "{with_invalid_utf8} sessions with byte strings"
    );
}
