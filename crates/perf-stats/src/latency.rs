//! Latency percentiles of anything timed by hand (a whole operation of several statements, a
//! request), with the same histogram the tracker uses per query shape.

use std::{fmt, time::Duration};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::{report::millis, store::nanos};

/// An HDR histogram of durations: 1 µs resolution at the low end, two significant digits
/// (values are within 1 % of what was recorded), any range.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use perf_stats::LatencyHistogram;
///
/// let mut latencies = LatencyHistogram::new();
/// for ms in 1..=100 {
///     latencies.record(Duration::from_millis(ms));
/// }
/// let summary = latencies.summary();
/// assert_eq!(summary.count, 100);
/// assert!(summary.p50 >= Duration::from_millis(50) && summary.p50 <= Duration::from_micros(50_500));
/// assert_eq!(summary.max, Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
    total_ns: u64,
    max_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        // 1 µs to 1 s at two significant digits is ~14 KiB; longer values grow it.
        #[allow(
            clippy::expect_used,
            reason = "constant bounds, checked by every test that builds a histogram"
        )]
        let mut histogram = Histogram::new_with_bounds(1_000, 1_000_000_000, 2)
            .expect("constant bounds within hdrhistogram's documented limits");
        histogram.auto(true);
        Self {
            histogram,
            total_ns: 0,
            max_ns: 0,
        }
    }

    /// Adds one duration.
    #[inline]
    pub fn record(&mut self, duration: Duration) {
        let ns = nanos(duration);
        // With auto-resize on, recording only fails for values beyond u64 range: none here.
        let _ = self.histogram.record(ns.max(1));
        self.total_ns = self.total_ns.saturating_add(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The duration at quantile `q` (0.0 to 1.0): at most 1 % above the true value, never above
    /// the maximum. Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.histogram.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.histogram.value_at_quantile(q).min(self.max_ns))
    }

    /// Count, mean, p50, p95, p99 and maximum.
    pub fn summary(&self) -> LatencySummary {
        let count = self.count();
        LatencySummary {
            count,
            total: Duration::from_nanos(self.total_ns),
            mean: Duration::from_nanos(self.total_ns.checked_div(count).unwrap_or(0)),
            p50: self.quantile(0.50),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            max: Duration::from_nanos(self.max_ns),
        }
    }
}

/// The figures of a [`LatencyHistogram`]. In JSON, durations are milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Durations recorded.
    pub count: u64,
    /// Their sum.
    #[serde(rename = "total_ms", with = "millis")]
    pub total: Duration,
    /// Their mean.
    #[serde(rename = "mean_ms", with = "millis")]
    pub mean: Duration,
    /// Median.
    #[serde(rename = "p50_ms", with = "millis")]
    pub p50: Duration,
    /// 95th percentile.
    #[serde(rename = "p95_ms", with = "millis")]
    pub p95: Duration,
    /// 99th percentile.
    #[serde(rename = "p99_ms", with = "millis")]
    pub p99: Duration,
    /// Slowest.
    #[serde(rename = "max_ms", with = "millis")]
    pub max: Duration,
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::report::ms;
        write!(
            f,
            "n={} mean={} ms p50={} ms p95={} ms p99={} ms max={} ms",
            self.count,
            ms(self.mean),
            ms(self.p50),
            ms(self.p95),
            ms(self.p99),
            ms(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_summarises_to_zeros() {
        let summary = LatencyHistogram::new().summary();
        assert_eq!(summary.count, 0);
        assert_eq!(summary.p99, Duration::ZERO);
        assert_eq!(summary.mean, Duration::ZERO);
    }

    #[test]
    fn values_beyond_the_initial_range_are_kept() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_secs(30));
        h.record(Duration::from_nanos(10));
        assert_eq!(h.summary().max, Duration::from_secs(30));
        assert!(h.quantile(1.0) <= Duration::from_secs(30));
        assert!(h.quantile(1.0) >= Duration::from_millis(29_700));
    }
}
