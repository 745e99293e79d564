//! The status page, like PHP-FPM's `pm.status_path`: plain text by default,
//! `?json` as JSON, `?html` as an HTML table, `?openmetrics` as an
//! OpenMetrics/Prometheus exposition.
//! Field names follow FPM's where the meaning carries over.

use std::time::Duration;

use serde_json::Value;

use crate::histogram::{HistogramSnapshot, label_value};
use crate::server::ServerMetrics;
use crate::session::{SessionMetrics, SessionRuntime};

use super::metrics::{OpsMetrics, read};

/// Everything the page shows, read once.
pub struct StatusSnapshot {
    /// One row per field: (FPM-style name, metric name, metric type, value). An
    /// empty metric name keeps the row out of OpenMetrics; a null value shows
    /// as `-`.
    pub fields: Vec<Field>,
    /// The histograms, in OpenMetrics only (FPM's pages have none).
    pub histograms: Vec<HistogramFamily>,
}

/// One OpenMetrics histogram: its name (with the `_seconds` unit), what it
/// measures, and its series by their labels.
pub struct HistogramFamily {
    /// `nene_…_seconds`.
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// (labels as written between braces, counts).
    pub series: Vec<(String, HistogramSnapshot)>,
}

/// One row of the page: (FPM-style name, metric name, metric type, value).
pub type Field = (&'static str, &'static str, &'static str, Value);

fn gauge(name: &'static str, metric: &'static str, value: impl Into<Value>) -> Field {
    (name, metric, "gauge", value.into())
}

fn counter(name: &'static str, metric: &'static str, value: impl Into<Value>) -> Field {
    (name, metric, "counter", value.into())
}

fn info(name: &'static str, metric: &'static str, value: impl Into<Value>) -> Field {
    (name, metric, "info", value.into())
}

impl StatusSnapshot {
    /// Reads every counter once, so the page's fields come from one moment.
    pub fn take(ops: &OpsMetrics, server: &ServerMetrics, sessions: &SessionRuntime) -> Self {
        let queue = server.listen_queue();
        let budget = server.budget();
        let session = sessions.metrics();
        // The status page's percentiles are over every backend round.
        let backend = session.start.snapshot().merge(&session.commit.snapshot());
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        let mut fields = vec![
            info("pool", "", "nene"),
            info("process manager", "", "async"),
            // What the runtime runs with (`server.worker_threads`).
            gauge(
                "worker threads",
                "worker_threads",
                tokio::runtime::Handle::try_current()
                    .ok()
                    .map(|runtime| runtime.metrics().num_workers()),
            ),
            gauge(
                "start time",
                "start_time_seconds",
                ops.started_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            ),
            gauge(
                "start since",
                "uptime_seconds",
                ops.started.elapsed().as_secs(),
            ),
            counter(
                "accepted conn",
                "accepted_connections",
                read(&server.accepted),
            ),
            gauge("listen queue", "listen_queue", queue.map(|q| q.waiting)),
            gauge(
                "listen queue len",
                "listen_queue_length",
                queue.map(|q| q.capacity),
            ),
            gauge("open connections", "open_connections", read(&server.open)),
            gauge(
                "buffered bytes",
                "buffered_bytes",
                budget.map(|b| b.total() - b.available()),
            ),
            gauge(
                "buffered bytes max",
                "buffered_bytes_max",
                budget.map(|b| b.total()),
            ),
            counter(
                "buffer budget refusals",
                "buffer_budget_refusals",
                budget.map(|b| b.refusals()),
            ),
            counter(
                "max children reached",
                "connection_cap_reached",
                read(&server.cap_reached),
            ),
            gauge("active requests", "active_requests", read(&ops.active)),
            gauge(
                "max active requests",
                "max_active_requests",
                read(&ops.max_active),
            ),
            counter("requests", "requests", read(&ops.requests)),
            counter("slow requests", "slow_requests", read(&ops.slow)),
            counter(
                "timed out requests",
                "timed_out_requests",
                read(&ops.timed_out),
            ),
            counter("refused requests", "refused_requests", read(&ops.refused)),
            info("session backend", "", sessions.handler().name()),
            counter(
                "session backend errors",
                "session_backend_errors",
                read(&session.backend_errors),
            ),
            gauge(
                "session backend p50 ms",
                "session_backend_p50_milliseconds",
                ms(backend.percentile(0.5)),
            ),
            gauge(
                "session backend p99 ms",
                "session_backend_p99_milliseconds",
                ms(backend.percentile(0.99)),
            ),
            gauge(
                "locked sessions",
                "locked_sessions",
                sessions.locked_sessions(),
            ),
            counter(
                "session lock waits",
                "session_lock_waits",
                read(&session.lock_waits),
            ),
            counter(
                "session lock timeouts",
                "session_lock_timeouts",
                read(&session.lock_timeouts),
            ),
            counter(
                "session lock hand-offs",
                "session_lock_hand_offs",
                read(&session.hand_offs),
            ),
        ];
        // Only when traces are on: a page without traces keeps FPM's fields.
        if let Some((exported, dropped)) = crate::trace::span_counts() {
            fields.push(counter(
                "trace spans exported",
                "trace_spans_exported",
                exported,
            ));
            fields.push(counter(
                "trace spans dropped",
                "trace_spans_dropped",
                dropped,
            ));
        }
        Self {
            fields,
            histograms: histograms(ops, session),
        }
    }

    /// Plain text like FPM's default output: one `name: value` line per field.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (name, _, _, value) in &self.fields {
            out.push_str(&format!("{:<24}{}\n", format!("{name}:"), shown(value)));
        }
        out
    }

    /// An HTML page for an operator's browser (`?html`), as FPM's: one
    /// table row per field.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>nene status</title></head>\n<body>\n<table>\n",
        );
        for (name, _, _, value) in &self.fields {
            out.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                escape_html(name),
                escape_html(&shown(value))
            ));
        }
        out.push_str("</table>\n</body>\n</html>\n");
        out
    }

    /// One JSON object keyed by the FPM-style names (`?json`).
    pub fn json(&self) -> String {
        let map: serde_json::Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, _, _, value)| (name.to_string(), value.clone()))
            .collect();
        Value::Object(map).to_string()
    }

    /// OpenMetrics text: `nene_*` metrics, counters with `_total`, the
    /// backend name as a label of `nene_info`.
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        let backend = self
            .fields
            .iter()
            .find(|f| f.0 == "session backend")
            .and_then(|f| f.3.as_str())
            .unwrap_or("");
        out.push_str("# TYPE nene info\n");
        out.push_str(&format!(
            "nene_info{{version=\"{}\",session_backend=\"{backend}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ));
        for (name, metric, kind, value) in &self.fields {
            if metric.is_empty() {
                continue;
            }
            let Some(number) = value.as_f64() else {
                continue;
            };
            out.push_str(&format!(
                "# TYPE nene_{metric} {kind}\n# HELP nene_{metric} {name}\n"
            ));
            let suffix = if *kind == "counter" { "_total" } else { "" };
            out.push_str(&format!("nene_{metric}{suffix} {number}\n"));
        }
        for family in &self.histograms {
            let name = family.name;
            out.push_str(&format!(
                "# TYPE {name} histogram\n# UNIT {name} seconds\n# HELP {name} {}\n",
                family.help
            ));
            for (labels, histogram) in &family.series {
                histogram.write_openmetrics(&mut out, name, labels);
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// A field's value as the text and HTML pages show it (`-` for none).
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `text` safe between tags and in attributes.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The request-duration histogram by route and status class, and the
/// session layer's.
fn histograms(ops: &OpsMetrics, session: &SessionMetrics) -> Vec<HistogramFamily> {
    let requests = (ops.durations.series().into_iter())
        .map(|series| {
            let route = label_value(&series.route);
            let labels = format!("route=\"{route}\",status=\"{}\"", series.status_class);
            (labels, series.histogram)
        })
        .collect();
    let operation = |name: &str| format!("operation=\"{name}\"");
    vec![
        HistogramFamily {
            name: "nene_request_duration_seconds",
            help: "Time from a request reaching nene to its answer, session commit included, by route (empty: none matched) and status class.",
            series: requests,
        },
        HistogramFamily {
            name: "nene_session_backend_seconds",
            help: "Time of the session backend's rounds: start (lock, with any wait for another instance, and read) and commit (write or touch, unlock).",
            series: vec![
                (operation("start"), session.start.snapshot()),
                (operation("commit"), session.commit.snapshot()),
            ],
        },
        HistogramFamily {
            name: "nene_session_lock_wait_seconds",
            help: "Time a request queued in this nene behind requests of its own session before it went for the session lock.",
            series: vec![(String::new(), session.lock_wait.snapshot())],
        },
    ]
}
