//! A lock-free latency histogram, and its OpenMetrics form: the request
//! durations of the operations layer (by route and status class) and the
//! session layer's backend and lock times are each one of these.
//!
//! Buckets are powers of two microseconds: bucket `i` holds durations of
//! 2^i µs up to below 2^(i+1) µs, the last one everything from about 8.4 s
//! up. One `leading_zeros` picks the bucket, so recording is three relaxed
//! atomic adds and no search; a percentile read from the buckets is at most
//! a factor of two above the truth, which tells 1 ms from 100 ms, and
//! Prometheus' `histogram_quantile` interpolates within the bucket.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of powers of two microseconds, the last one open-ended.
const BUCKETS: usize = 24;

/// Durations recorded since start.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

/// The counts of one or more histograms read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    buckets: [u64; BUCKETS],
    sum_micros: u64,
}

impl LatencyHistogram {
    /// Counts one duration in its bucket (below 1 µs counts as 1 µs).
    pub fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let bucket = (63 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts as they are now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.each_ref().map(|b| b.load(Ordering::Relaxed)),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// This snapshot and `other` as one.
    pub fn merge(mut self, other: &HistogramSnapshot) -> Self {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_micros += other.sum_micros;
        self
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The duration below which `quantile` (0..1) of the durations fall: the
    /// upper bound of the bucket it is in; `None` with nothing counted.
    pub fn percentile(&self, quantile: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(1u64 << (bucket + 1)));
            }
        }
        None
    }

    /// The OpenMetrics samples of one histogram series: cumulative
    /// `name_bucket` lines with `le` in seconds, then `name_count` and
    /// `name_sum`. `labels` are the series' own (`route="…",status="2xx"`),
    /// written before `le`; empty for none. A duration of exactly a bound
    /// is counted in the next bucket up (the bounds are "below", not
    /// "at most"), a difference of one microsecond.
    pub fn write_openmetrics(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        // The last bucket has no upper bound: only +Inf covers it.
        for (bucket, count) in self.buckets[..BUCKETS - 1].iter().enumerate() {
            cumulative += count;
            let bound = (1u64 << (bucket + 1)) as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let braces = |labels: &str| match labels {
            "" => String::new(),
            labels => format!("{{{labels}}}"),
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
        let sum = self.sum_micros as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    }
}

/// `value` as an OpenMetrics label value: backslash, double quote and line
/// feed escaped.
pub fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.snapshot().percentile(0.5), None);
        for _ in 0..98 {
            histogram.record(Duration::from_micros(300));
        }
        histogram.record(Duration::from_millis(40));
        histogram.record(Duration::from_millis(40));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 100);
        assert_eq!(snapshot.percentile(0.5), Some(Duration::from_micros(512)));
        assert_eq!(
            snapshot.percentile(0.99),
            Some(Duration::from_micros(65_536))
        );
    }

    #[test]
    fn merged_snapshots_add_up() {
        let (a, b) = (LatencyHistogram::default(), LatencyHistogram::default());
        a.record(Duration::from_micros(3));
        b.record(Duration::from_micros(3));
        b.record(Duration::from_secs(60));
        let merged = a.snapshot().merge(&b.snapshot());
        assert_eq!(merged.count(), 3);
        assert_eq!(merged.percentile(0.5), Some(Duration::from_micros(4)));
        // Sixty seconds is in the open-ended last bucket.
        assert_eq!(merged.percentile(1.0), Some(Duration::from_micros(1 << 24)));
    }

    #[test]
    fn the_openmetrics_lines_are_cumulative_and_end_with_count_and_sum() {
        let histogram = LatencyHistogram::default();
        histogram.record(Duration::from_micros(1)); // below 2 µs
        histogram.record(Duration::from_micros(700)); // 512..1024 µs
        histogram.record(Duration::from_micros(700));
        histogram.record(Duration::from_secs(9)); // open-ended
        let mut out = String::new();
        histogram
            .snapshot()
            .write_openmetrics(&mut out, "x_seconds", "route=\"/a\"");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), BUCKETS + 2);
        assert_eq!(lines[0], "x_seconds_bucket{route=\"/a\",le=\"0.000002\"} 1");
        assert_eq!(lines[8], "x_seconds_bucket{route=\"/a\",le=\"0.000512\"} 1");
        assert_eq!(lines[9], "x_seconds_bucket{route=\"/a\",le=\"0.001024\"} 3");
        assert_eq!(
            lines[22],
            "x_seconds_bucket{route=\"/a\",le=\"8.388608\"} 3"
        );
        assert_eq!(lines[23], "x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4");
        assert_eq!(lines[24], "x_seconds_count{route=\"/a\"} 4");
        assert_eq!(lines[25], "x_seconds_sum{route=\"/a\"} 9.001401");
        let mut bare = String::new();
        histogram.snapshot().write_openmetrics(&mut bare, "y", "");
        assert!(bare.starts_with("y_bucket{le=\"0.000002\"} 1\n"), "{bare}");
        assert!(bare.ends_with("y_count 4\ny_sum 9.001401\n"), "{bare}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label_value("/todo/index"), "/todo/index");
    }
}
