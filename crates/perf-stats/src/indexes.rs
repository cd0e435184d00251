//! The indexes a database has, against those its migrations declare.

use std::fmt;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, error::DbContext};

/// An index the schema should have: the caller's own list (for example mapped from its
/// migrations' index specifications).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedIndex {
    /// The index's name.
    pub name: String,
    /// The indexed table.
    pub table: String,
    /// The indexed columns, in order.
    pub columns: Vec<String>,
}

impl ExpectedIndex {
    /// An expected index.
    ///
    /// # Examples
    ///
    /// ```
    /// let index = perf_stats::ExpectedIndex::new("idx_orders_user_status", "orders", ["user_id", "status"]);
    /// assert_eq!(index.columns, ["user_id", "status"]);
    /// ```
    pub fn new(
        name: impl Into<String>,
        table: impl Into<String>,
        columns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            table: table.into(),
            columns: columns.into_iter().map(Into::into).collect(),
        }
    }
}

/// An index found in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActualIndex {
    /// The index's name.
    pub name: String,
    /// The indexed table.
    pub table: String,
    /// The indexed key columns, in order (`<expression>` for an expression).
    pub columns: Vec<String>,
    /// Whether it enforces uniqueness.
    pub unique: bool,
    /// Whether it is the primary key's.
    pub primary: bool,
}

/// An expected index present under its name but on other columns or another table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexMismatch {
    /// What was expected.
    pub expected: ExpectedIndex,
    /// What the database has under that name.
    pub actual: ActualIndex,
}

/// The result of [`compare_indexes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexComparison {
    /// Expected indexes present as expected, by name.
    pub present: Vec<String>,
    /// Expected indexes the database lacks.
    pub missing: Vec<ExpectedIndex>,
    /// Expected names found on other columns or another table.
    pub mismatched: Vec<IndexMismatch>,
    /// Non-unique indexes nobody declared: each one slows every write to its table.
    pub unexpected: Vec<ActualIndex>,
    /// Unique and primary-key indexes not in the expected list: they enforce constraints
    /// (created with the tables) and are listed for information only.
    pub constraints: Vec<ActualIndex>,
}

impl IndexComparison {
    /// Whether every expected index is present as declared and no undeclared plain index exists.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty() && self.unexpected.is_empty()
    }
}

impl fmt::Display for IndexComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected = self.present.len() + self.missing.len() + self.mismatched.len();
        writeln!(
            f,
            "{} of {expected} expected indexes present, {} missing, {} on other columns, {} unexpected",
            self.present.len(),
            self.missing.len(),
            self.mismatched.len(),
            self.unexpected.len()
        )?;
        for index in &self.missing {
            index_line(f, "MISSING", &index.name, &index.table, &index.columns)?;
        }
        for m in &self.mismatched {
            writeln!(
                f,
                "  MISMATCH    {}: expected ON {} ({}), found ON {} ({})",
                m.expected.name,
                m.expected.table,
                m.expected.columns.join(", "),
                m.actual.table,
                m.actual.columns.join(", ")
            )?;
        }
        for index in &self.unexpected {
            index_line(f, "UNEXPECTED", &index.name, &index.table, &index.columns)?;
        }
        Ok(())
    }
}

/// One index of the listing, under its label: `  MISSING     name ON table (columns)`.
fn index_line(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    name: &str,
    table: &str,
    columns: &[String],
) -> fmt::Result {
    writeln!(
        f,
        "  {label:<11} {name} ON {table} ({})",
        columns.join(", ")
    )
}

/// Lists the indexes of the database's tables (SQLite: `sqlite_master` and its index pragmas;
/// PostgreSQL: the `pg_index` catalog of the current schema).
///
/// # Errors
///
/// [`Error::Database`] when the catalog query fails; [`Error::UnsupportedBackend`] on MySQL.
pub async fn list_indexes(db: &impl ConnectionTrait) -> Result<Vec<ActualIndex>> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => {
            r#"SELECT m.tbl_name AS table_name, il.name AS index_name, il."unique" AS is_unique,
                      il.origin = 'pk' AS is_primary, COALESCE(ii.name, '<expression>') AS column_name
               FROM sqlite_master m
               JOIN pragma_index_list(m.name) il
               JOIN pragma_index_info(il.name) ii
               WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\'
               ORDER BY m.tbl_name, il.name, ii.seqno"#
        }
        DbBackend::Postgres => {
            r#"SELECT t.relname::text AS table_name, i.relname::text AS index_name,
                      ix.indisunique AS is_unique, ix.indisprimary AS is_primary,
                      COALESCE(a.attname::text, '<expression>') AS column_name
               FROM pg_index ix
               JOIN pg_class i ON i.oid = ix.indexrelid
               JOIN pg_class t ON t.oid = ix.indrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
               CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
               WHERE n.nspname = current_schema() AND k.ord <= ix.indnkeyatts
               ORDER BY t.relname, i.relname, k.ord"#
        }
        other => {
            return Err(Error::UnsupportedBackend {
                backend: format!("{other:?}"),
            });
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .doing("listing the database's indexes")?;
    let mut indexes: Vec<ActualIndex> = Vec::new();
    for row in rows {
        let read = |column: &str| {
            row.try_get::<String>("", column)
                .doing(format!("reading {column} of the index listing"))
        };
        let table = read("table_name")?;
        let name = read("index_name")?;
        let column = read("column_name")?;
        // SQLite answers booleans as integers, PostgreSQL as booleans.
        let flag = |column: &str| {
            row.try_get::<bool>("", column)
                .or_else(|_| row.try_get::<i64>("", column).map(|v| v != 0))
                .doing(format!("reading {column} of the index listing"))
        };
        let unique = flag("is_unique")?;
        let primary = flag("is_primary")?;
        match indexes.last_mut() {
            Some(last) if last.name == name && last.table == table => last.columns.push(column),
            _ => indexes.push(ActualIndex {
                name,
                table,
                columns: vec![column],
                unique,
                primary,
            }),
        }
    }
    Ok(indexes)
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Compares the database's indexes with `expected`: which are present, missing, on other
/// columns, and which plain indexes nobody declared. Names compare case-insensitively.
///
/// # Errors
///
/// As [`list_indexes`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use perf_stats::{ExpectedIndex, compare_indexes};
/// use sea_orm::ConnectionTrait;
///
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// db.execute_unprepared(
///     "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, status TEXT, note TEXT);
///      CREATE INDEX idx_orders_note ON orders (note);",
/// )
/// .await?;
/// let expected = [ExpectedIndex::new("idx_orders_user_status", "orders", ["user_id", "status"])];
/// let comparison = compare_indexes(&db, &expected).await?;
/// assert_eq!(comparison.missing, expected);
/// assert_eq!(comparison.unexpected[0].name, "idx_orders_note");
/// assert!(!comparison.is_clean());
/// # Ok(())
/// # }
/// ```
pub async fn compare_indexes(
    db: &impl ConnectionTrait,
    expected: &[ExpectedIndex],
) -> Result<IndexComparison> {
    let actual = list_indexes(db).await?;
    let mut comparison = IndexComparison {
        present: Vec::new(),
        missing: Vec::new(),
        mismatched: Vec::new(),
        unexpected: Vec::new(),
        constraints: Vec::new(),
    };
    for want in expected {
        match actual.iter().find(|a| same(&a.name, &want.name)) {
            None => comparison.missing.push(want.clone()),
            Some(found)
                if same(&found.table, &want.table)
                    && same_columns(&found.columns, &want.columns) =>
            {
                comparison.present.push(want.name.clone());
            }
            Some(found) => comparison.mismatched.push(IndexMismatch {
                expected: want.clone(),
                actual: found.clone(),
            }),
        }
    }
    for index in actual {
        if expected.iter().any(|e| same(&e.name, &index.name)) {
            continue;
        }
        if index.unique || index.primary {
            comparison.constraints.push(index);
        } else {
            comparison.unexpected.push(index);
        }
    }
    Ok(comparison)
}
