//! The tracker's settings and their builder.

use std::time::Duration;

use crate::{Error, QueryTracker, Result};

/// Latency histogram buckets exported to Prometheus by default, in seconds: 100 µs to 10 s.
pub const DEFAULT_LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Settings of a [`QueryTracker`], made with [`QueryTracker::builder`].
#[derive(Debug, Clone)]
pub(crate) struct TrackerConfig {
    pub(crate) slow_threshold: Duration,
    pub(crate) n_plus_one_threshold: u32,
    pub(crate) slow_log_capacity: usize,
    pub(crate) n_plus_one_log_capacity: usize,
    pub(crate) max_fingerprints: usize,
    pub(crate) max_cached_statements: usize,
    pub(crate) max_labelled_fingerprints: usize,
    pub(crate) label_ranking_interval: Duration,
    /// Upper bounds in nanoseconds, ascending.
    pub(crate) latency_buckets_ns: Vec<u64>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            slow_threshold: Duration::from_millis(100),
            n_plus_one_threshold: 5,
            slow_log_capacity: 100,
            n_plus_one_log_capacity: 100,
            max_fingerprints: 1_000,
            max_cached_statements: 10_000,
            max_labelled_fingerprints: 50,
            label_ranking_interval: Duration::from_secs(60),
            latency_buckets_ns: DEFAULT_LATENCY_BUCKETS
                .iter()
                .map(|s| Duration::from_secs_f64(*s).as_nanos() as u64)
                .collect(),
        }
    }
}

/// Builds a [`QueryTracker`] with settings other than the defaults.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let tracker = perf_stats::QueryTracker::builder()
///     .slow_threshold(Duration::from_millis(250))
///     .n_plus_one_threshold(10)
///     .build()?;
/// assert_eq!(tracker.slow_threshold(), Duration::from_millis(250));
/// # Ok::<(), perf_stats::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TrackerBuilder {
    config: TrackerConfig,
    latency_buckets: Option<Vec<Duration>>,
}

impl TrackerBuilder {
    /// Statements taking at least this long are slow: logged with a warning, counted, and kept
    /// in the recent slow-query list. Default: 100 ms.
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.config.slow_threshold = threshold;
        self
    }

    /// How many times one query shape may run in one [scope](QueryTracker::scope) before it is
    /// reported as a likely N+1. Default: 5; at least 2.
    pub fn n_plus_one_threshold(mut self, threshold: u32) -> Self {
        self.config.n_plus_one_threshold = threshold;
        self
    }

    /// How many recent slow queries are kept. Default: 100.
    pub fn slow_log_capacity(mut self, capacity: usize) -> Self {
        self.config.slow_log_capacity = capacity;
        self
    }

    /// How many distinct N+1 findings (shape and scope) are kept. Default: 100.
    pub fn n_plus_one_log_capacity(mut self, capacity: usize) -> Self {
        self.config.n_plus_one_log_capacity = capacity;
        self
    }

    /// The most query shapes tracked one by one; statements of further shapes are counted
    /// together under one "other statements" entry, so memory stays bounded when a service
    /// builds SQL with inline values. Default: 1000.
    pub fn max_fingerprints(mut self, max: usize) -> Self {
        self.config.max_fingerprints = max;
        self
    }

    /// The most distinct SQL strings whose fingerprint is cached. Default: 10 000. SQL strings
    /// past it are fingerprinted at every execution (about 10 µs each): a sign that the service
    /// writes values into its SQL instead of binding them.
    pub fn max_cached_statements(mut self, max: usize) -> Self {
        self.config.max_cached_statements = max;
        self
    }

    /// How many query shapes get their own `fingerprint` label in the Prometheus metrics; the
    /// rest share the label `other`, so a scrape has at most `max + 1` fingerprint values.
    /// Default: 50.
    ///
    /// The labelled shapes are those that ran the most statements lately, re-ranked when the
    /// metrics are rendered, at most once per
    /// [`label_ranking_interval`](Self::label_ranking_interval): a hot query first seen after
    /// many cold ones (startup, migrations, reports) gets its label at the next ranking. A shape
    /// takes another's label only with clearly more traffic (1.5 times its score), so shapes of
    /// similar traffic keep theirs. No exported series ever goes down when a shape changes
    /// label; see [`MetricsRegistry`](crate::MetricsRegistry) for what a scrape shows then.
    pub fn max_labelled_fingerprints(mut self, max: usize) -> Self {
        self.config.max_labelled_fingerprints = max;
        self
    }

    /// How often, at most, the shapes with their own `fingerprint` label are re-ranked by
    /// traffic. A shape's score is its statements since the previous ranking plus half its
    /// previous score, so roughly the last two intervals count. Zero ranks at every scrape.
    /// Free places among the labelled shapes are filled at every scrape regardless. Default:
    /// 60 s.
    pub fn label_ranking_interval(mut self, interval: Duration) -> Self {
        self.config.label_ranking_interval = interval;
        self
    }

    /// Upper bounds of the exported latency histogram's buckets. Default:
    /// [`DEFAULT_LATENCY_BUCKETS`].
    pub fn latency_buckets(mut self, buckets: impl IntoIterator<Item = Duration>) -> Self {
        self.latency_buckets = Some(buckets.into_iter().collect());
        self
    }

    /// Checks the settings and makes the tracker.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the N+1 threshold is below 2, a capacity or maximum is zero,
    /// or the latency buckets are empty, zero or not strictly ascending.
    pub fn build(mut self) -> Result<QueryTracker> {
        let invalid = |reason: &str| {
            Err(Error::InvalidConfig {
                reason: reason.to_owned(),
            })
        };
        let c = &self.config;
        if c.n_plus_one_threshold < 2 {
            return invalid("n_plus_one_threshold must be at least 2");
        }
        if c.max_fingerprints == 0 || c.max_cached_statements == 0 {
            return invalid("max_fingerprints and max_cached_statements must be at least 1");
        }
        if let Some(buckets) = self.latency_buckets.take() {
            if buckets.is_empty() {
                return invalid("latency_buckets must not be empty");
            }
            if buckets.iter().any(Duration::is_zero) || buckets.windows(2).any(|w| w[0] >= w[1]) {
                return invalid("latency_buckets must be positive and strictly ascending");
            }
            self.config.latency_buckets_ns = buckets
                .iter()
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .collect();
        }
        Ok(QueryTracker::with_config(self.config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_are_refused_with_a_reason() {
        let err = QueryTracker::builder()
            .n_plus_one_threshold(1)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("n_plus_one_threshold"), "{err}");
        let err = QueryTracker::builder()
            .latency_buckets([Duration::from_millis(5), Duration::from_millis(1)])
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("ascending"), "{err}");
        assert!(QueryTracker::builder().max_fingerprints(0).build().is_err());
    }

    #[test]
    fn default_buckets_are_ascending_seconds() {
        let config = TrackerConfig::default();
        assert_eq!(config.latency_buckets_ns.first(), Some(&100_000));
        assert_eq!(config.latency_buckets_ns.last(), Some(&10_000_000_000));
        assert!(config.latency_buckets_ns.windows(2).all(|w| w[0] < w[1]));
    }
}
