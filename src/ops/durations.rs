//! Request durations by route and status class, for the OpenMetrics
//! histogram `nene_request_duration_seconds`: the time from the operations
//! layer's call to the answer, session commit included, as the access log's
//! `%d`.
//!
//! The label set is bounded by construction: a route is one of the
//! dispatcher's registered actions (or none), a status class one of five.
//! The map is read-locked per request (two atomic operations and a hash
//! of the route name) and write-locked once per route, at its first request.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http::StatusCode;

use crate::histogram::{HistogramSnapshot, LatencyHistogram};

/// 1xx to 5xx.
const STATUS_CLASSES: usize = 5;

/// One route's histograms, one per status class.
type ByStatusClass = [LatencyHistogram; STATUS_CLASSES];

/// Every request's duration, by route and status class.
#[derive(Debug, Default)]
pub struct RequestDurations {
    by_route: RwLock<HashMap<Arc<str>, Arc<ByStatusClass>>>,
    /// Requests no route was noted for (route_note.rs).
    unrouted: ByStatusClass,
}

/// One series of the histogram, read at one moment.
pub struct DurationSeries {
    /// `/{controller}/{action}`, or empty for no route.
    pub route: Arc<str>,
    /// `1xx` … `5xx`.
    pub status_class: &'static str,
    /// The counts.
    pub histogram: HistogramSnapshot,
}

impl RequestDurations {
    /// Counts one answered request.
    pub fn record(&self, route: Option<&Arc<str>>, status: StatusCode, elapsed: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES) - 1;
        let Some(route) = route else {
            self.unrouted[class].record(elapsed);
            return;
        };
        let known = (self.by_route.read())
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .cloned();
        let histograms = known.unwrap_or_else(|| {
            let mut by_route = self
                .by_route
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            by_route.entry(route.clone()).or_default().clone()
        });
        histograms[class].record(elapsed);
    }

    /// Every series with at least one request, by route name, the
    /// unrouted ones first.
    pub fn series(&self) -> Vec<DurationSeries> {
        let mut routes: Vec<(Arc<str>, Arc<ByStatusClass>)> = (self.by_route.read())
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(route, histograms)| (route.clone(), histograms.clone()))
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        let unrouted = std::iter::once((Arc::from(""), &self.unrouted));
        let routed = routes.iter().map(|(route, h)| (route.clone(), &**h));
        let mut series = Vec::new();
        for (route, histograms) in unrouted.chain(routed) {
            for (class, histogram) in histograms.iter().enumerate() {
                let histogram = histogram.snapshot();
                if histogram.count() > 0 {
                    series.push(DurationSeries {
                        route: route.clone(),
                        status_class: ["1xx", "2xx", "3xx", "4xx", "5xx"][class],
                        histogram,
                    });
                }
            }
        }
        series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status_class() {
        let durations = RequestDurations::default();
        let index: Arc<str> = Arc::from("/todo/index");
        let add: Arc<str> = Arc::from("/todo/add");
        let ms = Duration::from_millis;
        durations.record(Some(&index), StatusCode::OK, ms(2));
        durations.record(Some(&index), StatusCode::OK, ms(3));
        durations.record(Some(&index), StatusCode::SERVICE_UNAVAILABLE, ms(1));
        durations.record(Some(&add), StatusCode::SEE_OTHER, ms(4));
        durations.record(None, StatusCode::NOT_FOUND, ms(1));
        let series: Vec<(String, &str, u64)> = durations
            .series()
            .iter()
            .map(|s| (s.route.to_string(), s.status_class, s.histogram.count()))
            .collect();
        assert_eq!(
            series,
            [
                ("".to_string(), "4xx", 1),
                ("/todo/add".to_string(), "3xx", 1),
                ("/todo/index".to_string(), "2xx", 2),
                ("/todo/index".to_string(), "5xx", 1),
            ]
        );
    }
}
