//! SQLite: snapshots while writers keep writing, checks of restored files, file swaps.
//!
//! The source database is opened with sqlx directly rather than `db_connect::connect`: taking
//! a backup must never create a missing database file nor change its journal mode, and both
//! are what `connect` does for an application.

pub(crate) mod btree_reader;
pub(crate) mod check;
pub(crate) mod foreign_keys;
pub(crate) mod index_scan;
pub(crate) mod live_file;
pub(crate) mod materialize;
pub(crate) mod page_accounting;
pub(crate) mod row_feed;
pub(crate) mod snapshot;
#[cfg(test)]
mod test_support;

use std::{collections::BTreeMap, path::Path, time::Duration};

use sea_orm::sqlx::{
    self, ConnectOptions, Connection,
    sqlite::{SqliteConnectOptions, SqliteConnection},
};

use crate::{Error, Result};

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens an existing database for reading its snapshot (no file creation, no journal change).
pub(crate) async fn open_source(path: &Path) -> Result<SqliteConnection> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(false)
        // Counting a large table is slow by nature; sqlx would log it as a warning.
        .disable_statement_logging();
    SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| Error::db(format!("opening {}", path.display()), e))
}

/// Opens a restored copy read-only; nothing else touches it, so SQLite may skip locking.
pub(crate) async fn open_copy(path: &Path) -> Result<SqliteConnection, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        .immutable(true)
        .foreign_keys(false)
        // A larger page cache cuts the system calls of a full integrity check; bounded, so
        // memory stays flat.
        .pragma("cache_size", "-65536")
        // Pages read straight from a mapping of the file rather than copied in by a system
        // call each (a full check looks every row up in every index). The copy is a private
        // file of this process, so the usual risk of a mapping (another process truncating
        // it) does not arise.
        .pragma("mmap_size", "1073741824")
        .disable_statement_logging();
    SqliteConnection::connect_with(&options).await
}

/// Double-quotes an identifier for SQL.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The user tables, sorted (SQLite's own `sqlite_%` tables excluded).
pub(crate) async fn user_tables(conn: &mut SqliteConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
}

/// The row count of every user table.
pub(crate) async fn row_counts(
    conn: &mut SqliteConnection,
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let mut counts = BTreeMap::new();
    for table in user_tables(conn).await? {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            quote(&table)
        )))
        .fetch_one(&mut *conn)
        .await?;
        counts.insert(table, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// The newest `version` in the migration table, or `None` when there is no such table.
pub(crate) async fn migration_version(
    conn: &mut SqliteConnection,
    table: &str,
) -> Result<Option<String>, sqlx::Error> {
    let exists: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
    if exists == 0 {
        return Ok(None);
    }
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT max(version) FROM {}",
        quote(table)
    )))
    .fetch_one(&mut *conn)
    .await
}

/// The `-wal`, `-shm` and `-journal` files beside a database.
pub(crate) fn side_files(path: &Path) -> [std::path::PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    [with("-wal"), with("-shm"), with("-journal")]
}

/// Whether SQLite failed with SQLITE_FULL ("database or disk is full").
pub(crate) fn is_disk_full(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "13")
}
