//! Request durations by route and status class, for the OpenMetrics
//! histogram `nene_request_duration_seconds`: the time from the operations
//! layer's call to the answer, session commit included, as the access log's
//! `%d`.
//!
//! The label set is bounded by construction: a route is one of the
//! dispatcher's registered actions (or none), a status class one of five.

use std::collections::BTreeMap;
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
    /// One entry per route name the dispatcher noted, sorted by the name's
    /// address: the dispatcher notes the same `Arc<str>` for every request
    /// of a route, so a request finds its entry by a binary search over
    /// addresses under a read lock: 76 instructions per request, where a
    /// map hashing the name cost 351 (benches/instructions.sh). The entry keeps
    /// its `Arc`, so the address cannot be reused by another name.
    by_route: RwLock<Vec<(Arc<str>, ByStatusClass)>>,
    /// Requests no route was noted for (layer_notes.rs).
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

fn address(route: &Arc<str>) -> usize {
    Arc::as_ptr(route).cast::<u8>() as usize
}

impl RequestDurations {
    /// Counts one answered request.
    pub fn record(&self, route: Option<&Arc<str>>, status: StatusCode, elapsed: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES) - 1;
        let Some(route) = route else {
            self.unrouted[class].record(elapsed);
            return;
        };
        let key = address(route);
        let find = |routes: &[(Arc<str>, ByStatusClass)]| {
            routes.binary_search_by_key(&key, |(name, _)| address(name))
        };
        {
            let routes = self.by_route.read().unwrap_or_else(PoisonError::into_inner);
            if let Ok(at) = find(&routes) {
                routes[at].1[class].record(elapsed);
                return;
            }
        }
        // A route's first request.
        let mut routes = self
            .by_route
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let at = find(&routes).unwrap_or_else(|at| {
            routes.insert(at, (route.clone(), ByStatusClass::default()));
            at
        });
        routes[at].1[class].record(elapsed);
    }

    /// Every series with at least one request, by route name (the
    /// unrouted ones first); two dispatchers' routes of one name are one.
    pub fn series(&self) -> Vec<DurationSeries> {
        let mut by_name: BTreeMap<Arc<str>, [HistogramSnapshot; STATUS_CLASSES]> = BTreeMap::new();
        by_name.insert(
            Arc::from(""),
            self.unrouted.each_ref().map(|h| h.snapshot()),
        );
        let routes = self.by_route.read().unwrap_or_else(PoisonError::into_inner);
        for (route, histograms) in routes.iter() {
            let merged = by_name.entry(route.clone()).or_default();
            for (sum, histogram) in merged.iter_mut().zip(histograms) {
                *sum = sum.merge(&histogram.snapshot());
            }
        }
        let mut series = Vec::new();
        for (route, histograms) in by_name {
            for (class, histogram) in histograms.into_iter().enumerate() {
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
        // Another dispatcher's route of the same name is the same series.
        let other_add: Arc<str> = Arc::from("/todo/add");
        durations.record(Some(&other_add), StatusCode::FOUND, ms(4));
        let series: Vec<(String, &str, u64)> = durations
            .series()
            .iter()
            .map(|s| (s.route.to_string(), s.status_class, s.histogram.count()))
            .collect();
        assert_eq!(
            series,
            [
                ("".to_string(), "4xx", 1),
                ("/todo/add".to_string(), "3xx", 2),
                ("/todo/index".to_string(), "2xx", 2),
                ("/todo/index".to_string(), "5xx", 1),
            ]
        );
    }
}
