//! Query plans of the caller's hot queries: which index serves each, which scan or sort, and
//! the composite index that would fix a scan.

mod analysis;
mod postgres;
mod sqlite;

use std::fmt;

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionSession, TransactionTrait};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    error::DbContext,
    indexes::{ActualIndex, list_indexes},
};
use analysis::QueryShape;

/// A query whose plan matters, with representative parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct HotQuery {
    /// A name for reports (`"user bookings by status"`).
    pub name: String,
    /// The statement, built for the backend it will be explained on.
    pub statement: Statement,
}

impl HotQuery {
    /// A hot query from a sea-orm statement (for example `query.build(backend)` of a select).
    pub fn new(name: impl Into<String>, statement: Statement) -> Self {
        Self {
            name: name.into(),
            statement,
        }
    }
}

/// How [`explain`] asks for plans.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanOptions {
    /// On PostgreSQL, explain with `enable_seqscan = off` (set for one rolled-back transaction).
    ///
    /// PostgreSQL's planner rightly reads a small table from start to end rather than through an
    /// index, so on test or development data every query "scans" whatever the indexes. With
    /// sequential scans disabled the planner uses an index whenever one can serve the query, and
    /// still scans when none can: the plan then answers "could an index serve this?", which is
    /// what an index check asks. Turn it off on production-sized data to see the plans the
    /// planner really picks. Default: on. SQLite's planner prefers indexes regardless of size.
    pub postgres_disable_seqscan: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            postgres_disable_seqscan: true,
        }
    }
}

impl PlanOptions {
    /// Explain with the planner's own choices, sequential scans allowed.
    pub fn realistic() -> Self {
        Self {
            postgres_disable_seqscan: false,
        }
    }
}

/// How one step of a plan reads its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// A lookup through an index's key: the index serves the filter.
    IndexSearch {
        /// The index (`INTEGER PRIMARY KEY` for SQLite's rowid).
        index: String,
        /// Whether the index alone answers, without reading the table.
        covering: bool,
    },
    /// Reads a whole index: no key lookup, but rows in index order.
    FullIndexScan {
        /// The index.
        index: String,
        /// Whether the index alone answers.
        covering: bool,
    },
    /// Reads the whole table.
    FullScan,
    /// SQLite builds a temporary index for this one statement, because no index fits: a missing
    /// index.
    AutomaticIndex {
        /// The columns SQLite indexed.
        columns: Vec<String>,
    },
    /// Rows are sorted or grouped in a temporary structure rather than read in index order.
    TempSort {
        /// What for: `ORDER BY`, `GROUP BY`, `DISTINCT`.
        purpose: String,
    },
    /// Anything else (subqueries, constant rows, joins' own nodes).
    Other,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// The table read, aliases resolved, when the step reads one.
    pub table: Option<String>,
    /// How it is read.
    pub access: Access,
    /// The database's own words.
    pub detail: String,
}

/// The outcome for one hot query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanVerdict {
    /// Every filtered table is read through an index.
    Indexed,
    /// The query filters nothing (a full listing): no index is expected.
    Unfiltered,
    /// A table the query filters is read whole.
    FullScan,
    /// SQLite had to build a temporary index: an index is missing.
    AutomaticIndex,
}

/// A composite index that would serve a query that scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSuggestion {
    /// The table.
    pub table: String,
    /// The columns, equality filters first, then a range or the sort order.
    pub columns: Vec<String>,
    /// A name following `idx_<table>_<columns>`.
    pub name: String,
    /// `CREATE INDEX` for SQLite and PostgreSQL.
    pub sql: String,
    /// The same as a sea-orm migration step, ready to paste into `up`.
    pub migration: String,
    /// An existing index on these leading columns that the planner did not use, if any.
    pub existing_index: Option<String>,
}

impl IndexSuggestion {
    fn new(table: &str, columns: Vec<String>) -> Self {
        let mut name = format!("idx_{table}_{}", columns.join("_"));
        // PostgreSQL truncates identifiers at 63 bytes; do it visibly.
        while name.len() > 63 {
            name.pop();
        }
        let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let sql = format!(
            "CREATE INDEX {} ON {} ({});",
            quoted(&name),
            quoted(table),
            columns
                .iter()
                .map(|c| quoted(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut migration = format!(
            "manager\n    .create_index(\n        Index::create()\n            .name({name:?})\n            .table(Alias::new({table:?}))\n"
        );
        for column in &columns {
            migration.push_str(&format!("            .col(Alias::new({column:?}))\n"));
        }
        migration.push_str("            .to_owned(),\n    )\n    .await?;");
        Self {
            table: table.to_owned(),
            columns,
            name,
            sql,
            migration,
            existing_index: None,
        }
    }
}

/// The plan of one hot query and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanReport {
    /// The hot query's name.
    pub name: String,
    /// Its SQL.
    pub sql: String,
    /// The outcome.
    pub verdict: PlanVerdict,
    /// Indexes used for lookups.
    pub indexes_used: Vec<String>,
    /// Filtered tables read whole.
    pub full_scans: Vec<String>,
    /// Whether rows are sorted in a temporary structure.
    pub temp_sort: bool,
    /// Whether SQLite builds an automatic index.
    pub automatic_index: bool,
    /// Indexes that would serve the query, when it scans.
    pub suggestions: Vec<IndexSuggestion>,
    /// The plan's steps.
    pub steps: Vec<PlanStep>,
}

impl PlanReport {
    fn assess(name: &str, sql: &str, steps: Vec<PlanStep>, shape: &QueryShape) -> Self {
        let mut report = Self {
            name: name.to_owned(),
            sql: sql.to_owned(),
            verdict: PlanVerdict::Unfiltered,
            indexes_used: Vec::new(),
            full_scans: Vec::new(),
            temp_sort: false,
            automatic_index: false,
            suggestions: Vec::new(),
            steps: Vec::new(),
        };
        let suggest = |table: &str, columns: Vec<String>, report: &mut Self| {
            if !columns.is_empty()
                && !report
                    .suggestions
                    .iter()
                    .any(|s| s.table == table && s.columns == columns)
            {
                report
                    .suggestions
                    .push(IndexSuggestion::new(table, columns));
            }
        };
        for step in &steps {
            match (&step.access, step.table.as_deref()) {
                (Access::IndexSearch { index, .. }, _) if !report.indexes_used.contains(index) => {
                    report.indexes_used.push(index.clone());
                }
                (Access::FullScan | Access::FullIndexScan { .. }, Some(table))
                    if shape.is_filtered(table) =>
                {
                    if !report.full_scans.iter().any(|t| t == table) {
                        report.full_scans.push(table.to_owned());
                    }
                    suggest(table, shape.suggested_columns(table), &mut report);
                }
                // An automatic index over a derived table (a materialised subquery) indexes a
                // few rows the statement computed itself; no CREATE INDEX can replace it.
                (Access::AutomaticIndex { .. }, Some(table)) if !shape.names_table(table) => {}
                (Access::AutomaticIndex { columns }, table) => {
                    report.automatic_index = true;
                    if let Some(table) = table {
                        let mut wanted = shape.suggested_columns(table);
                        if wanted.is_empty() {
                            wanted = columns.clone();
                        }
                        suggest(table, wanted, &mut report);
                    }
                }
                (Access::TempSort { .. }, _) => report.temp_sort = true,
                _ => {}
            }
        }
        report.verdict = if !report.full_scans.is_empty() {
            PlanVerdict::FullScan
        } else if report.automatic_index {
            PlanVerdict::AutomaticIndex
        } else if !report.indexes_used.is_empty() {
            PlanVerdict::Indexed
        } else {
            PlanVerdict::Unfiltered
        };
        report.steps = steps;
        report
    }

    /// Whether the query needs attention: a scan of a filtered table or an automatic index.
    pub fn is_problem(&self) -> bool {
        matches!(
            self.verdict,
            PlanVerdict::FullScan | PlanVerdict::AutomaticIndex
        )
    }
}

/// Explains one hot query and assesses its plan.
///
/// SQLite: `EXPLAIN QUERY PLAN`. PostgreSQL: `EXPLAIN (FORMAT JSON)`, by default with sequential
/// scans disabled (see [`PlanOptions`]). The statement runs with its own parameters, so the plan
/// is the one those values get. Nothing is executed beyond the planner.
///
/// # Errors
///
/// [`Error::Database`] when the EXPLAIN fails (a statement built for another backend fails
/// here), [`Error::PlanFormat`] when the plan cannot be read, [`Error::UnsupportedBackend`] on
/// MySQL.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use perf_stats::{HotQuery, PlanOptions, PlanVerdict, explain};
/// use sea_orm::{ConnectionTrait, Statement};
///
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, status TEXT)")
///     .await?;
/// let query = HotQuery::new(
///     "open orders of a user",
///     Statement::from_sql_and_values(
///         db.get_database_backend(),
///         "SELECT * FROM orders WHERE user_id = ? AND status = ?",
///         [7.into(), "open".into()],
///     ),
/// );
/// let plan = explain(&db, &query, &PlanOptions::default()).await?;
/// assert_eq!(plan.verdict, PlanVerdict::FullScan);
/// assert_eq!(plan.suggestions[0].columns, ["user_id", "status"]);
/// assert!(plan.suggestions[0].migration.contains(r#".col(Alias::new("status"))"#));
///
/// db.execute_unprepared(&plan.suggestions[0].sql).await?;
/// assert_eq!(explain(&db, &query, &PlanOptions::default()).await?.verdict, PlanVerdict::Indexed);
/// # Ok(())
/// # }
/// ```
pub async fn explain<C>(db: &C, query: &HotQuery, options: &PlanOptions) -> Result<PlanReport>
where
    C: ConnectionTrait + TransactionTrait,
{
    let backend = db.get_database_backend();
    let shape = QueryShape::parse(&query.statement.sql);
    let explained = |prefix: &str| Statement {
        sql: format!("{prefix} {}", query.statement.sql),
        values: query.statement.values.clone(),
        db_backend: backend,
    };
    let doing = || format!("explaining {:?}", query.name);
    let steps = match backend {
        DbBackend::Sqlite => {
            // Two caches can hand back a plan for indexes that no longer exist. A connection
            // plans with its copy of the schema, refreshed only when a statement reads the
            // database (EXPLAIN does not): reading sqlite_master refreshes it. And a prepared
            // EXPLAIN from sqlx's statement cache is never invalidated by a schema change (it
            // holds no transaction that would notice): naming the schema version in the text
            // gives each schema its own cache entry. Both in one transaction, so on one
            // connection.
            let txn = db.begin().await.doing(doing())?;
            let version: i64 = txn
                .query_one_raw(Statement::from_string(
                    backend,
                    "SELECT (SELECT schema_version FROM pragma_schema_version), count(*) \
                     FROM sqlite_master",
                ))
                .await
                .doing(doing())?
                .map(|row| row.try_get_by_index(0))
                .transpose()
                .doing(doing())?
                .unwrap_or_default();
            let rows = txn
                .query_all_raw(explained(&format!(
                    "EXPLAIN QUERY PLAN /* schema version {version} */"
                )))
                .await
                .doing(doing())?;
            txn.rollback().await.doing(doing())?;
            let mut steps = Vec::with_capacity(rows.len());
            for row in rows {
                let detail: String = row
                    .try_get("", "detail")
                    .doing(format!("reading the plan of {:?}", query.name))?;
                steps.push(sqlite::step(&detail, &shape));
            }
            steps
        }
        DbBackend::Postgres => {
            let statement = explained("EXPLAIN (FORMAT JSON)");
            let row = if options.postgres_disable_seqscan {
                let txn = db.begin().await.doing(doing())?;
                txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                    .await
                    .doing(doing())?;
                let row = txn.query_one_raw(statement).await.doing(doing())?;
                txn.rollback().await.doing(doing())?;
                row
            } else {
                db.query_one_raw(statement).await.doing(doing())?
            };
            let plan_format = |reason: String| Error::PlanFormat {
                query: query.name.clone(),
                reason,
            };
            let row = row.ok_or_else(|| plan_format("EXPLAIN returned no row".to_owned()))?;
            let plan: serde_json::Value = row
                .try_get_by_index(0)
                .map_err(|e| plan_format(e.to_string()))?;
            postgres::steps(&plan, &shape).map_err(plan_format)?
        }
        other => {
            return Err(Error::UnsupportedBackend {
                backend: format!("{other:?}"),
            });
        }
    };
    Ok(PlanReport::assess(
        &query.name,
        &query.statement.sql,
        steps,
        &shape,
    ))
}

/// The plans of a set of hot queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCheck {
    /// One report per hot query, in the order given.
    pub queries: Vec<PlanReport>,
    /// Queries whose filtered tables are all read through an index.
    pub indexed: usize,
    /// Queries that filter (all but [`PlanVerdict::Unfiltered`]).
    pub filtered: usize,
    /// `indexed / filtered`, 1.0 when nothing filters. The original system's target: above 0.95.
    pub share_indexed: f64,
    /// Whether PostgreSQL plans were taken with sequential scans disabled.
    pub postgres_seqscan_disabled: bool,
}

impl PlanCheck {
    /// Whether a hot query scans a filtered table or needs an automatic index.
    pub fn has_problems(&self) -> bool {
        self.queries.iter().any(PlanReport::is_problem)
    }
}

/// Explains every hot query ([`explain`]) and sums up: the share of hot queries served by an
/// index, and suggestions for those that scan (each noting an existing index on the same
/// leading columns, which would mean the planner chose not to use it).
///
/// # Errors
///
/// As [`explain`] and [`list_indexes`](crate::list_indexes).
pub async fn check_plans<C>(
    db: &C,
    queries: &[HotQuery],
    options: &PlanOptions,
) -> Result<PlanCheck>
where
    C: ConnectionTrait + TransactionTrait,
{
    let existing = list_indexes(db).await?;
    let mut reports = Vec::with_capacity(queries.len());
    for query in queries {
        let mut report = explain(db, query, options).await?;
        for suggestion in &mut report.suggestions {
            suggestion.existing_index = covering_index(&existing, suggestion);
        }
        reports.push(report);
    }
    let indexed = reports
        .iter()
        .filter(|r| r.verdict == PlanVerdict::Indexed)
        .count();
    let filtered = reports
        .iter()
        .filter(|r| r.verdict != PlanVerdict::Unfiltered)
        .count();
    Ok(PlanCheck {
        queries: reports,
        indexed,
        filtered,
        share_indexed: if filtered == 0 {
            1.0
        } else {
            indexed as f64 / filtered as f64
        },
        postgres_seqscan_disabled: options.postgres_disable_seqscan
            && db.get_database_backend() == DbBackend::Postgres,
    })
}

fn covering_index(existing: &[ActualIndex], suggestion: &IndexSuggestion) -> Option<String> {
    existing
        .iter()
        .find(|index| {
            index.table.eq_ignore_ascii_case(&suggestion.table)
                && index.columns.len() >= suggestion.columns.len()
                && index
                    .columns
                    .iter()
                    .zip(&suggestion.columns)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
        })
        .map(|index| index.name.clone())
}

impl fmt::Display for PlanCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .queries
            .iter()
            .map(|q| q.name.chars().count())
            .max()
            .unwrap_or(0);
        for q in &self.queries {
            let status = match q.verdict {
                PlanVerdict::Indexed => "OK",
                PlanVerdict::Unfiltered => "OK (no filter)",
                PlanVerdict::FullScan => "FULL SCAN",
                PlanVerdict::AutomaticIndex => "AUTO INDEX",
            };
            let mut how = match q.verdict {
                PlanVerdict::FullScan => vec![format!("scans {}", q.full_scans.join(", "))],
                _ if q.indexes_used.is_empty() => Vec::new(),
                _ => vec![format!("uses {}", q.indexes_used.join(", "))],
            };
            if q.temp_sort {
                how.push("sorts in a temporary structure".to_owned());
            }
            writeln!(f, "  {status:<14} {:<width$}  {}", q.name, how.join("; "))?;
            for s in &q.suggestions {
                writeln!(f, "      suggested index: {}", s.sql)?;
                if let Some(existing) = &s.existing_index {
                    writeln!(
                        f,
                        "      (the existing index {existing} has these columns; the planner did not use it)"
                    )?;
                }
            }
        }
        writeln!(
            f,
            "hot queries served by an index: {}/{} ({:.1} %; target above 95 %){}",
            self.indexed,
            self.filtered,
            self.share_indexed * 100.0,
            if self.postgres_seqscan_disabled {
                "; PostgreSQL plans taken with enable_seqscan = off"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestion_renders_sql_and_migration() {
        let s = IndexSuggestion::new("bookings", vec!["user_id".into(), "status".into()]);
        assert_eq!(s.name, "idx_bookings_user_id_status");
        assert_eq!(
            s.sql,
            r#"CREATE INDEX "idx_bookings_user_id_status" ON "bookings" ("user_id", "status");"#
        );
        assert_eq!(
            s.migration,
            r#"manager
    .create_index(
        Index::create()
            .name("idx_bookings_user_id_status")
            .table(Alias::new("bookings"))
            .col(Alias::new("user_id"))
            .col(Alias::new("status"))
            .to_owned(),
    )
    .await?;"#
        );
        let long = IndexSuggestion::new("t", vec!["a_very_long_column_name".into(); 4]);
        assert_eq!(long.name.len(), 63);
    }

    #[test]
    fn verdicts() {
        let shape =
            QueryShape::parse("SELECT * FROM bookings WHERE status = ? ORDER BY created_at");
        let scan = PlanStep {
            table: Some("bookings".into()),
            access: Access::FullScan,
            detail: "SCAN bookings".into(),
        };
        let sort = PlanStep {
            table: None,
            access: Access::TempSort {
                purpose: "ORDER BY".into(),
            },
            detail: "USE TEMP B-TREE FOR ORDER BY".into(),
        };
        let report = PlanReport::assess("q", "sql", vec![scan.clone(), sort], &shape);
        assert_eq!(report.verdict, PlanVerdict::FullScan);
        assert!(report.temp_sort);
        assert_eq!(report.suggestions[0].columns, ["status", "created_at"]);

        let unfiltered = QueryShape::parse("SELECT * FROM bookings");
        let report = PlanReport::assess("q", "sql", vec![scan], &unfiltered);
        assert_eq!(report.verdict, PlanVerdict::Unfiltered);
        assert!(report.suggestions.is_empty());
    }

    #[test]
    fn an_automatic_index_on_a_derived_table_is_no_problem_but_on_a_table_it_is() {
        let automatic = |table: &str| PlanStep {
            table: Some(table.into()),
            access: Access::AutomaticIndex {
                columns: vec!["room_type_id".into()],
            },
            detail: format!("SEARCH {table} USING AUTOMATIC COVERING INDEX (room_type_id=?)"),
        };
        let search = PlanStep {
            table: Some("room_inventory".into()),
            access: Access::IndexSearch {
                index: "uq_room_inventory_room_type_date".into(),
                covering: false,
            },
            detail: "SEARCH room_inventory USING INDEX uq_room_inventory_room_type_date".into(),
        };
        let shape = QueryShape::parse(
            "SELECT rt.id FROM room_types rt LEFT JOIN (SELECT room_type_id, SUM(total_rooms) AS total \
             FROM room_inventory WHERE date >= ? GROUP BY room_type_id) a ON a.room_type_id = rt.id",
        );
        let derived = PlanReport::assess("q", "sql", vec![search.clone(), automatic("a")], &shape);
        assert_eq!(derived.verdict, PlanVerdict::Indexed);
        assert!(derived.suggestions.is_empty());

        let joined = QueryShape::parse(
            "SELECT rt.id FROM room_types rt JOIN bookings b ON b.room_type_id = rt.id WHERE b.status = ?",
        );
        let base = PlanReport::assess("q", "sql", vec![search, automatic("bookings")], &joined);
        assert_eq!(base.verdict, PlanVerdict::AutomaticIndex);
        assert_eq!(base.suggestions[0].table, "bookings");
    }
}
