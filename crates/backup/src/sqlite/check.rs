//! Checks of a restored SQLite copy: integrity, foreign keys, row counts, migration version.

use std::{collections::BTreeMap, path::Path};

use sea_orm::sqlx::{self, Row, sqlite::SqliteConnection};

use super::{migration_version, open_copy, row_counts};
use crate::{BackupManifest, VerifyDepth, VerifyFailure, failure::compare_counts};

/// At most this many messages are kept from the integrity and foreign key checks.
const MAX_MESSAGES: usize = 20;

/// What the checks of a restored copy found.
#[derive(Debug)]
pub(crate) struct CheckOutcome {
    /// Row counts of the copy (empty if it could not be read).
    pub(crate) tables: BTreeMap<String, u64>,
    /// The first problem found, if any.
    pub(crate) failure: Option<VerifyFailure>,
}

/// Checks the copy at `path`, and against `manifest` when given (its row counts and migration
/// version; a database rebuilt to another point than a backup's has no manifest to match).
/// Anything SQLite reports, including "file is not a database", is a verification failure,
/// not an error.
///
/// The integrity check runs on one connection while the foreign key check and the counts run
/// on another: they share nothing, and the integrity check dominates on large databases.
pub(crate) async fn check_copy(
    path: &Path,
    manifest: Option<&BackupManifest>,
    depth: VerifyDepth,
    migration_table: &str,
) -> CheckOutcome {
    let integrity = integrity(path, depth);
    let rest = async {
        let mut conn = open_copy(path).await?;
        let fk = foreign_keys(&mut conn).await?;
        let tables = row_counts(&mut conn).await?;
        let version = migration_version(&mut conn, migration_table).await?;
        let _ = sqlx::Connection::close(conn).await;
        Ok::<_, sqlx::Error>((fk, tables, version))
    };
    let (integrity, rest) = tokio::join!(integrity, rest);
    let broken = |e: sqlx::Error| VerifyFailure::Integrity {
        messages: vec![e.to_string()],
    };
    let integrity = match integrity {
        Ok(messages) => messages,
        Err(e) => {
            return CheckOutcome {
                tables: BTreeMap::new(),
                failure: Some(broken(e)),
            };
        }
    };
    let (fk, tables, version) = match rest {
        Ok(found) => found,
        Err(e) => {
            return CheckOutcome {
                tables: BTreeMap::new(),
                failure: Some(broken(e)),
            };
        }
    };
    let failure = if integrity != ["ok"] {
        Some(VerifyFailure::Integrity {
            messages: integrity,
        })
    } else if fk.0 > 0 {
        Some(VerifyFailure::ForeignKeys {
            violations: fk.0,
            sample: fk.1,
        })
    } else if let Some(counts) = manifest.and_then(|m| compare_counts(&m.tables, &tables)) {
        Some(counts)
    } else {
        manifest
            .filter(|m| version != m.migration_version)
            .map(|m| VerifyFailure::MigrationVersion {
                expected: m.migration_version.clone(),
                actual: version,
            })
    };
    CheckOutcome { tables, failure }
}

async fn integrity(path: &Path, depth: VerifyDepth) -> Result<Vec<String>, sqlx::Error> {
    let mut conn = open_copy(path).await?;
    let pragma = match depth {
        VerifyDepth::Full => "integrity_check",
        VerifyDepth::Quick => "quick_check",
    };
    let messages: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "PRAGMA {pragma}({MAX_MESSAGES})"
    )))
    .fetch_all(&mut conn)
    .await?;
    let _ = sqlx::Connection::close(conn).await;
    Ok(messages)
}

/// The number of foreign key violations and a sample of them.
async fn foreign_keys(conn: &mut SqliteConnection) -> Result<(u64, Vec<String>), sqlx::Error> {
    let rows = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut *conn)
        .await?;
    let sample = rows
        .iter()
        .take(MAX_MESSAGES)
        .map(|row| {
            let table: String = row.try_get(0).unwrap_or_default();
            let rowid: Option<i64> = row.try_get(1).unwrap_or(None);
            let parent: String = row.try_get(2).unwrap_or_default();
            match rowid {
                Some(rowid) => format!("{table} row {rowid} → {parent}"),
                None => format!("{table} → {parent}"),
            }
        })
        .collect();
    Ok((rows.len() as u64, sample))
}
