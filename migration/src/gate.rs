//! The pre-migration gate: no migration touches a database holding data without a verified
//! backup taken just before.

use std::path::Path;

use backup::{BackupRepository, Source, VerifyOptions};

/// What the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// A verified backup was taken.
    BackedUp(backup::BackupId),
    /// The database holds no data: there is nothing to lose.
    NothingToBackUp,
    /// `--skip-backup` was given.
    Skipped,
}

/// Takes and verifies a backup of `database_url` into `backup_dir` if the database holds data
/// (rows in any table but the migration table). The migration CLI and `hotel-server` call it
/// before changing the schema.
///
/// # Errors
///
/// When the backup or its verification fails: the caller must not migrate.
pub async fn pre_migration_backup(
    database_url: &str,
    backup_dir: &Path,
    skip: bool,
) -> Result<Gate, backup::Error> {
    if skip {
        return Ok(Gate::Skipped);
    }
    let source = Source::from_url(database_url)?;
    let repo = BackupRepository::open(backup_dir)?;
    if !backup::holds_data(&source, &[repo.migration_table()]).await? {
        return Ok(Gate::NothingToBackUp);
    }
    let verify = VerifyOptions {
        postgres_server: matches!(source, Source::Postgres { .. }).then(|| source.clone()),
        ..VerifyOptions::default()
    };
    let report = repo.pre_migration(&source, &verify, &|_| {}).await?;
    Ok(Gate::BackedUp(report.manifest.id))
}
