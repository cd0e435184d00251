//! [`QueryTracker`]: records every statement of a sea-orm connection.

use std::{collections::VecDeque, fmt, future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use hashbrown::HashMap;
use parking_lot::Mutex;
use sea_orm::DatabaseConnection;

use crate::{
    budget::QueryLog,
    config::{TrackerBuilder, TrackerConfig},
    fingerprint::{FingerprintId, mask_literals},
    report::{NPlusOneFinding, QueryReport, QueryStats, SlowQuery},
    scope::{self, Frame, ScopeReport, ScopeRun, Scoped},
    store::{Entry, Store},
};

/// Records the statements of one or more sea-orm connections, grouped by
/// [fingerprint](crate::fingerprint), with latency percentiles, slow-query and N+1 detection.
///
/// Cheap to clone: clones share the same statistics. Make one per process (or per database),
/// [`attach`](Self::attach) it to the connection, then hand clones to whatever reports.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sea_orm::{ConnectionTrait, Statement};
///
/// let tracker = perf_stats::QueryTracker::new();
/// let mut db = sea_orm::Database::connect("sqlite::memory:").await?;
/// tracker.attach(&mut db);
///
/// let backend = db.get_database_backend();
/// for id in 1..=3 {
///     db.query_all_raw(Statement::from_sql_and_values(backend, "SELECT ? AS id", [id.into()]))
///         .await?;
/// }
/// let report = tracker.report();
/// assert_eq!(report.queries[0].fingerprint, "SELECT ? AS id");
/// assert_eq!(report.queries[0].calls, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct QueryTracker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: TrackerConfig,
    pub(crate) store: Store,
    /// Which shapes have their own metric label. Taken only to render the metrics: recording
    /// never waits for it.
    #[cfg(feature = "prometheus")]
    pub(crate) labels: Mutex<crate::labels::Labels>,
    slow_log: Mutex<VecDeque<SlowQuery>>,
    n_plus_one: Mutex<HashMap<(FingerprintId, String), NPlusOneFinding>>,
    since: Mutex<DateTime<Utc>>,
}

impl fmt::Debug for QueryTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryTracker")
            .field("slow_threshold", &self.inner.config.slow_threshold)
            .field(
                "n_plus_one_threshold",
                &self.inner.config.n_plus_one_threshold,
            )
            .field("fingerprints", &self.inner.store.entries().len())
            .finish_non_exhaustive()
    }
}

impl Default for QueryTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl QueryTracker {
    /// A tracker with the default settings (slow at 100 ms, N+1 at 5 repeats).
    pub fn new() -> Self {
        Self::with_config(TrackerConfig::default())
    }

    /// A builder for other settings.
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
    }

    pub(crate) fn with_config(config: TrackerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Store::new(&config),
                #[cfg(feature = "prometheus")]
                labels: Mutex::new(crate::labels::Labels::new(&config)),
                slow_log: Mutex::new(VecDeque::with_capacity(config.slow_log_capacity)),
                n_plus_one: Mutex::new(HashMap::new()),
                since: Mutex::new(Utc::now()),
                config,
            }),
        }
    }

    /// The slow-query threshold.
    pub fn slow_threshold(&self) -> Duration {
        self.inner.config.slow_threshold
    }

    /// The N+1 threshold: repeats of one shape in one scope that count as a likely N+1.
    pub fn n_plus_one_threshold(&self) -> u32 {
        self.inner.config.n_plus_one_threshold
    }

    /// Records every statement `db` runs from now on, through sea-orm's metric callback.
    ///
    /// What is recorded: every `execute`, `query_one`, `query_all` and stream, inside or outside
    /// transactions, with the time the database took and whether it failed. What is not (sea-orm
    /// 2.0 calls no callback for them): `execute_unprepared` (raw multi-statement SQL), the
    /// `BEGIN` / `COMMIT` / `ROLLBACK` of transactions, and the time spent waiting for a pooled
    /// connection. Pool saturation is visible through
    /// [`MetricsRegistry::register_pool`](crate::MetricsRegistry::register_pool).
    ///
    /// The callback belongs to this `DatabaseConnection` value and to the clones made from it
    /// afterwards (they share the pool and the callback); clones made before do not record.
    /// A connection has one callback: attaching replaces any earlier one.
    ///
    /// Statements that a library runs on the same pool through another executor, and reports
    /// with [`record_external`](crate::record_external), are recorded by the tracker attached
    /// last to any connection of that pool.
    pub fn attach(&self, db: &mut DatabaseConnection) {
        let tracker = self.clone();
        db.set_metric_callback(move |info| {
            tracker.record_execution(&info.statement.sql, info.elapsed, info.failed, None);
        });
        crate::external::attach(db, self);
    }

    /// Records one statement by hand: for statements that do not go through an attached
    /// connection, and for benchmarks.
    pub fn record(&self, sql: &str, elapsed: Duration, failed: bool) {
        self.record_execution(sql, elapsed, failed, None);
    }

    /// Records one statement with the number of rows it returned or affected.
    pub fn record_with_rows(&self, sql: &str, elapsed: Duration, failed: bool, rows: u64) {
        self.record_execution(sql, elapsed, failed, Some(rows));
    }

    #[inline]
    fn record_execution(&self, sql: &str, elapsed: Duration, failed: bool, rows: Option<u64>) {
        let inner = &*self.inner;
        let slow = elapsed >= inner.config.slow_threshold;
        let frame = scope::current();
        let entry = inner.store.with_entry(sql, |entry| {
            entry.record(
                elapsed,
                failed,
                slow,
                rows,
                &inner.config.latency_buckets_ns,
            );
            (slow || frame.is_some()).then(|| Arc::clone(entry))
        });
        if let Some(entry) = entry {
            if slow {
                inner.slow(&entry, sql, elapsed, failed);
            }
            if let Some(frame) = frame {
                frame.record(&entry, sql, elapsed, failed);
            }
        }
    }

    /// Runs `future` as one scope (a request, a job) and returns its output with what it ran.
    ///
    /// Statements of the same shape repeated at least
    /// [`n_plus_one_threshold`](Self::n_plus_one_threshold) times in the scope are a likely N+1:
    /// when the scope ends, each one is logged as a `WARN` event (target `perf_stats`, fields
    /// `scope`, `fingerprint_id`, `fingerprint`, `count`), counted in the metrics, and listed
    /// in the report's [`n_plus_one`](QueryReport::n_plus_one). A scope dropped before it
    /// finishes is evaluated all the same.
    ///
    /// Statements are attributed through a tokio task-local: those run by tasks the future
    /// spawns are not part of the scope. Scopes nest; a statement counts in every enclosing one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sea_orm::{ConnectionTrait, Statement};
    ///
    /// let tracker = perf_stats::QueryTracker::new();
    /// let mut db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// tracker.attach(&mut db);
    ///
    /// let (_, scope) = tracker
    ///     .scope("GET /bookings", async {
    ///         for id in 0..6 {
    ///             let sql = "SELECT ? AS room_type";
    ///             let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, [id.into()]);
    ///             db.query_one_raw(stmt).await?;
    ///         }
    ///         Ok::<_, sea_orm::DbErr>(())
    ///     })
    ///     .await;
    /// assert_eq!(scope.statements, 6);
    /// assert_eq!(scope.repeated[0].count, 6);
    /// assert_eq!(tracker.report().n_plus_one[0].scope, "GET /bookings");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn scope<F: Future>(
        &self,
        label: impl Into<String>,
        future: F,
    ) -> (F::Output, ScopeReport) {
        let frame = Arc::new(Frame::scope(scope::current(), Arc::from(label.into())));
        let mut run = ScopeRun::new(self.clone(), Arc::clone(&frame));
        let output = scope::run_in(frame, future).await;
        (output, run.finish())
    }

    /// Runs `future` in a scope labelled `label`, as [`scope`](Self::scope) does (statement
    /// counts, N+1 findings logged, counted and listed in the report), for a caller that does
    /// not read the scope's own report: a server scoping every request.
    ///
    /// The label is shared rather than copied, and the returned future is a named type, so a
    /// tower service can scope each request without formatting a label or boxing a future
    /// ([`QueryScopeLayer`](crate::QueryScopeLayer) does).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let tracker = perf_stats::QueryTracker::new();
    /// let route: Arc<str> = Arc::from("GET /rooms/{id}");
    /// for _ in 0..2 {
    ///     tracker
    ///         .scoped(Arc::clone(&route), async {
    ///             for _ in 0..6 {
    ///                 tracker.record("SELECT * FROM rooms WHERE id = ?", Duration::from_micros(5), false);
    ///             }
    ///         })
    ///         .await;
    /// }
    /// let findings = tracker.report().n_plus_one;
    /// assert_eq!(findings[0].scope, "GET /rooms/{id}");
    /// assert_eq!(findings[0].occurrences, 2);
    /// # }
    /// ```
    pub fn scoped<F: Future>(&self, label: Arc<str>, future: F) -> Scoped<F> {
        Scoped::new(self.clone(), label, future)
    }

    /// Runs `future` and returns its output with every statement it ran, in order: the basis of
    /// query budgets in tests ([`assert_queries!`](crate::assert_queries),
    /// [`assert_max_queries!`](crate::assert_max_queries)).
    ///
    /// Only statements of connections this (or any) tracker is [attached](Self::attach) to are
    /// seen, and only those run by the future's own task.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sea_orm::{ConnectionTrait, Statement};
    ///
    /// let tracker = perf_stats::QueryTracker::new();
    /// let mut db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// tracker.attach(&mut db);
    ///
    /// let (rows, queries) = tracker
    ///     .capture(db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT 1")))
    ///     .await;
    /// assert_eq!(rows?.len(), 1);
    /// perf_stats::assert_queries!(queries, 1, "one round trip");
    /// assert_eq!(queries.statements()[0].sql, "SELECT 1");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn capture<F: Future>(&self, future: F) -> (F::Output, QueryLog) {
        let frame = Arc::new(Frame::capture(scope::current()));
        let output = scope::run_in(Arc::clone(&frame), future).await;
        (output, frame.take_log())
    }

    /// The statistics of the shape `sql` belongs to, if it ran since the last reset.
    pub fn stats_for(&self, sql: &str) -> Option<QueryStats> {
        let id = crate::fingerprint(sql).id();
        let entry = self.inner.store.entry(id)?;
        stats_of(&entry)
    }

    /// Everything known since the last reset: shapes by total time, recent slow queries, N+1
    /// findings.
    pub fn report(&self) -> QueryReport {
        let inner = &*self.inner;
        let mut queries: Vec<QueryStats> = inner
            .store
            .entries()
            .iter()
            .filter_map(|e| stats_of(e))
            .collect();
        queries.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        let mut n_plus_one: Vec<NPlusOneFinding> =
            inner.n_plus_one.lock().values().cloned().collect();
        n_plus_one.sort_by(|a, b| {
            b.occurrences
                .cmp(&a.occurrences)
                .then(b.max_repeats.cmp(&a.max_repeats))
                .then(a.scope.cmp(&b.scope))
        });
        QueryReport {
            since: *inner.since.lock(),
            generated_at: Utc::now(),
            slow_threshold: inner.config.slow_threshold,
            n_plus_one_threshold: inner.config.n_plus_one_threshold,
            statements: queries.iter().map(|q| q.calls).sum(),
            errors: queries.iter().map(|q| q.errors).sum(),
            slow_statements: queries.iter().map(|q| q.slow).sum(),
            database_time: queries.iter().map(|q| q.total).sum(),
            queries,
            slow_queries: inner.slow_log.lock().iter().rev().cloned().collect(),
            n_plus_one,
        }
    }

    /// Starts a new report window: forgets per-shape statistics, slow queries and N+1 findings.
    ///
    /// The Prometheus counters and histograms keep counting (a counter must never go down);
    /// query shapes and their metric labels are kept.
    pub fn reset(&self) {
        let inner = &*self.inner;
        inner.store.reset_windows();
        inner.slow_log.lock().clear();
        inner.n_plus_one.lock().clear();
        *inner.since.lock() = Utc::now();
    }
}

impl Inner {
    #[cold]
    fn slow(&self, entry: &Entry, sql: &str, elapsed: Duration, failed: bool) {
        tracing::warn!(
            target: "perf_stats",
            fingerprint_id = %entry.fingerprint.id(),
            fingerprint = entry.fingerprint.text(),
            duration_ms = elapsed.as_secs_f64() * 1e3,
            failed,
            "slow query"
        );
        let capacity = self.config.slow_log_capacity;
        if capacity == 0 {
            return;
        }
        let record = SlowQuery {
            fingerprint_id: entry.fingerprint.id(),
            sql: mask_literals(sql),
            duration: elapsed,
            failed,
            at: Utc::now(),
        };
        let mut log = self.slow_log.lock();
        while log.len() >= capacity {
            log.pop_front();
        }
        log.push_back(record);
    }

    /// Notes that `entry`'s shape ran `count` times in one scope labelled `scope`.
    pub(crate) fn n_plus_one(&self, entry: &Entry, scope: &str, count: u32) {
        tracing::warn!(
            target: "perf_stats",
            scope,
            fingerprint_id = %entry.fingerprint.id(),
            fingerprint = entry.fingerprint.text(),
            count,
            "likely N+1 query: the same statement ran {count} times in one scope"
        );
        entry.add_n_plus_one();
        let capacity = self.config.n_plus_one_log_capacity;
        if capacity == 0 {
            return;
        }
        let now = Utc::now();
        let mut findings = self.n_plus_one.lock();
        let key = (entry.fingerprint.id(), scope.to_owned());
        if let Some(finding) = findings.get_mut(&key) {
            finding.occurrences += 1;
            finding.max_repeats = finding.max_repeats.max(count);
            finding.last_repeats = count;
            finding.last_seen = now;
            return;
        }
        if findings.len() >= capacity {
            let oldest = findings
                .iter()
                .min_by_key(|(_, f)| f.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                findings.remove(&oldest);
            }
        }
        findings.insert(
            key,
            NPlusOneFinding {
                fingerprint_id: entry.fingerprint.id(),
                fingerprint: entry.fingerprint.text().to_owned(),
                operation: entry.fingerprint.operation(),
                scope: scope.to_owned(),
                occurrences: 1,
                max_repeats: count,
                last_repeats: count,
                last_seen: now,
            },
        );
    }
}

fn stats_of(entry: &Entry) -> Option<QueryStats> {
    let state = entry.state.lock();
    let w = &state.window;
    let latency = w.latency.summary();
    if latency.count == 0 {
        return None;
    }
    Some(QueryStats {
        fingerprint_id: entry.fingerprint.id(),
        fingerprint: entry.fingerprint.text().to_owned(),
        operation: entry.fingerprint.operation(),
        calls: latency.count,
        errors: w.errors,
        slow: w.slow,
        rows: w.rows,
        total: latency.total,
        mean: latency.mean,
        p50: latency.p50,
        p95: latency.p95,
        p99: latency.p99,
        max: latency.max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_types_and_scoped_futures_cross_threads() {
        // A server keeps these in its state and runs scoped handlers on a multi-threaded runtime.
        fn send_sync<T: Send + Sync + 'static>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<QueryTracker>();
        send_sync::<crate::MetricsRegistry>();
        send_sync::<QueryReport>();
        let tracker = QueryTracker::new();
        send(&tracker.scope("request", async {}));
        send(&tracker.capture(async {}));
    }

    #[test]
    fn percentiles_match_a_known_distribution() {
        let tracker = QueryTracker::new();
        // 1 ms, 2 ms, … 1000 ms, in a scrambled order: p50 = 500 ms, p95 = 950 ms, p99 = 990 ms.
        for i in 0..1000u64 {
            let ms = (i * 337) % 1000 + 1;
            tracker.record(
                "SELECT * FROM t WHERE id = ?",
                Duration::from_millis(ms),
                false,
            );
        }
        let stats = tracker.stats_for("SELECT * FROM t WHERE id = $1").unwrap();
        let close = |actual: Duration, expected_ms: f64| {
            let actual_ms = actual.as_secs_f64() * 1e3;
            // Two significant digits: within 1 %.
            assert!(
                (actual_ms - expected_ms).abs() <= expected_ms * 0.01,
                "{actual_ms} ms vs {expected_ms} ms"
            );
        };
        close(stats.p50, 500.0);
        close(stats.p95, 950.0);
        close(stats.p99, 990.0);
        assert_eq!(stats.max, Duration::from_millis(1000));
        assert_eq!(stats.calls, 1000);
        assert_eq!(stats.total, Duration::from_millis(500_500));
        assert_eq!(stats.mean, Duration::from_micros(500_500));
        // Everything from 100 ms up is slow by default.
        assert_eq!(stats.slow, 901);
    }

    #[test]
    fn slow_log_is_bounded_newest_first_and_holds_no_values() {
        let tracker = QueryTracker::builder()
            .slow_threshold(Duration::from_millis(10))
            .slow_log_capacity(2)
            .build()
            .unwrap();
        tracker.record(
            "SELECT * FROM users WHERE email = 'a@b.c'",
            Duration::from_millis(11),
            false,
        );
        tracker.record("SELECT 2", Duration::from_millis(9), false);
        tracker.record("SELECT 3", Duration::from_millis(12), true);
        tracker.record("SELECT 4", Duration::from_millis(13), false);
        let report = tracker.report();
        assert_eq!(report.slow_statements, 3);
        let sql: Vec<&str> = report.slow_queries.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sql, ["SELECT ?", "SELECT ?"]);
        assert!(report.slow_queries[1].failed);
        // The evicted first one held an email; it is not in the report in any form.
        assert!(!serde_json::to_string(&report).unwrap().contains("a@b.c"));
    }

    #[test]
    fn reset_starts_a_new_window() {
        let tracker = QueryTracker::new();
        tracker.record("SELECT 1", Duration::from_millis(1), false);
        let before = tracker.report().since;
        tracker.reset();
        let report = tracker.report();
        assert!(report.queries.is_empty());
        assert_eq!(report.statements, 0);
        assert!(report.since >= before);
        tracker.record("SELECT 1", Duration::from_millis(2), false);
        assert_eq!(tracker.report().queries[0].calls, 1);
    }

    #[test]
    fn top_ranks_by_each_key() {
        let tracker = QueryTracker::new();
        for _ in 0..10 {
            tracker.record("SELECT * FROM chatty", Duration::from_micros(10), false);
        }
        tracker.record("SELECT * FROM heavy", Duration::from_millis(50), false);
        tracker.record("SELECT * FROM spiky", Duration::from_millis(1), false);
        tracker.record("SELECT * FROM spiky", Duration::from_millis(80), false);
        let report = tracker.report();
        let first = |key| report.top(key, 1)[0].fingerprint.clone();
        assert_eq!(first(crate::SortKey::Calls), "SELECT * FROM chatty");
        assert_eq!(first(crate::SortKey::TotalTime), "SELECT * FROM spiky");
        assert_eq!(first(crate::SortKey::P99), "SELECT * FROM spiky");
        assert_eq!(report.top(crate::SortKey::Calls, 10).len(), 3);
    }

    #[test]
    fn recording_from_many_threads_loses_nothing() {
        let tracker = QueryTracker::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let tracker = &tracker;
                s.spawn(move || {
                    for i in 0..10_000u64 {
                        let sql = format!("SELECT * FROM t{} WHERE id = ?", i % 3 + t % 2);
                        tracker.record(&sql, Duration::from_micros(i % 50 + 1), false);
                    }
                });
            }
        });
        let report = tracker.report();
        assert_eq!(report.statements, 40_000);
        assert_eq!(report.queries.len(), 4);
    }
}
