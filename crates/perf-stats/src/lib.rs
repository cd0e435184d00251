//! Query statistics for any sea-orm service: what the database does, how long it takes, and
//! where the code asks it too often.
//!
//! - **Query tracking.** A [`QueryTracker`] [attached](QueryTracker::attach) to a
//!   `DatabaseConnection` records every statement through sea-orm's metric callback, grouped by
//!   [`fingerprint`]: the SQL with whitespace, comments, literals, `$n`/`?` placeholders,
//!   `IN (…)` list lengths and multi-row `VALUES` normalised, so one query shape is one entry on
//!   SQLite and PostgreSQL alike. Per shape: calls, errors, total / mean / max and p50 / p95 /
//!   p99 from an HDR histogram ([`QueryReport`], ranked with [`QueryReport::top`]).
//!   Recording costs well under a microsecond (see `docs/PERFORMANCE.md`).
//! - **Slow queries.** Statements over a threshold (100 ms by default) are logged as tracing
//!   warnings, counted, and kept in a bounded list, without bind values.
//! - **N+1 detection.** [`QueryTracker::scope`] runs a future (a request, a job) and reports a
//!   shape repeated at least N times in it (5 by default) as a likely N+1.
//! - **Query budgets for tests.** [`QueryTracker::capture`] returns the statements a future ran;
//!   [`assert_queries!`] and [`assert_max_queries!`] fail with the numbered statements.
//! - **Indexes from real plans.** [`compare_indexes`] checks the database's indexes against the
//!   expected ones; [`explain`] and [`check_plans`] run `EXPLAIN QUERY PLAN` (SQLite) or
//!   `EXPLAIN (FORMAT JSON)` (PostgreSQL) on the caller's hot queries and say which use an index,
//!   which scan, sort in a temporary structure or need an automatic index, with a ready
//!   migration snippet for the missing index.
//! - **Statements beside sea-orm.** A library that runs some statements through another
//!   executor reports them with [`record_external`]; the tracker attached to the same pool
//!   records them like the others (budgets, scopes and N+1 detection included).
//! - **Timing by hand.** [`LatencyHistogram`] gives the same percentiles for anything timed
//!   by the caller (a whole operation, a request).
//! - **Export** (feature `prometheus`). `MetricsRegistry` renders Prometheus text: query latency histograms, slow
//!   queries, N+1 detections by operation and fingerprint (the busiest shapes by their id, the
//!   rest as `other`, re-ranked at scrape time without any series going down), plus values
//!   from any `MetricsSource` (cache statistics, pool size) and the caller's own metrics.
//!   [`QueryReport`] serialises to JSON.
//!
//! The crate knows nothing of HTTP or of any particular schema: the caller hands it connections,
//! scope labels, expected indexes and hot queries.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use perf_stats::{QueryTracker, SortKey};
//! use sea_orm::{ConnectionTrait, Statement};
//!
//! let tracker = QueryTracker::new();
//! let mut db = sea_orm::Database::connect("sqlite::memory:").await?;
//! tracker.attach(&mut db);
//! let backend = db.get_database_backend();
//! db.execute_unprepared("CREATE TABLE rooms (id INTEGER PRIMARY KEY, kind_id INTEGER)").await?;
//!
//! // A request that loads each room on its own: an N+1.
//! let (_, scope) = tracker
//!     .scope("GET /rooms", async {
//!         for id in 1..=10 {
//!             let stmt = Statement::from_sql_and_values(
//!                 backend,
//!                 "SELECT * FROM rooms WHERE id = ?",
//!                 [id.into()],
//!             );
//!             db.query_one_raw(stmt).await?;
//!         }
//!         Ok::<_, sea_orm::DbErr>(())
//!     })
//!     .await;
//! assert!(scope.has_n_plus_one());
//!
//! let report = tracker.report();
//! let top = report.top(SortKey::Calls, 1)[0];
//! assert_eq!(top.fingerprint, "SELECT * FROM rooms WHERE id = ?");
//! assert_eq!(top.calls, 10);
//! assert!(top.p50 <= top.p99);
//! assert_eq!(report.n_plus_one[0].last_repeats, 10);
//! println!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `sqlite` and `postgres` (both default): sea-orm's SQLx driver for that backend. Tracking,
//!   scopes, budgets and plans work through sea-orm on any connection; the drivers are needed
//!   to attribute [`record_external`] statements to a connection's pool and to export a pool's
//!   size. A SQLite service takes `default-features = false, features = ["sqlite"]` and
//!   compiles no PostgreSQL driver.
//! - `prometheus`: `MetricsRegistry`, the statistics in the Prometheus text format through
//!   `prometheus-client` (re-exported as `prometheus_client`).
//! - `tower`: `QueryScopeLayer`, a tower layer that runs each request of a service in a
//!   [`QueryTracker::scope`] (statement counts and N+1 detection per route) in one line.
//!
//! The crate's API takes sea-orm types (`DatabaseConnection`, `Statement`, `DbBackend`): [`sea_orm`] is
//! re-exported so a caller names the version this crate was built with.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The sea-orm this crate's API takes (connections, statements, backends): depending on it
/// through this re-export keeps the caller on the same version.
pub use sea_orm;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
mod layer;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{QueryScopeLayer, QueryScopeService};

mod budget;
mod config;
mod error;
mod external;
mod fingerprint;
mod indexes;
// The bounded `fingerprint` label of the exported metrics.
#[cfg(feature = "prometheus")]
mod labels;
mod latency;
#[cfg(feature = "prometheus")]
mod metrics;
mod plan;
mod report;
mod scope;
mod sql;
mod store;
mod tracker;

pub use budget::{CapturedStatement, QueryLog};
pub use config::{DEFAULT_LATENCY_BUCKETS, TrackerBuilder};
pub use error::{Error, Result};
pub use external::record_external;
pub use fingerprint::{Fingerprint, FingerprintId, Operation, fingerprint};
pub use indexes::{
    ActualIndex, ExpectedIndex, IndexComparison, IndexMismatch, compare_indexes, list_indexes,
};
pub use latency::{LatencyHistogram, LatencySummary};
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use metrics::{MetricsRegistry, MetricsSource, PROMETHEUS_CONTENT_TYPE, Sample, SampleKind};
pub use plan::{
    Access, HotQuery, IndexSuggestion, PlanCheck, PlanOptions, PlanReport, PlanStep, PlanVerdict,
    check_plans, explain,
};
/// The `prometheus-client` [`MetricsRegistry`] renders with, so the caller's own metrics use
/// the same version.
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use prometheus_client;
pub use report::{NPlusOneFinding, QueryReport, QueryStats, SlowQuery, SortKey};
pub use scope::{RepeatedQuery, ScopeReport, Scoped};
pub use tracker::QueryTracker;
