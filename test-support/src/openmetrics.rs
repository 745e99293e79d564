//! Reads an OpenMetrics exposition with the Prometheus project's own
//! parser (Python's `prometheus_client`, Debian's `python3-prometheus-client`),
//! which refuses what the format does not allow: a test that passes nene's
//! `/status?openmetrics` through it knows a scraper will read it.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// One sample: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name, with its suffix (`_bucket`, `_total`, …).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The families' samples, in the order the exposition gives them; fails
/// the test with the parser's message when the text is not OpenMetrics.
pub fn parse(text: &str) -> Vec<Sample> {
    // Debian's interpreter, where Debian's package puts the module (a
    // python3 earlier on PATH, e.g. a version manager's, does not see it).
    let python = "/usr/bin/python3";
    const SCRIPT: &str = r#"
import json, sys
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_client is missing: install it with apt-get install python3-prometheus-client")
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append({"name": s.name, "labels": s.labels, "value": s.value})
json.dump(samples, sys.stdout)
"#;
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "{python}: {error}; install it with: apt-get install python3 python3-prometheus-client"
            )
        });
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(text.as_bytes())
        .expect("write to the parser");
    drop(stdin);
    let output = child.wait_with_output().expect("the parser's output");
    assert!(
        output.status.success(),
        "the OpenMetrics parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("the parser's JSON");
    samples
        .into_iter()
        .map(|sample| Sample {
            name: sample["name"].as_str().expect("a name").to_string(),
            labels: serde_json::from_value(sample["labels"].clone()).expect("labels"),
            value: sample["value"].as_f64().expect("a number"),
        })
        .collect()
}

/// The value of the one sample named `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one sample {name} {labels:?} expected, found {matching:?}"
    );
    matching[0].value
}
