//! Prometheus export: one registry for the query metrics, the caller's own metrics (HTTP
//! latency) and values read at scrape time from other components (cache statistics, pool size).

use std::{borrow::Cow, collections::BTreeMap, fmt};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::{Registry, Unit},
};
use sea_orm::DatabaseConnection;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use sea_orm::DatabaseConnectionType;

use crate::{Error, QueryTracker, Result, labels::SeriesKey, store::Cumulative, tracker::Inner};

/// The `Content-Type` of [`MetricsRegistry::encode`]'s output (Prometheus text format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One registry of Prometheus metrics, rendered as text for a `GET /metrics` endpoint.
///
/// It holds the query metrics of [`QueryTracker`]s, [`MetricsSource`]s read at each scrape
/// (such as a cache's statistics), and any metric of the caller's own through
/// [`registry_mut`](Self::registry_mut) (such as HTTP latency histograms), all in one text.
///
/// Metrics of a tracker (labels `operation` = select/insert/update/delete/other and
/// `fingerprint` = a shape's 16-digit id, or `other`; never SQL or bind values):
///
/// | metric | type |
/// |---|---|
/// | `db_query_duration_seconds` | histogram, explicit buckets |
/// | `db_query_errors_total` | counter |
/// | `db_slow_queries_total` | counter |
/// | `db_n_plus_one_detections_total` | counter |
/// | `db_query_fingerprints` | gauge: shapes tracked |
///
/// The `fingerprint` label is bounded: the
/// [`max_labelled_fingerprints`](crate::TrackerBuilder::max_labelled_fingerprints) shapes
/// (default 50) that ran the most statements lately have their own, re-ranked at a scrape at
/// most once per [`label_ranking_interval`](crate::TrackerBuilder::label_ranking_interval)
/// with a margin against flapping; every other shape counts under `other`. A scrape shows at
/// most that many plus one values per operation's metric.
///
/// When a shape changes label no series goes down, so `rate()` and `increase()` stay right:
/// statements already exported under a label stay there and only later ones count under the
/// new label. A shape promoted from `other` starts its own series (`other` keeps what it
/// showed); a demoted shape's own series stops being exported, frozen at its last value, and
/// resumes from that value if the shape is promoted again. Hence the series of one scrape sum
/// to less than the true total once a shape has been demoted, while `sum(rate(..))` over
/// `fingerprint` is always the true rate, and the last values of all series ever exported sum
/// to the true total.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use perf_stats::{MetricsRegistry, QueryTracker, Sample};
///
/// let tracker = QueryTracker::new();
/// tracker.record("SELECT * FROM rooms WHERE id = ?", Duration::from_millis(2), false);
///
/// let mut metrics = MetricsRegistry::new();
/// metrics.register_tracker(&tracker);
/// metrics.register_source(|| vec![Sample::gauge("cache_entries", "Entries in the cache", 42.0)]);
///
/// let text = metrics.encode()?;
/// assert!(text.contains(r#"db_query_duration_seconds_bucket{operation="select",fingerprint="#));
/// assert!(text.contains("cache_entries 42"));
/// # Ok::<(), perf_stats::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    registry: Registry,
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose metric names all start with `prefix_`.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            registry: Registry::with_prefix(prefix),
        }
    }

    /// Exports the query metrics of `tracker`.
    pub fn register_tracker(&mut self, tracker: &QueryTracker) {
        self.registry.register_collector(Box::new(TrackerCollector {
            inner: std::sync::Arc::clone(&tracker.inner),
        }));
    }

    /// Exports the values `source` gives at each scrape.
    pub fn register_source(&mut self, source: impl MetricsSource) {
        self.registry
            .register_collector(Box::new(SourceCollector(Box::new(source))));
    }

    /// Exports the connection pool's size, bound and idle connections as
    /// `db_pool_connections`, `db_pool_max_connections` and `db_pool_idle_connections`: a pool
    /// with no idle connection makes callers wait, and that wait is not part of the query
    /// latency.
    pub fn register_pool(&mut self, db: &DatabaseConnection) {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        self.register_sqlx_pool(db);
        // Without a driver feature there is no pool to read.
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        let _ = db;
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    fn register_sqlx_pool(&mut self, db: &DatabaseConnection) {
        let pool = match &db.inner {
            #[cfg(feature = "sqlite")]
            DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
                Pool::Sqlite(db.get_sqlite_connection_pool().clone())
            }
            #[cfg(feature = "postgres")]
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                Pool::Postgres(db.get_postgres_connection_pool().clone())
            }
            _ => return,
        };
        self.register_source(move || {
            let (size, idle, max) = match &pool {
                #[cfg(feature = "sqlite")]
                Pool::Sqlite(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
                #[cfg(feature = "postgres")]
                Pool::Postgres(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
            };
            vec![
                Sample::gauge(
                    "db_pool_connections",
                    "Connections open in the pool",
                    f64::from(size),
                ),
                Sample::gauge(
                    "db_pool_max_connections",
                    "Most connections the pool opens; (connections - idle) / max is its saturation",
                    f64::from(max),
                ),
                Sample::gauge(
                    "db_pool_idle_connections",
                    "Open connections not in use",
                    idle as f64,
                ),
            ]
        });
    }

    /// The underlying `prometheus_client` registry, to register the caller's own metrics in
    /// the same text. [`prometheus_client`] is re-exported so its version always matches.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Renders every metric in the Prometheus text format (serve it with
    /// [`PROMETHEUS_CONTENT_TYPE`]).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when a metric or label cannot be written.
    pub fn encode(&self) -> Result<String> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .map_err(Error::Encode)?;
        Ok(text)
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sea_orm::sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sea_orm::sqlx::PgPool),
}

/// Values read at each scrape, such as a cache's statistics.
///
/// Any `Fn() -> Vec<Sample>` closure is a source. Samples with the same name form one metric;
/// give each a distinct label set.
///
/// # Examples
///
/// ```
/// use perf_stats::{MetricsRegistry, Sample};
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
///
/// let hits = Arc::new(AtomicU64::new(0));
/// let mut metrics = MetricsRegistry::new();
/// let source_hits = Arc::clone(&hits);
/// metrics.register_source(move || {
///     vec![Sample::counter("cache_hits", "Lookups answered from the cache", source_hits.load(Ordering::Relaxed) as f64)
///         .label("tier", "memory")]
/// });
/// hits.fetch_add(3, Ordering::Relaxed);
/// assert!(metrics.encode()?.contains(r#"cache_hits_total{tier="memory"} 3"#));
/// # Ok::<(), perf_stats::Error>(())
/// ```
pub trait MetricsSource: Send + Sync + 'static {
    /// The current values.
    fn samples(&self) -> Vec<Sample>;
}

impl<F> MetricsSource for F
where
    F: Fn() -> Vec<Sample> + Send + Sync + 'static,
{
    fn samples(&self) -> Vec<Sample> {
        self()
    }
}

/// Whether a [`Sample`] only goes up or can go both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Only grows (restarts aside); exported with the suffix `_total`.
    Counter,
    /// A current value.
    Gauge,
}

/// One value of a [`MetricsSource`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    name: Cow<'static, str>,
    help: Cow<'static, str>,
    kind: SampleKind,
    value: f64,
    labels: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

impl Sample {
    /// A gauge: a value that goes up and down (entries in a cache, a hit ratio).
    pub fn gauge(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
        value: f64,
    ) -> Self {
        Self::new(name, help, SampleKind::Gauge, value)
    }

    /// A counter: a total that only grows (hits, misses, evictions). Prometheus adds `_total` to
    /// the name: pass `cache_hits`, get `cache_hits_total`.
    pub fn counter(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
        value: f64,
    ) -> Self {
        Self::new(name, help, SampleKind::Counter, value)
    }

    fn new(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
        kind: SampleKind,
        value: f64,
    ) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            value,
            labels: Vec::new(),
        }
    }

    /// Adds a label. Keep label values few: each distinct set is a time series.
    pub fn label(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }
}

/// `value` as an integer when it is one exactly (and fits in `i64`).
fn whole(value: f64) -> Option<i64> {
    // 2^63 is exact in f64; every whole f64 below it converts without loss.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (value.fract() == 0.0 && value.abs() < LIMIT).then_some(value as i64)
}

struct SourceCollector(Box<dyn MetricsSource>);

impl fmt::Debug for SourceCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceCollector")
    }
}

impl Collector for SourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut by_name: BTreeMap<Cow<'static, str>, Vec<Sample>> = BTreeMap::new();
        for sample in self.0.samples() {
            by_name.entry(sample.name.clone()).or_default().push(sample);
        }
        for (name, samples) in &by_name {
            let Some(first) = samples.first() else {
                continue;
            };
            let metric_type = match first.kind {
                SampleKind::Counter => MetricType::Counter,
                SampleKind::Gauge => MetricType::Gauge,
            };
            let mut metric = encoder.encode_descriptor(name, &first.help, None, metric_type)?;
            for sample in samples {
                let labels: Vec<(&str, &str)> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_ref(), v.as_ref()))
                    .collect();
                let mut family = metric.encode_family(&labels)?;
                // Whole numbers (counts of things, which is most samples) are written as
                // integers: `42`, not `42.0`.
                match (first.kind, whole(sample.value)) {
                    (SampleKind::Counter, Some(n)) if n >= 0 => {
                        family.encode_counter::<NoLabelSet, u64, f64>(&n.unsigned_abs(), None)?;
                    }
                    (SampleKind::Counter, _) => {
                        family.encode_counter::<NoLabelSet, f64, f64>(&sample.value, None)?;
                    }
                    (SampleKind::Gauge, Some(n)) => family.encode_gauge(&n)?,
                    (SampleKind::Gauge, None) => family.encode_gauge(&sample.value)?,
                }
            }
        }
        Ok(())
    }
}

struct TrackerCollector {
    inner: std::sync::Arc<Inner>,
}

impl fmt::Debug for TrackerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrackerCollector")
    }
}

impl Collector for TrackerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let inner = &*self.inner;
        let bounds = &inner.config.latency_buckets_ns;
        // Ranking and the split of counts between labels happen here, at scrape time, so
        // recording never takes this lock.
        let series = inner
            .labels
            .lock()
            .series(&inner.store, tokio::time::Instant::now());
        let shapes = inner.store.entries().len() as i64;
        fn labels((operation, fingerprint): &SeriesKey) -> [(&'static str, &str); 2] {
            [("operation", operation), ("fingerprint", fingerprint)]
        }

        {
            let mut metric = encoder.encode_descriptor(
                "db_query_duration",
                "Time the database took to run a statement",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (key, s) in &series {
                let buckets: Vec<(f64, u64)> = bounds
                    .iter()
                    .map(|ns| *ns as f64 / 1e9)
                    .chain(std::iter::once(f64::INFINITY))
                    // A part never counted in has no buckets yet: zeros.
                    .zip(s.buckets.iter().copied().chain(std::iter::repeat(0)))
                    .collect();
                metric
                    .encode_family(&labels(key))?
                    .encode_histogram::<NoLabelSet>(
                        s.sum_ns as f64 / 1e9,
                        s.count,
                        &buckets,
                        None,
                    )?;
            }
        }

        for (name, help, value) in [
            (
                "db_query_errors",
                "Statements that returned an error",
                (|s: &Cumulative| s.errors) as fn(&Cumulative) -> u64,
            ),
            (
                "db_slow_queries",
                "Statements at or over the slow-query threshold",
                |s: &Cumulative| s.slow,
            ),
            (
                "db_n_plus_one_detections",
                "Scopes in which one statement shape repeated at least the N+1 threshold",
                |s: &Cumulative| s.n_plus_one,
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (key, s) in &series {
                metric
                    .encode_family(&labels(key))?
                    .encode_counter::<NoLabelSet, u64, u64>(&value(s), None)?;
            }
        }

        encoder
            .encode_descriptor(
                "db_query_fingerprints",
                "Statement shapes tracked",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&shapes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, time::Duration};

    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_seconds_per_operation_and_fingerprint() {
        let tracker = QueryTracker::builder()
            .latency_buckets([Duration::from_millis(1), Duration::from_millis(10)])
            .build()
            .unwrap();
        tracker.record(
            "SELECT * FROM t WHERE id = ?",
            Duration::from_micros(500),
            false,
        );
        tracker.record(
            "SELECT * FROM t WHERE id = ?",
            Duration::from_millis(5),
            false,
        );
        tracker.record(
            "SELECT * FROM t WHERE id = ?",
            Duration::from_millis(50),
            true,
        );
        tracker.record("DELETE FROM t", Duration::from_millis(1), false);
        let id = crate::fingerprint("SELECT * FROM t WHERE id = ?").id();
        let mut metrics = MetricsRegistry::new();
        metrics.register_tracker(&tracker);
        let text = metrics.encode().unwrap();
        let select = format!(r#"operation="select",fingerprint="{id}""#);
        for line in [
            "# TYPE db_query_duration_seconds histogram".to_owned(),
            format!(r#"db_query_duration_seconds_bucket{{{select},le="0.001"}} 1"#),
            format!(r#"db_query_duration_seconds_bucket{{{select},le="0.01"}} 2"#),
            format!(r#"db_query_duration_seconds_bucket{{{select},le="+Inf"}} 3"#),
            format!(r#"db_query_duration_seconds_sum{{{select}}} 0.0555"#),
            format!(r#"db_query_duration_seconds_count{{{select}}} 3"#),
            format!(r#"db_query_errors_total{{{select}}} 1"#),
            // 1 ms is inside the 1 ms bucket: upper bounds are inclusive.
            r#"le="0.001"} 1"#.to_owned(),
            "db_query_fingerprints 2".to_owned(),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("SELECT"),
            "SQL must never be a label:\n{text}"
        );
    }

    /// The query samples of a scrape: `name{labels}` → value, the `db_query_fingerprints`
    /// gauge left out.
    fn query_samples(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| l.starts_with("db_") && !l.starts_with("db_query_fingerprints"))
            .map(|l| {
                let (key, value) = l.rsplit_once(' ').unwrap();
                (key.to_owned(), value.parse().unwrap())
            })
            .collect()
    }

    /// The label pairs of a sample key.
    fn sample_labels(key: &str) -> BTreeMap<&str, &str> {
        let Some((_, rest)) = key.split_once('{') else {
            return BTreeMap::new();
        };
        rest.trim_end_matches('}')
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect()
    }

    fn fingerprint_values(samples: &BTreeMap<String, f64>) -> BTreeSet<String> {
        samples
            .keys()
            .filter_map(|key| sample_labels(key).get("fingerprint").map(|v| v.to_string()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hot_shape_first_seen_after_n_cold_ones_gets_its_label_at_the_next_ranking() {
        let tracker = QueryTracker::builder()
            .max_labelled_fingerprints(3)
            .label_ranking_interval(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut metrics = MetricsRegistry::new();
        metrics.register_tracker(&tracker);
        // Startup: three statements that run once each take the three labels.
        for table in ["migrations", "settings", "users"] {
            tracker.record(
                &format!("SELECT * FROM {table}"),
                Duration::from_millis(1),
                false,
            );
        }
        let cold = fingerprint_values(&query_samples(&metrics.encode().unwrap()));
        assert_eq!(cold.len(), 3, "{cold:?}");

        let hot = "SELECT * FROM rooms WHERE id = ?";
        let hot_id = crate::fingerprint(hot).id().to_string();
        let other_count =
            r#"db_query_duration_seconds_count{operation="select",fingerprint="other"}"#;
        let hot_count = format!(
            r#"db_query_duration_seconds_count{{operation="select",fingerprint="{hot_id}"}}"#
        );
        for _ in 0..100 {
            tracker.record(hot, Duration::from_millis(1), false);
        }
        // Before the interval has passed the labels stay as they are: the hot shape is `other`.
        let before = query_samples(&metrics.encode().unwrap());
        assert_eq!(before.get(other_count), Some(&100.0), "{before:?}");
        assert!(!fingerprint_values(&before).contains(&hot_id));

        tokio::time::advance(Duration::from_secs(61)).await;
        for _ in 0..20 {
            tracker.record(hot, Duration::from_millis(1), false);
        }
        let after = query_samples(&metrics.encode().unwrap());
        let labels = fingerprint_values(&after);
        assert!(labels.contains(&hot_id), "{labels:?}");
        assert_eq!(labels.len(), 4, "three shapes and `other`: {labels:?}");
        assert_eq!(
            after.get(&hot_count),
            Some(&20.0),
            "what ran since the last scrape goes to the new label"
        );
        assert_eq!(
            after.get(other_count),
            Some(&100.0),
            "`other` keeps the 100 it already exported"
        );
    }

    /// splitmix64: seeded, so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        }
    }

    /// Adds one statement to the expected totals, keyed `metric name{operation[,le]}`, for
    /// buckets of 1 ms and 10 ms and a slow threshold of 20 ms.
    fn count_statement(
        truth: &mut BTreeMap<String, f64>,
        op: &str,
        elapsed: Duration,
        failed: bool,
    ) {
        let mut add = |key: String, value: f64| *truth.entry(key).or_default() += value;
        add(format!("db_query_duration_seconds_count{{{op}}}"), 1.0);
        add(
            format!("db_query_duration_seconds_sum{{{op}}}"),
            elapsed.as_secs_f64(),
        );
        for (le, bound) in [("0.001", 0.001), ("0.01", 0.01), ("+Inf", f64::INFINITY)] {
            if elapsed.as_secs_f64() <= bound {
                add(
                    format!("db_query_duration_seconds_bucket{{{op},{le}}}"),
                    1.0,
                );
            }
        }
        add(
            format!("db_query_errors_total{{{op}}}"),
            f64::from(u8::from(failed)),
        );
        add(
            format!("db_slow_queries_total{{{op}}}"),
            f64::from(u8::from(elapsed >= Duration::from_millis(20))),
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shifting_traffic_keeps_series_monotonic_summing_to_the_truth_within_n_plus_1_labels() {
        const LABELLED: usize = 3;
        const TRACKED: usize = 10;
        const SHAPES: usize = 14;
        let ms = Duration::from_millis;
        let tracker = QueryTracker::builder()
            .max_labelled_fingerprints(LABELLED)
            .max_fingerprints(TRACKED)
            .label_ranking_interval(Duration::from_secs(30))
            .latency_buckets([ms(1), ms(10)])
            .slow_threshold(ms(20))
            .n_plus_one_threshold(2)
            .build()
            .unwrap();
        let mut metrics = MetricsRegistry::new();
        metrics.register_tracker(&tracker);
        let sql: Vec<String> = (0..SHAPES)
            .map(|i| match i % 4 {
                0 => format!("SELECT c{i} FROM t WHERE id = ?"),
                1 => format!("INSERT INTO t{i} (a) VALUES (?)"),
                2 => format!("UPDATE t SET c{i} = ? WHERE id = ?"),
                _ => format!("DELETE FROM t{i} WHERE id = ?"),
            })
            .collect();
        // Shapes past `TRACKED` (in order of first sight) are the overflow entry, operation
        // `other`.
        let mut first_seen: Vec<usize> = Vec::new();
        let operation = |first_seen: &[usize], shape: usize| match first_seen
            .iter()
            .position(|&s| s == shape)
        {
            Some(p) if p < TRACKED => crate::fingerprint(&sql[shape]).operation().as_str(),
            _ => "other",
        };
        // The truth, per `metric name{operation[,le]}`.
        let mut truth: BTreeMap<String, f64> = BTreeMap::new();

        let mut rng = Rng(20261129);
        let mut weights = [0u64; SHAPES];
        // Every sample ever exported, at its last value.
        let mut last: BTreeMap<String, f64> = BTreeMap::new();
        let mut previous: BTreeSet<String> = BTreeSet::new();
        let (mut label_changes, mut resumed, mut most_labels) = (0, 0, 0);
        for round in 0..300 {
            if round % 15 == 0 {
                // Traffic shifts: new weights, most shapes quiet.
                for w in &mut weights {
                    *w = if rng.below(3) == 0 { rng.below(30) } else { 0 };
                }
            }
            for shape in 0..SHAPES {
                for _ in 0..rng.below(weights[shape] + 1) {
                    if !first_seen.contains(&shape) {
                        first_seen.push(shape);
                    }
                    let op = operation(&first_seen, shape);
                    let elapsed =
                        [Duration::from_micros(500), ms(5), ms(50)][rng.below(3) as usize];
                    let failed = rng.below(8) == 0;
                    if rng.below(20) == 0 {
                        // Twice in one scope: an N+1 at threshold 2.
                        tracker
                            .scope("job", async {
                                tracker.record(&sql[shape], elapsed, failed);
                                tracker.record(&sql[shape], elapsed, failed);
                            })
                            .await;
                        *truth
                            .entry(format!("db_n_plus_one_detections_total{{{op}}}"))
                            .or_default() += 1.0;
                        count_statement(&mut truth, op, elapsed, failed);
                    } else {
                        tracker.record(&sql[shape], elapsed, failed);
                    }
                    count_statement(&mut truth, op, elapsed, failed);
                }
            }
            tokio::time::advance(Duration::from_secs(rng.below(20))).await;

            let text = metrics.encode().unwrap();
            assert!(!text.contains("SELECT") && !text.contains("FROM"), "{text}");
            let samples = query_samples(&text);
            let labels = fingerprint_values(&samples);
            assert!(labels.len() <= LABELLED + 1, "round {round}: {labels:?}");
            most_labels = most_labels.max(labels.len());
            for (key, value) in &samples {
                if let Some(before) = last.get(key) {
                    assert!(
                        value >= before,
                        "round {round}: {key} went from {before} to {value}"
                    );
                    if !previous.contains(key) {
                        resumed += 1;
                    }
                }
                last.insert(key.clone(), *value);
            }
            let current: BTreeSet<String> = samples.keys().cloned().collect();
            label_changes += current.symmetric_difference(&previous).count();
            previous = current;

            // Every series ever exported, at its last value, sums to the truth.
            let mut exported: BTreeMap<String, f64> = BTreeMap::new();
            for (key, value) in &last {
                let name = key.split('{').next().unwrap();
                let labels = sample_labels(key);
                let op = labels["operation"];
                let key = match labels.get("le") {
                    Some(le) => format!("{name}{{{op},{le}}}"),
                    None => format!("{name}{{{op}}}"),
                };
                *exported.entry(key).or_default() += value;
            }
            let keys: BTreeSet<&String> = exported.keys().chain(truth.keys()).collect();
            for key in keys {
                let (got, want) = (
                    exported.get(key).copied().unwrap_or(0.0),
                    truth.get(key).copied().unwrap_or(0.0),
                );
                assert!(
                    (got - want).abs() <= 1e-6 * want.max(1.0),
                    "round {round}: {key} sums to {got}, truth {want}"
                );
            }
        }
        // The loop must have moved shapes between labels, and brought some back, to prove
        // anything.
        assert!(label_changes > 50, "{label_changes} changes");
        assert!(resumed > 0, "no series was exported again after a gap");
        assert_eq!(most_labels, LABELLED + 1, "the bound was never reached");
    }

    #[test]
    fn reset_does_not_make_counters_go_down() {
        let tracker = QueryTracker::new();
        tracker.record("SELECT 1", Duration::from_millis(1), true);
        tracker.reset();
        let mut metrics = MetricsRegistry::new();
        metrics.register_tracker(&tracker);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("db_query_errors_total{operation=\"select\""),
            "{text}"
        );
        assert!(text.contains("} 1\n"), "{text}");
    }

    #[test]
    fn sources_group_samples_by_name_and_the_caller_adds_its_own_metrics() {
        let mut metrics = MetricsRegistry::with_prefix("hotel");
        metrics.register_source(|| {
            vec![
                Sample::counter("cache_hits", "Hits", 3.0).label("cache", "rooms"),
                Sample::gauge("cache_entries", "Entries", 7.0),
                Sample::counter("cache_hits", "Hits", 4.0).label("cache", "bookings"),
            ]
        });
        let http = prometheus_client::metrics::counter::Counter::<u64>::default();
        metrics
            .registry_mut()
            .register("http_requests", "Requests", http.clone());
        http.inc();
        let text = metrics.encode().unwrap();
        assert_eq!(
            text.matches("# TYPE hotel_cache_hits_total counter")
                .count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("hotel_cache_hits_total{cache=\"rooms\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("hotel_cache_hits_total{cache=\"bookings\"} 4"),
            "{text}"
        );
        assert!(text.contains("hotel_cache_entries 7"), "{text}");
        assert!(text.contains("hotel_http_requests_total 1"), "{text}");
    }

    #[test]
    fn whole_samples_are_written_as_integers_and_fractions_as_floats() {
        let mut metrics = MetricsRegistry::new();
        metrics.register_source(|| {
            vec![
                Sample::counter("hits", "Hits", 3.0),
                Sample::counter("load_seconds", "Seconds", 0.25),
                Sample::gauge("pool_connections", "Connections", 4.0),
                Sample::gauge("temperature", "Below zero", -2.0),
                Sample::gauge("ratio", "A ratio", 0.5),
                Sample::gauge("huge", "Past i64", 1e300),
            ]
        });
        let text = metrics.encode().unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        for expected in [
            "hits_total 3",
            "load_seconds_total 0.25",
            "pool_connections 4",
            "temperature -2",
            "ratio 0.5",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("huge ") && l.contains('e')),
            "{text}"
        );
    }
}
