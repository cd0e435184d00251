//! What the administrator routes answer for the libraries' own reports, in the API's camelCase.
//!
//! query-cache, perf-stats and backup serialise their reports in snake_case for their command
//! lines (`hotel-stats --json`, `hotel-backup monitor --json`); the HTTP API writes every JSON
//! body in camelCase, so it maps them here, field for field, and these types are what its
//! OpenAPI document describes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The cache's statistics since start (or the last reset).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatsView {
    /// Lookups answered from the cache (fresh or stale).
    pub hits: u64,
    /// Lookups that had to load or wait for a load.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 without lookups.
    pub hit_ratio: f64,
    /// `hits / entries`, 0 when the cache is empty.
    pub hits_per_entry: f64,
    /// Hits served a stale value while it was refreshed (included in `hits`).
    pub stale_hits: u64,
    /// Loader runs that finished.
    pub loads: u64,
    /// Loader runs that failed (included in `loads`).
    pub load_errors: u64,
    /// Loader runs abandoned by their caller.
    pub abandoned_loads: u64,
    /// Loaded values not stored because an invalidation overtook them.
    pub discarded_loads: u64,
    /// Values too heavy to store.
    pub rejected: u64,
    /// Callers that joined a load already running for their key.
    pub single_flight_joins: u64,
    /// Time spent in loaders, in milliseconds.
    pub total_load_time_ms: f64,
    /// Mean loader time, in milliseconds.
    pub mean_load_time_ms: f64,
    /// Values stored.
    pub inserts: u64,
    /// Entries evicted for capacity.
    pub evictions: u64,
    /// Entries removed after their time to live.
    pub expirations: u64,
    /// Entries removed by invalidation.
    pub invalidations: u64,
    /// Entries held now.
    pub entries: u64,
    /// Most entries the cache holds.
    pub capacity: u64,
    /// `entries / capacity` in percent.
    pub fill_percent: f64,
    /// Sum of the entries' weights (0 without a weight bound).
    pub weight: u64,
    /// The weight bound, if any.
    pub max_weight: Option<u64>,
    /// The shared Redis tier, when there is one (then the fields above describe the
    /// in-process tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2: Option<L2StatsView>,
}

/// The shared Redis tier's statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2StatsView {
    /// In-process misses answered from Redis.
    pub hits: u64,
    /// In-process misses Redis could not answer.
    pub misses: u64,
    /// Entries written by another type or schema version.
    pub schema_mismatches: u64,
    /// Entries that could not be decoded.
    pub codec_errors: u64,
    /// Redis calls that failed.
    pub errors: u64,
    /// Redis calls that timed out.
    pub timeouts: u64,
    /// Lookups that skipped Redis while it was down.
    pub bypassed: u64,
    /// Values written to Redis.
    pub writes: u64,
    /// Writes refused because an invalidation overtook them.
    pub stale_writes_refused: u64,
    /// Loads not shared through Redis.
    pub unshared_loads: u64,
    /// Invalidations applied to Redis.
    pub invalidations_sent: u64,
    /// Invalidation messages published.
    pub messages_sent: u64,
    /// Invalidation messages from other instances applied.
    pub messages_received: u64,
    /// Invalidations not yet applied to Redis.
    pub invalidations_pending: u64,
    /// Times the invalidation subscription was re-established.
    pub reconnects: u64,
    /// Times the in-process tier was cleared because messages may have been lost.
    pub l1_clears: u64,
    /// Whether the last Redis call succeeded.
    pub connected: bool,
    /// Whether the invalidation subscription is up.
    pub subscribed: bool,
    /// Longest an instance can serve a value whose invalidation message was lost, in ms.
    pub staleness_bound_ms: u64,
    /// Timeout of one Redis call, in ms.
    pub timeout_ms: u64,
}

impl From<&query_cache::CacheStats> for CacheStatsView {
    fn from(s: &query_cache::CacheStats) -> Self {
        Self {
            hits: s.hits,
            misses: s.misses,
            hit_ratio: s.hit_ratio,
            hits_per_entry: s.hits_per_entry,
            stale_hits: s.stale_hits,
            loads: s.loads,
            load_errors: s.load_errors,
            abandoned_loads: s.abandoned_loads,
            discarded_loads: s.discarded_loads,
            rejected: s.rejected,
            single_flight_joins: s.single_flight_joins,
            total_load_time_ms: millis(s.total_load_time),
            mean_load_time_ms: millis(s.mean_load_time),
            inserts: s.inserts,
            evictions: s.evictions,
            expirations: s.expirations,
            invalidations: s.invalidations,
            entries: s.entries,
            capacity: s.capacity,
            fill_percent: s.fill_percent,
            weight: s.weight,
            max_weight: s.max_weight,
            l2: s.l2.as_ref().map(|l2| L2StatsView {
                hits: l2.hits,
                misses: l2.misses,
                schema_mismatches: l2.schema_mismatches,
                codec_errors: l2.codec_errors,
                errors: l2.errors,
                timeouts: l2.timeouts,
                bypassed: l2.bypassed,
                writes: l2.writes,
                stale_writes_refused: l2.stale_writes_refused,
                unshared_loads: l2.unshared_loads,
                invalidations_sent: l2.invalidations_sent,
                messages_sent: l2.messages_sent,
                messages_received: l2.messages_received,
                invalidations_pending: l2.invalidations_pending,
                reconnects: l2.reconnects,
                l1_clears: l2.l1_clears,
                connected: l2.connected,
                subscribed: l2.subscribed,
                staleness_bound_ms: l2.staleness_bound_ms,
                timeout_ms: l2.timeout_ms,
            }),
        }
    }
}

/// The kind of a statement.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    /// `SELECT`.
    Select,
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// Anything else.
    Other,
}

impl From<perf_stats::Operation> for StatementKind {
    fn from(operation: perf_stats::Operation) -> Self {
        match operation {
            perf_stats::Operation::Select => Self::Select,
            perf_stats::Operation::Insert => Self::Insert,
            perf_stats::Operation::Update => Self::Update,
            perf_stats::Operation::Delete => Self::Delete,
            perf_stats::Operation::Other => Self::Other,
        }
    }
}

/// Statistics of one query shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatsView {
    /// The shape's stable id (16 hex digits).
    pub fingerprint_id: String,
    /// The normalised SQL of the shape.
    pub fingerprint: String,
    /// The kind of statement.
    pub operation: StatementKind,
    /// Executions.
    pub calls: u64,
    /// Executions that failed.
    pub errors: u64,
    /// Executions at or over the slow-query threshold.
    pub slow: u64,
    /// Rows returned or affected, when known.
    pub rows: Option<u64>,
    /// Time in all executions, in ms.
    pub total_ms: f64,
    /// Mean time, in ms.
    pub mean_ms: f64,
    /// Median time, in ms.
    pub p50_ms: f64,
    /// 95th percentile, in ms.
    pub p95_ms: f64,
    /// 99th percentile, in ms.
    pub p99_ms: f64,
    /// Slowest execution, in ms.
    pub max_ms: f64,
}

/// One statement over the slow-query threshold.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlowQueryView {
    /// The shape's stable id.
    pub fingerprint_id: String,
    /// The statement with every literal written `?`.
    pub sql: String,
    /// How long it took, in ms.
    pub duration_ms: f64,
    /// Whether it failed.
    pub failed: bool,
    /// When it finished.
    pub at: DateTime<Utc>,
}

/// A query shape repeated at least the N+1 threshold within one request.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NPlusOneView {
    /// The repeated shape's stable id.
    pub fingerprint_id: String,
    /// The normalised SQL of the repeated shape.
    pub fingerprint: String,
    /// The kind of statement.
    pub operation: StatementKind,
    /// The scope: the route.
    pub scope: String,
    /// Scopes with this label that repeated this shape.
    pub occurrences: u64,
    /// Most repetitions in one scope.
    pub max_repeats: u32,
    /// Repetitions in the most recent such scope.
    pub last_repeats: u32,
    /// When the most recent such scope ended.
    pub last_seen: DateTime<Utc>,
}

/// The query statistics: per-shape figures, slow queries and N+1 findings.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryReportView {
    /// Start of the period.
    pub since: DateTime<Utc>,
    /// When this report was made.
    pub generated_at: DateTime<Utc>,
    /// The slow-query threshold, in ms.
    pub slow_threshold_ms: f64,
    /// Repetitions within one request that count as N+1.
    pub n_plus_one_threshold: u32,
    /// Statements executed.
    pub statements: u64,
    /// Statements that failed.
    pub errors: u64,
    /// Statements at or over the slow-query threshold.
    pub slow_statements: u64,
    /// Time in the database, in ms.
    pub database_time_ms: f64,
    /// Every shape.
    pub queries: Vec<QueryStatsView>,
    /// The most recent slow statements.
    pub slow_queries: Vec<SlowQueryView>,
    /// N+1 findings.
    pub n_plus_one: Vec<NPlusOneView>,
}

impl From<&perf_stats::QueryReport> for QueryReportView {
    fn from(r: &perf_stats::QueryReport) -> Self {
        Self {
            since: r.since,
            generated_at: r.generated_at,
            slow_threshold_ms: millis(r.slow_threshold),
            n_plus_one_threshold: r.n_plus_one_threshold,
            statements: r.statements,
            errors: r.errors,
            slow_statements: r.slow_statements,
            database_time_ms: millis(r.database_time),
            queries: r
                .queries
                .iter()
                .map(|q| QueryStatsView {
                    fingerprint_id: q.fingerprint_id.to_string(),
                    fingerprint: q.fingerprint.clone(),
                    operation: q.operation.into(),
                    calls: q.calls,
                    errors: q.errors,
                    slow: q.slow,
                    rows: q.rows,
                    total_ms: millis(q.total),
                    mean_ms: millis(q.mean),
                    p50_ms: millis(q.p50),
                    p95_ms: millis(q.p95),
                    p99_ms: millis(q.p99),
                    max_ms: millis(q.max),
                })
                .collect(),
            slow_queries: r
                .slow_queries
                .iter()
                .map(|q| SlowQueryView {
                    fingerprint_id: q.fingerprint_id.to_string(),
                    sql: q.sql.clone(),
                    duration_ms: millis(q.duration),
                    failed: q.failed,
                    at: q.at,
                })
                .collect(),
            n_plus_one: r
                .n_plus_one
                .iter()
                .map(|n| NPlusOneView {
                    fingerprint_id: n.fingerprint_id.to_string(),
                    fingerprint: n.fingerprint.clone(),
                    operation: n.operation.into(),
                    scope: n.scope.clone(),
                    occurrences: n.occurrences,
                    max_repeats: n.max_repeats,
                    last_repeats: n.last_repeats,
                    last_seen: n.last_seen,
                })
                .collect(),
        }
    }
}

/// A Nagios status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    /// Healthy.
    Ok,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
    /// Could not be assessed.
    Unknown,
}

impl From<backup::monitor::Status> for HealthStatus {
    fn from(status: backup::monitor::Status) -> Self {
        match status {
            backup::monitor::Status::Ok => Self::Ok,
            backup::monitor::Status::Warning => Self::Warning,
            backup::monitor::Status::Critical => Self::Critical,
            backup::monitor::Status::Unknown => Self::Unknown,
        }
    }
}

/// One backup health check.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckView {
    /// A stable name: `directory`, `age`, `last-run`, `size`, `count`, `verification`, `disk`,
    /// `replication`, `manifests`, `leftovers`.
    pub name: String,
    /// Its status.
    pub status: HealthStatus,
    /// What was found, for a person.
    pub message: String,
}

/// Whether the latest run of one backup operation succeeded.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRunView {
    /// The operation: `create`, `verify`, `prune`, `restore` or `pre-migration`.
    pub operation: String,
    /// Whether it succeeded.
    pub ok: bool,
}

/// The figures behind the backup checks.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupFiguresView {
    /// Usable backups.
    pub backups: u64,
    /// When the newest verified backup was taken.
    pub newest_verified_at: Option<DateTime<Utc>>,
    /// Its age in seconds.
    pub newest_verified_age_seconds: Option<u64>,
    /// The newest backup's snapshot size.
    pub newest_raw_bytes: Option<u64>,
    /// The newest backup's file size.
    pub newest_compressed_bytes: Option<u64>,
    /// Free space on the backup directory's disk.
    pub free_bytes: Option<u64>,
    /// The latest run of each operation.
    pub last_run_ok: Vec<LastRunView>,
    /// For a replicated database: the age of the newest shipped change, in seconds.
    pub replication_lag_seconds: Option<f64>,
    /// Start of the newest generation's restorable window.
    pub restorable_from: Option<DateTime<Utc>>,
    /// Its end.
    pub restorable_to: Option<DateTime<Utc>>,
    /// Generations in the repository.
    pub generations: u64,
    /// Scratch state left by interrupted runs.
    pub leftovers: u64,
}

/// The health of the backup directory, as `hotel-backup monitor` assesses it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHealthView {
    /// The worst status of all checks.
    pub status: HealthStatus,
    /// Every check.
    pub checks: Vec<HealthCheckView>,
    /// The figures.
    pub metrics: BackupFiguresView,
    /// The clock the assessment used.
    pub assessed_at: DateTime<Utc>,
}

impl From<&backup::monitor::HealthReport> for BackupHealthView {
    fn from(r: &backup::monitor::HealthReport) -> Self {
        let m = &r.metrics;
        Self {
            status: r.status.into(),
            checks: r
                .checks
                .iter()
                .map(|c| HealthCheckView {
                    name: c.name.to_owned(),
                    status: c.status.into(),
                    message: c.message.clone(),
                })
                .collect(),
            metrics: BackupFiguresView {
                backups: m.backups as u64,
                newest_verified_at: m.newest_verified_at,
                newest_verified_age_seconds: m.newest_verified_age_seconds,
                newest_raw_bytes: m.newest_raw_bytes,
                newest_compressed_bytes: m.newest_compressed_bytes,
                free_bytes: m.free_bytes,
                last_run_ok: m
                    .last_run_ok
                    .iter()
                    .map(|(operation, ok)| LastRunView {
                        operation: operation.to_string(),
                        ok: *ok,
                    })
                    .collect(),
                replication_lag_seconds: m.replication_lag_seconds,
                restorable_from: m.restorable_from,
                restorable_to: m.restorable_to,
                generations: m.generations as u64,
                leftovers: m.leftovers as u64,
            },
            assessed_at: r.assessed_at,
        }
    }
}
