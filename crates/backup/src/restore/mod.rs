//! Restoring a backup over a database, with a safety backup of what it replaces.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use chrono::Utc;
use serde::Serialize;

mod plan;
mod point_in_time;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use crate::{
    BackupId, BackupManifest, BackupRepository, Error, Reason, Result, Source, Verification,
    VerifyDepth, VerifyFailure,
    display::{error_chain, millis},
    lock::RepoLock,
    progress::ProgressFn,
    run_log::Operation,
};

/// How a restore replaces an existing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    /// SQLite: the restored file is built and checked beside the target, then renamed over
    /// it. PostgreSQL: the backup is restored into a new database, checked, and the names are
    /// swapped; the replaced database is kept as `<name>_replaced_<time>`.
    #[default]
    Replace,
    /// PostgreSQL only: `pg_restore --clean --if-exists --single-transaction` into the target
    /// itself. Needs no second database's space; objects absent from the backup are kept.
    Clean,
}

/// Options of [`BackupRepository::restore`].
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Only work out and return the plan; change nothing.
    pub dry_run: bool,
    /// Restore even though the target is in use (PostgreSQL: its sessions are ended).
    pub force: bool,
    /// How an existing target is replaced.
    pub mode: RestoreMode,
    /// Do not take a safety backup of the database being replaced (for a target too damaged
    /// to be backed up).
    pub skip_safety_backup: bool,
}

/// What a restore will do (or did).
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    /// The backup.
    pub backup: BackupId,
    /// The target, without password.
    pub target: String,
    /// Whether the target exists now.
    pub target_exists: bool,
    /// Who holds the target open, if anyone (the restore refuses unless forced).
    pub in_use: Option<String>,
    /// The steps, in order.
    pub steps: Vec<String>,
}

/// The outcome of [`BackupRepository::restore`].
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The plan that was (or, for a dry run, would be) carried out.
    pub plan: RestorePlan,
    /// False for a dry run.
    pub executed: bool,
    /// The safety backup of the replaced database.
    pub safety_backup: Option<BackupId>,
    /// Stale `-wal`/`-shm`/`-journal` files removed (SQLite).
    pub removed_files: Vec<PathBuf>,
    /// Where the replaced PostgreSQL database was kept.
    pub replaced_database: Option<String>,
    /// The row counts of the restored database.
    pub tables: BTreeMap<String, u64>,
    /// How long the restore took.
    #[serde(with = "millis")]
    pub duration: Duration,
    /// The part of `duration` spent checking the rebuilt copy (`integrity_check`,
    /// `foreign_key_check`) before it replaced anything: for a point-in-time restore; zero
    /// otherwise.
    #[serde(with = "millis")]
    pub check_duration: Duration,
    /// For a point-in-time restore: the snapshot and the segments applied on top of it.
    pub replayed: Option<crate::replicate::Replayed>,
}

impl RestoreReport {
    /// The report of `plan` with nothing done: a dry run's, and the start of an executed one's.
    fn planned(plan: RestorePlan) -> Self {
        Self {
            plan,
            executed: false,
            safety_backup: None,
            removed_files: Vec::new(),
            replaced_database: None,
            tables: BTreeMap::new(),
            duration: Duration::ZERO,
            check_duration: Duration::ZERO,
            replayed: None,
        }
    }
}

impl BackupRepository {
    /// Restores backup `id` into `target`.
    ///
    /// The backup is verified first (as part of building the restored copy), then a safety
    /// backup of the current database is taken (reason `pre-restore`), then the restored copy
    /// replaces it. A SQLite target held open by another connection (of any process) is
    /// refused unless `force`; stale `-wal`/`-shm` files are removed so SQLite can never replay
    /// the old database's log into the new one.
    ///
    /// # Errors
    ///
    /// [`Error::NoManifest`] for anything that is not a backup; [`Error::KindMismatch`];
    /// [`Error::VerificationFailed`] for a damaged backup (the target is untouched);
    /// [`Error::DatabaseInUse`]; [`Error::LockHeld`]; I/O and database errors.
    pub async fn restore(
        &self,
        id: &BackupId,
        target: &Source,
        options: &RestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<RestoreReport> {
        let manifest = self.manifest(id).await?;
        if manifest.database != target.kind() {
            return Err(Error::KindMismatch {
                id: id.to_string(),
                backup: manifest.database.to_string(),
                target: target.kind().to_string(),
            });
        }
        if options.mode == RestoreMode::Clean && matches!(target, Source::Sqlite { .. }) {
            return Err(Error::InvalidConfig(
                "--clean applies to PostgreSQL only; SQLite restores replace the file".to_owned(),
            ));
        }
        if options.dry_run {
            let plan = self.plan(&manifest, target, options).await?;
            return Ok(RestoreReport::planned(plan));
        }
        let lock = self.lock(Operation::Restore).await?;
        let started = Utc::now();
        let timer = Instant::now();
        let result = match target {
            Source::Sqlite { path } => {
                self.restore_sqlite(&lock, manifest, path, options, progress)
                    .await
            }
            #[cfg(not(feature = "postgres"))]
            Source::Postgres { .. } => Err(Error::postgres_not_compiled()),
            #[cfg(feature = "postgres")]
            Source::Postgres { url } => {
                self.restore_postgres(&lock, manifest, url, options, progress)
                    .await
            }
        };
        if !matches!(&result, Err(e) if e.is_invalid_request()) {
            let error = result.as_ref().err().map(|e| error_chain(e));
            self.record(Operation::Restore, started, Some(id.clone()), error)
                .await;
        }
        result.map(|mut report| {
            report.duration = timer.elapsed();
            report
        })
    }

    /// The safety backup of a target about to be replaced (reason `pre-restore`): none when
    /// the target does not exist or the caller chose to go without.
    async fn safety_backup(
        &self,
        lock: &RepoLock,
        target: &Source,
        plan: &RestorePlan,
        options: &RestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<Option<BackupId>> {
        if !plan.target_exists || options.skip_safety_backup {
            return Ok(None);
        }
        let backup = self
            .create_locked(lock, target, Reason::PreRestore, progress)
            .await?;
        Ok(Some(backup.id))
    }

    /// Records a restore's checks as the backup's verification; a failure becomes
    /// [`Error::VerificationFailed`].
    async fn record_verification(
        &self,
        manifest: BackupManifest,
        outcome: std::result::Result<BTreeMap<String, u64>, VerifyFailure>,
        duration: Duration,
    ) -> Result<BTreeMap<String, u64>> {
        self.record_restore_check(&manifest, outcome.as_ref().err(), duration)
            .await?;
        outcome.map_err(|failure| Error::VerificationFailed {
            id: manifest.id.to_string(),
            failure,
        })
    }

    async fn record_restore_check(
        &self,
        manifest: &BackupManifest,
        failure: Option<&VerifyFailure>,
        duration: Duration,
    ) -> Result<()> {
        let verification = Verification {
            verified_at: Utc::now(),
            ok: failure.is_none(),
            depth: VerifyDepth::Full,
            failure: failure.cloned(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        };
        self.save_verification(&manifest.id, &verification).await
    }

    /// The safety backup of an existing target goes into this repository, which holds one
    /// database: refuse before doing anything when the target is another one.
    async fn refuse_foreign_target(
        &self,
        plan: &RestorePlan,
        target: &Source,
        options: &RestoreOptions,
    ) -> Result<()> {
        if !plan.target_exists || options.skip_safety_backup {
            return Ok(());
        }
        let Some(identity) = self.identity().await? else {
            return Ok(());
        };
        if self.admit(&identity, target).is_ok() {
            return Ok(());
        }
        Err(Error::InvalidConfig(format!(
            "{} exists and is not this repository's database ({}): its safety backup cannot go \
             into this repository; restore into a new database, or pass --no-safety-backup",
            plan.target, identity.database
        )))
    }
}

fn refuse_if_in_use(plan: &RestorePlan, options: &RestoreOptions) -> Result<()> {
    match &plan.in_use {
        Some(holder) if !options.force => Err(Error::DatabaseInUse {
            target: plan.target.clone(),
            detail: holder.clone(),
        }),
        _ => Ok(()),
    }
}

fn restore_temp_path(target: &Path, id: &BackupId) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".to_owned());
    target.with_file_name(format!(
        ".{name}.restore-{id}{}",
        crate::durable::TEMP_SUFFIX
    ))
}

#[cfg(feature = "postgres")]
fn lower(id: &BackupId) -> String {
    id.as_str().to_lowercase().replace('-', "_")
}
