//! Verifying a backup: checksum, decompression, a restore into scratch, and the checks of
//! what was restored.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    BackupId, BackupRepository, DatabaseKind, Error, Result, Source, Verification, VerifyDepth,
    VerifyFailure, display::error_chain, lock::RepoLock, progress::ProgressFn, run_log::Operation,
    sqlite::materialize::materialize,
};
#[cfg(feature = "postgres")]
use crate::{
    BackupManifest,
    postgres::{PgUrl, admin::Admin, derived_name},
};

/// Options of [`BackupRepository::verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// How thoroughly SQLite copies are checked. Default: [`VerifyDepth::Full`].
    pub depth: VerifyDepth,
    /// For PostgreSQL backups: a database URL on the server where the scratch database is
    /// created (its credentials are used; the scratch database is dropped afterwards).
    /// Default: the backup's source URL, which carries no password, so the server must accept
    /// the user without one (`.pgpass`, `PGPASSWORD`, trust).
    pub postgres_server: Option<Source>,
}

/// The result of verifying one backup.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The backup.
    pub id: BackupId,
    /// Whether every check passed.
    pub ok: bool,
    /// How thorough the checks were.
    pub depth: VerifyDepth,
    /// What failed.
    pub failure: Option<VerifyFailure>,
    /// When verification finished.
    pub verified_at: DateTime<Utc>,
    /// How long it took.
    #[serde(with = "crate::display::millis")]
    pub duration: Duration,
    /// The row counts of the restored copy.
    pub tables: BTreeMap<String, u64>,
}

impl VerifyReport {
    /// The report if the backup passed, else [`Error::VerificationFailed`].
    ///
    /// # Errors
    ///
    /// [`Error::VerificationFailed`] when a check failed.
    pub fn into_result(self) -> Result<Self> {
        match self.failure {
            Some(failure) => Err(Error::VerificationFailed {
                id: self.id.to_string(),
                failure,
            }),
            None => Ok(self),
        }
    }
}

impl BackupRepository {
    /// Verifies backup `id`: the data file's size and SHA-256, its decompression, a restore
    /// into a scratch database (SQLite: a temporary file checked with `PRAGMA integrity_check`
    /// and `foreign_key_check`; PostgreSQL: a scratch database), and the row counts and
    /// migration version against the manifest. The result is recorded in the manifest.
    ///
    /// A backup that fails is a report with `ok: false`, not an error; use
    /// [`VerifyReport::into_result`] to turn it into one.
    ///
    /// # Errors
    ///
    /// [`Error::LockHeld`], [`Error::NoManifest`], or an error that kept the checks from
    /// running (scratch space, the PostgreSQL server).
    pub async fn verify(
        &self,
        id: &BackupId,
        options: &VerifyOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<VerifyReport> {
        let lock = self.lock(Operation::Verify).await?;
        self.verify_recorded(&lock, id, options, progress).await
    }

    /// Verifies every backup, oldest first, under one lock.
    ///
    /// # Errors
    ///
    /// As [`BackupRepository::verify`]; the first error stops the run.
    pub async fn verify_all(
        &self,
        options: &VerifyOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<Vec<VerifyReport>> {
        let lock = self.lock(Operation::Verify).await?;
        let mut reports = Vec::new();
        for manifest in self.list().await?.backups.into_iter().rev() {
            reports.push(
                self.verify_recorded(&lock, &manifest.id, options, progress)
                    .await?,
            );
        }
        Ok(reports)
    }

    /// Verifies and records the outcome in the run log.
    pub(crate) async fn verify_recorded(
        &self,
        lock: &RepoLock,
        id: &BackupId,
        options: &VerifyOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<VerifyReport> {
        let started = Utc::now();
        let result = self.verify_locked(lock, id, options, progress).await;
        let error = match &result {
            Ok(report) => report.failure.as_ref().map(|f| format!("backup {id}: {f}")),
            // A backup that does not exist, a wrong server URL: not a failed verification.
            Err(e) if e.is_invalid_request() => return result,
            Err(e) => Some(error_chain(e)),
        };
        self.record(Operation::Verify, started, Some(id.clone()), error)
            .await;
        result
    }

    pub(crate) async fn verify_locked(
        &self,
        _lock: &RepoLock,
        id: &BackupId,
        options: &VerifyOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<VerifyReport> {
        let manifest = self.manifest(id).await?;
        let timer = Instant::now();
        let outcome = match manifest.database {
            DatabaseKind::Sqlite => {
                let scratch = self.scratch_dir();
                std::fs::create_dir_all(&scratch).map_err(crate::error::io_err(
                    "create the scratch directory",
                    &scratch,
                ))?;
                let scratch = scratch.join(format!(
                    ".verify-{id}-{}.sqlite{}",
                    std::process::id(),
                    crate::durable::TEMP_SUFFIX
                ));
                let claim = self
                    .scratch()
                    .claim_file(&scratch, &Operation::Verify.to_string())?;
                let copy = materialize(
                    &self.store,
                    scratch,
                    claim,
                    &manifest,
                    options.depth,
                    &self.config.migration_table,
                    progress,
                )
                .await?;
                copy.outcome
            }
            #[cfg(not(feature = "postgres"))]
            DatabaseKind::Postgres => return Err(Error::postgres_not_compiled()),
            #[cfg(feature = "postgres")]
            DatabaseKind::Postgres => {
                let server = match &options.postgres_server {
                    Some(server) => server.clone(),
                    None => Source::from_url(&manifest.source)?,
                };
                let Source::Postgres { url } = server else {
                    return Err(Error::InvalidConfig(format!(
                        "backup {id} is of a PostgreSQL database; verifying it needs a PostgreSQL server"
                    )));
                };
                self.verify_postgres(&PgUrl::parse(&url)?, &manifest, progress)
                    .await?
            }
        };
        let (tables, failure) = match outcome {
            Ok(tables) => (tables, None),
            Err(failure) => (BTreeMap::new(), Some(failure)),
        };
        let verified_at = Utc::now();
        let duration = timer.elapsed();
        let verification = Verification {
            verified_at,
            ok: failure.is_none(),
            depth: options.depth,
            failure: failure.clone(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        };
        self.save_verification(id, &verification).await?;
        match &failure {
            None => {
                tracing::info!(id = %id, duration_ms = duration.as_millis() as u64, "backup verified")
            }
            Some(f) => tracing::error!(id = %id, failure = %f, "backup failed verification"),
        }
        Ok(VerifyReport {
            id: id.clone(),
            ok: failure.is_none(),
            depth: options.depth,
            failure,
            verified_at,
            duration,
            tables,
        })
    }

    /// Restores into a scratch database on `server`'s server, checks it, drops it.
    #[cfg(feature = "postgres")]
    async fn verify_postgres(
        &self,
        server: &PgUrl,
        manifest: &BackupManifest,
        progress: &ProgressFn<'_>,
    ) -> Result<std::result::Result<BTreeMap<String, u64>, VerifyFailure>> {
        // The cheap checks before creating a scratch database.
        if let Some(failure) = crate::data_file::precheck(&self.store, manifest).await? {
            return Ok(Err(failure));
        }
        let mut admin = Admin::connect(server, &self.config.pg_tools).await?;
        self.recover_databases(&mut admin, server).await;
        let tag = format!(
            "verify_{}_{}",
            manifest.id.as_str().to_lowercase().replace('-', "_"),
            std::process::id()
        );
        let name = derived_name(server.database(), &tag);
        let (mut admin, claim) = self
            .create_claimed_database(admin, server, &name, Operation::Verify)
            .await?;
        let scratch = server.with_database(&name);
        let checked = self
            .restore_and_check(
                &scratch,
                manifest,
                &["--no-owner", "--no-privileges"],
                progress,
            )
            .await;
        if admin.drop_quietly(&name).await {
            claim.release();
        }
        admin.close().await;
        checked
    }
}
