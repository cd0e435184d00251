//! The report: per-shape statistics, slow queries and N+1 findings, for people (Display) and
//! machines (serde, durations as milliseconds).

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fingerprint::{FingerprintId, Operation};

/// Statistics of one query shape since the last [reset](crate::QueryTracker::reset).
///
/// In JSON, durations are milliseconds as floating-point numbers (`total_ms`, `p99_ms`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryStats {
    /// The shape's stable id.
    pub fingerprint_id: FingerprintId,
    /// The normalised SQL of the shape.
    pub fingerprint: String,
    /// The kind of statement.
    pub operation: Operation,
    /// Executions.
    pub calls: u64,
    /// Executions that returned an error.
    pub errors: u64,
    /// Executions at or over the slow-query threshold.
    pub slow: u64,
    /// Rows returned or affected, when the recorder knew them (the sea-orm metric callback does
    /// not; see [`QueryTracker::record_with_rows`](crate::QueryTracker::record_with_rows)).
    pub rows: Option<u64>,
    /// Time spent in all executions.
    #[serde(rename = "total_ms", with = "millis")]
    pub total: Duration,
    /// Mean time per execution.
    #[serde(rename = "mean_ms", with = "millis")]
    pub mean: Duration,
    /// Median time.
    #[serde(rename = "p50_ms", with = "millis")]
    pub p50: Duration,
    /// 95th percentile.
    #[serde(rename = "p95_ms", with = "millis")]
    pub p95: Duration,
    /// 99th percentile.
    #[serde(rename = "p99_ms", with = "millis")]
    pub p99: Duration,
    /// Slowest execution.
    #[serde(rename = "max_ms", with = "millis")]
    pub max: Duration,
}

/// One statement over the slow-query threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowQuery {
    /// The shape's stable id.
    pub fingerprint_id: FingerprintId,
    /// The statement as run, with every literal written `?` (bind values are never kept).
    pub sql: String,
    /// How long it took.
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
    /// Whether it failed.
    pub failed: bool,
    /// When it finished.
    pub at: DateTime<Utc>,
}

/// A query shape repeated at least the N+1 threshold within one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NPlusOneFinding {
    /// The repeated shape's stable id.
    pub fingerprint_id: FingerprintId,
    /// The normalised SQL of the repeated shape.
    pub fingerprint: String,
    /// The kind of statement.
    pub operation: Operation,
    /// The scope's label (for a server, typically the route).
    pub scope: String,
    /// How many scopes with this label repeated this shape.
    pub occurrences: u64,
    /// The most repetitions seen in one scope.
    pub max_repeats: u32,
    /// Repetitions in the most recent such scope.
    pub last_repeats: u32,
    /// When the most recent such scope ended.
    pub last_seen: DateTime<Utc>,
}

/// Everything a [`QueryTracker`](crate::QueryTracker) knows, as of one moment.
///
/// `Display` renders aligned tables for a terminal; serde gives the JSON that a server's admin
/// endpoint returns and `hotel-stats --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryReport {
    /// Start of the window: the tracker's creation or last reset.
    pub since: DateTime<Utc>,
    /// When this report was made.
    pub generated_at: DateTime<Utc>,
    /// The slow-query threshold in force.
    #[serde(rename = "slow_threshold_ms", with = "millis")]
    pub slow_threshold: Duration,
    /// The N+1 threshold in force.
    pub n_plus_one_threshold: u32,
    /// Statements recorded.
    pub statements: u64,
    /// Statements that failed.
    pub errors: u64,
    /// Statements at or over the slow-query threshold.
    pub slow_statements: u64,
    /// Time spent in all statements.
    #[serde(rename = "database_time_ms", with = "millis")]
    pub database_time: Duration,
    /// Every shape with at least one call, by total time, highest first.
    pub queries: Vec<QueryStats>,
    /// The most recent slow statements, newest first.
    pub slow_queries: Vec<SlowQuery>,
    /// Likely N+1 patterns, most frequent first.
    pub n_plus_one: Vec<NPlusOneFinding>,
}

/// What to rank query shapes by in [`QueryReport::top`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Total time spent: where the database time goes.
    TotalTime,
    /// 99th percentile: the worst experiences.
    P99,
    /// Number of executions: chatty code.
    Calls,
}

impl QueryReport {
    /// The `n` query shapes ranking highest by `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use perf_stats::{QueryTracker, SortKey};
    ///
    /// let tracker = QueryTracker::new();
    /// tracker.record("SELECT * FROM a", Duration::from_millis(1), false);
    /// tracker.record("SELECT * FROM b", Duration::from_millis(5), false);
    /// tracker.record("SELECT * FROM b", Duration::from_millis(5), false);
    /// let report = tracker.report();
    /// assert_eq!(report.top(SortKey::TotalTime, 1)[0].fingerprint, "SELECT * FROM b");
    /// ```
    pub fn top(&self, key: SortKey, n: usize) -> Vec<&QueryStats> {
        let mut queries: Vec<&QueryStats> = self.queries.iter().collect();
        match key {
            SortKey::TotalTime => queries.sort_by_key(|q| std::cmp::Reverse(q.total)),
            SortKey::P99 => queries.sort_by_key(|q| std::cmp::Reverse(q.p99)),
            SortKey::Calls => queries.sort_by_key(|q| std::cmp::Reverse(q.calls)),
        }
        queries.truncate(n);
        queries
    }

    /// The statistics of one shape, by id.
    pub fn query(&self, id: FingerprintId) -> Option<&QueryStats> {
        self.queries.iter().find(|q| q.fingerprint_id == id)
    }
}

/// Durations as milliseconds with microsecond precision, for tables.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Shortens `text` to `max` characters with an ellipsis.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

/// Shortens a long select list to its first column (`SELECT t.id, … FROM t WHERE …`) so that
/// a table row shows what distinguishes one shape from another, then truncates to `max`.
pub(crate) fn abbreviate(sql: &str, max: usize) -> String {
    const LONG_LIST: usize = 40;
    let short = sql
        .strip_prefix("SELECT ")
        .and_then(|rest| rest.split_once(" FROM "))
        .filter(|(list, _)| list.len() > LONG_LIST)
        .and_then(|(list, from)| {
            let (first, _) = list.split_once(", ")?;
            Some(format!("SELECT {first}, … FROM {from}"))
        });
    truncate(short.as_deref().unwrap_or(sql), max)
}

/// How many shapes `Display` lists.
const DISPLAY_TOP: usize = 20;

impl fmt::Display for QueryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} statements ({} failed, {} slow at >= {} ms) in {} ms of database time since {}",
            self.statements,
            self.errors,
            self.slow_statements,
            ms(self.slow_threshold),
            ms(self.database_time),
            self.since.format("%Y-%m-%d %H:%M:%S UTC"),
        )?;
        if !self.queries.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:>3}  {:>7} {:>6} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}  query",
                "#",
                "calls",
                "errors",
                "total ms",
                "mean ms",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms"
            )?;
            for (i, q) in self.top(SortKey::TotalTime, DISPLAY_TOP).iter().enumerate() {
                writeln!(
                    f,
                    "{:>3}  {:>7} {:>6} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                    i + 1,
                    q.calls,
                    q.errors,
                    ms(q.total),
                    ms(q.mean),
                    ms(q.p50),
                    ms(q.p95),
                    ms(q.p99),
                    ms(q.max),
                    abbreviate(&q.fingerprint, 120),
                )?;
            }
            if self.queries.len() > DISPLAY_TOP {
                writeln!(
                    f,
                    "     … and {} more shapes",
                    self.queries.len() - DISPLAY_TOP
                )?;
            }
        }
        if !self.n_plus_one.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "Likely N+1 queries (a shape repeated >= {} times in one scope):",
                self.n_plus_one_threshold
            )?;
            for n in &self.n_plus_one {
                writeln!(
                    f,
                    "  WARNING {} × in scope {:?} (seen in {} scope(s), max {} ×): {}",
                    n.last_repeats,
                    n.scope,
                    n.occurrences,
                    n.max_repeats,
                    abbreviate(&n.fingerprint, 120)
                )?;
            }
        }
        if !self.slow_queries.is_empty() {
            writeln!(f)?;
            writeln!(f, "Recent slow queries:")?;
            for s in &self.slow_queries {
                writeln!(
                    f,
                    "  {} {:>10} ms{}  {}",
                    s.at.format("%H:%M:%S%.3f"),
                    ms(s.duration),
                    if s.failed { " (failed)" } else { "" },
                    abbreviate(&s.sql, 120)
                )?;
            }
        }
        Ok(())
    }
}

/// Serde for durations as floating-point milliseconds.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_select_lists_are_abbreviated() {
        let sql = "SELECT bookings.id, bookings.user_id, bookings.room_type_id, bookings.status FROM bookings WHERE bookings.id = ?";
        assert_eq!(
            abbreviate(sql, 200),
            "SELECT bookings.id, … FROM bookings WHERE bookings.id = ?"
        );
        assert_eq!(abbreviate("SELECT a, b FROM t", 200), "SELECT a, b FROM t");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }

    #[test]
    fn durations_round_trip_through_json_as_milliseconds() {
        let slow = SlowQuery {
            fingerprint_id: FingerprintId(7),
            sql: "SELECT ?".into(),
            duration: Duration::from_micros(1_500),
            failed: false,
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let json = serde_json::to_value(&slow).unwrap();
        assert_eq!(json["duration_ms"], 1.5);
        assert_eq!(json["fingerprint_id"], "0000000000000007");
        let back: SlowQuery = serde_json::from_value(json).unwrap();
        assert_eq!(back, slow);
    }
}
