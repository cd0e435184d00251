//! The pre-migration gate: no migration touches a database holding data without a verified
//! backup taken just before.

use std::path::{Path, PathBuf};

use backup::{BackupRepository, Source, VerifyOptions};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement,
};

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

/// What [`migrate_behind_backup`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The migrations this call applied, oldest first (empty: the schema was current).
    pub applied: Vec<String>,
    /// What the pre-migration gate decided; `None` when nothing was pending or no backup
    /// directory was given for a database without data.
    pub gate: Option<Gate>,
}

/// Why [`migrate_behind_backup`] applied nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The lock, the status or a migration failed (on PostgreSQL nothing of the call is
    /// applied then).
    #[error("migrating failed")]
    Database(#[from] DbErr),
    /// The pre-migration backup or its verification failed: nothing was applied.
    #[error("the pre-migration backup into {} failed; no migration was applied", dir.display())]
    Backup {
        /// The backup directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: backup::Error,
    },
    /// Migrations are pending on a database holding data, and there is nowhere to back it up.
    #[error(
        "pending migrations on a database with data, and no backup directory for the pre-migration backup"
    )]
    NoBackupDirectory,
}

/// Applies every pending migration under the [`MigrationLock`](crate::MigrationLock); when
/// the database holds data, only after a verified backup into `backup_dir` ([`Gate`]), unless
/// `skip_backup`. Processes starting together take turns: the first migrates, the others find
/// nothing pending. `hotel-server` starts with it.
///
/// # Errors
///
/// [`MigrateError`]: the backup failed, a migration failed, or the database holds data and
/// `backup_dir` is `None` (without `skip_backup`). Nothing is migrated without the backup.
pub async fn migrate_behind_backup(
    db: &DatabaseConnection,
    database_url: &str,
    backup_dir: Option<&Path>,
    skip_backup: bool,
) -> Result<Migrated, MigrateError> {
    let lock = crate::MigrationLock::acquire(db).await?;
    let pending = lock.pending().await?;
    if pending.is_empty() {
        lock.release().await?;
        return Ok(Migrated {
            applied: pending,
            gate: None,
        });
    }
    let gate = match backup_dir {
        Some(dir) => Some(
            pre_migration_backup(database_url, dir, skip_backup)
                .await
                .map_err(|source| MigrateError::Backup {
                    dir: dir.to_owned(),
                    source,
                })?,
        ),
        None if !skip_backup && holds_hotel_data(db).await => {
            return Err(MigrateError::NoBackupDirectory);
        }
        None => None,
    };
    lock.apply(None).await?;
    lock.release().await?;
    Ok(Migrated {
        applied: pending,
        gate,
    })
}

/// Whether the database holds users (the hotel's data starts with them), read on `db` itself
/// so that it also answers for databases a backup source cannot open (SQLite in memory).
async fn holds_hotel_data(db: &DatabaseConnection) -> bool {
    let table = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'users'"
        }
        _ => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'",
    };
    // A count that cannot be read counts as no data: the migration then runs and fails
    // on its own if the database is unusable.
    let count = |sql: &'static str| async move {
        db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .ok()
            .flatten()
            .and_then(|row| row.try_get_by_index::<i64>(0).ok())
            .unwrap_or(0)
    };
    count(table).await > 0 && count("SELECT COUNT(*) FROM users").await > 0
}
