//! Looking at a database without backing it up.

use sea_orm::sqlx;

#[cfg(feature = "postgres")]
use crate::postgres::{self, PgUrl};
use crate::{Error, Result, Source, sqlite};

/// Whether any table of `source`, other than those in `ignore`, has at least one row.
///
/// A SQLite file that does not exist holds no data (it is not created). Use it to decide
/// whether an operation that could lose data needs a backup first, e.g. migrations on a
/// database that is still empty.
///
/// # Errors
///
/// [`Error::Database`] when the database cannot be opened or read.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let source = backup::Source::sqlite(dir.path().join("new.sqlite"));
/// assert!(!backup::holds_data(&source, &["seaql_migrations"]).await?);
/// # Ok(())
/// # }
/// ```
pub async fn holds_data(source: &Source, ignore: &[&str]) -> Result<bool> {
    match source {
        Source::Sqlite { path } => {
            if !path.exists() {
                return Ok(false);
            }
            let context = || format!("inspecting {}", path.display());
            let mut conn = sqlite::open_source(path).await?;
            let tables = sqlite::user_tables(&mut conn)
                .await
                .map_err(|e| Error::db(context(), e))?;
            // Collected: a lazy iterator's closures would keep the future from being Send.
            let probes: Vec<String> = tables
                .iter()
                .filter(|t| !ignore.contains(&t.as_str()))
                .map(|table| sqlite::quote(table))
                .collect();
            any_rows::<sqlx::Sqlite>(conn, probes)
                .await
                .map_err(|e| Error::db(context(), e))
        }
        #[cfg(not(feature = "postgres"))]
        Source::Postgres { .. } => Err(Error::postgres_not_compiled()),
        #[cfg(feature = "postgres")]
        Source::Postgres { url } => {
            let url = PgUrl::parse(url)?;
            let context = || format!("inspecting {}", url.public());
            let mut conn = url.connect().await?;
            let tables = postgres::user_tables(&mut conn)
                .await
                .map_err(|e| Error::db(context(), e))?;
            // Collected: a lazy iterator's closures would keep the future from being Send.
            let probes: Vec<String> = tables
                .iter()
                .filter(|(schema, table)| {
                    !ignore.contains(&postgres::table_key(schema, table).as_str())
                })
                .map(|(schema, table)| {
                    format!("{}.{}", postgres::quote(schema), postgres::quote(table))
                })
                .collect();
            any_rows::<sqlx::Postgres>(conn, probes)
                .await
                .map_err(|e| Error::db(context(), e))
        }
    }
}

/// Whether any of `tables` (quoted names) has a row, asked table by table until one has;
/// closes `conn` either way.
async fn any_rows<DB>(
    mut conn: DB::Connection,
    tables: Vec<String>,
) -> std::result::Result<bool, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    (bool,): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let mut found = Ok(false);
    for table in tables {
        found = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {table})"
        )))
        .fetch_one(&mut conn)
        .await;
        // The first table with a row answers, as does the first failure.
        if !matches!(found, Ok(false)) {
            break;
        }
    }
    let _ = sqlx::Connection::close(conn).await;
    found
}
