//! The pre-migration gate: no migration touches a database holding data without a verified
//! backup taken just before.

use std::path::Path;

use anyhow::Context;
use backup::{BackupRepository, Source, VerifyOptions};

/// What the gate decided.
pub(crate) enum Gate {
    /// A verified backup was taken.
    BackedUp(backup::BackupId),
    /// The database holds no data: there is nothing to lose.
    NothingToBackUp,
    /// `--skip-backup` was given.
    Skipped,
}

/// Takes and verifies a backup of `database_url` into `backup_dir` if the database holds data
/// (rows in any table but the migration table).
///
/// # Errors
///
/// When the backup or its verification fails: the caller must not migrate.
pub(crate) async fn run(database_url: &str, backup_dir: &Path, skip: bool) -> anyhow::Result<Gate> {
    if skip {
        return Ok(Gate::Skipped);
    }
    let source = Source::from_url(database_url).context("while reading the database URL")?;
    let repo = BackupRepository::open(backup_dir).with_context(|| {
        format!(
            "while opening the backup directory {}",
            backup_dir.display()
        )
    })?;
    let holds_data = backup::holds_data(&source, &[repo.migration_table()])
        .await
        .context("while checking whether the database holds data")?;
    if !holds_data {
        return Ok(Gate::NothingToBackUp);
    }
    let verify = VerifyOptions {
        postgres_server: matches!(source, Source::Postgres { .. }).then(|| source.clone()),
        ..VerifyOptions::default()
    };
    let report = repo
        .pre_migration(&source, &verify, &|_| {})
        .await
        .with_context(|| format!("while taking the pre-migration backup of {source}"))?;
    Ok(Gate::BackedUp(report.manifest.id))
}
