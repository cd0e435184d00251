//! Restoring a backup over a database, with a safety backup of what it replaces.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use chrono::Utc;
use serde::Serialize;

use crate::{
    BackupId, BackupManifest, BackupRepository, Error, Reason, Result, Source, Verification,
    VerifyDepth, VerifyFailure,
    lock::RepoLock,
    postgres::{
        PgUrl, derived_name,
        restore::{Admin, check_database, restore_into},
    },
    progress::ProgressFn,
    repository::error_chain,
    run_log::Operation,
    sqlite::{self, live_file, restore::materialize},
    verify::{checksum_only, millis},
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
        let manifest = self.manifest(id)?;
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
            return Ok(RestoreReport {
                plan,
                executed: false,
                safety_backup: None,
                removed_files: Vec::new(),
                replaced_database: None,
                tables: BTreeMap::new(),
                duration: Duration::ZERO,
            });
        }
        let lock = self.lock(Operation::Restore).await?;
        let started = Utc::now();
        let timer = Instant::now();
        let result = match target {
            Source::Sqlite { path } => {
                self.restore_sqlite(&lock, manifest, path, options, progress)
                    .await
            }
            Source::Postgres { url } => {
                self.restore_postgres(&lock, manifest, url, options, progress)
                    .await
            }
        };
        let error = result.as_ref().err().map(|e| error_chain(e));
        self.record(Operation::Restore, started, Some(id.clone()), error);
        result.map(|mut report| {
            report.duration = timer.elapsed();
            report
        })
    }

    /// Works out the plan without changing anything.
    async fn plan(
        &self,
        manifest: &BackupManifest,
        target: &Source,
        options: &RestoreOptions,
    ) -> Result<RestorePlan> {
        let id = &manifest.id;
        let mut steps = vec![format!(
            "check backup {id}: the size and SHA-256 of {}",
            self.data_path(manifest).display()
        )];
        let (target_exists, in_use) = match target {
            Source::Sqlite { path } => {
                let exists = path.exists();
                let in_use = live_file::holder(path).map_err(|e| Error::io("inspect", path, e))?;
                steps.push(format!(
                    "decompress it to {} and check the copy (integrity_check, foreign_key_check, \
                     row counts against the manifest)",
                    restore_temp_path(path, id).display()
                ));
                if exists && !options.skip_safety_backup {
                    steps.push(format!(
                        "take a safety backup of {} (reason pre-restore) into {}",
                        path.display(),
                        self.dir.display()
                    ));
                }
                let stale: Vec<String> = sqlite::side_files(path)
                    .iter()
                    .filter(|p| p.exists())
                    .map(|p| p.display().to_string())
                    .collect();
                if !stale.is_empty() {
                    steps.push(format!(
                        "remove the replaced database's {}",
                        stale.join(", ")
                    ));
                }
                steps.push(format!(
                    "rename the checked copy over {} and fsync the directory",
                    path.display()
                ));
                (exists, in_use)
            }
            Source::Postgres { url } => {
                let pg = PgUrl::parse(url)?;
                let mut admin = Admin::connect(&pg, &self.config.pg_tools).await?;
                let exists = admin.exists(pg.database()).await?;
                let sessions = if exists {
                    admin.sessions(pg.database()).await?
                } else {
                    Vec::new()
                };
                admin.close().await;
                let db = pg.database();
                if !exists {
                    steps.push(format!("create database {db} and pg_restore into it"));
                    steps.push("compare its row counts with the manifest".to_owned());
                } else {
                    if !options.skip_safety_backup {
                        steps.push(format!("take a safety backup of {db} (reason pre-restore)"));
                    }
                    match options.mode {
                        RestoreMode::Replace => {
                            steps.push(format!(
                                "create database {} and pg_restore into it; compare its row \
                                 counts with the manifest",
                                derived_name(db, &format!("restoring_{}", lower(id)))
                            ));
                            if options.force {
                                steps.push(format!(
                                    "refuse connections to {db} and end its sessions"
                                ));
                            }
                            steps.push(format!(
                                "rename {db} to {}_replaced_<time> (kept) and the new database to {db}",
                                db
                            ));
                        }
                        RestoreMode::Clean => {
                            steps.push(format!(
                                "pg_restore --clean --if-exists --single-transaction into {db}"
                            ));
                            steps.push("compare its row counts with the manifest".to_owned());
                        }
                    }
                }
                let in_use = (!sessions.is_empty()).then(|| sessions.join(", "));
                (exists, in_use)
            }
        };
        if let Some(holder) = &in_use {
            steps.push(if options.force {
                format!("go ahead although the target is in use ({holder}): --force")
            } else {
                format!("REFUSE: the target is in use ({holder}); stop it or pass --force")
            });
        }
        Ok(RestorePlan {
            backup: id.clone(),
            target: target.display_name(),
            target_exists,
            in_use,
            steps,
        })
    }

    async fn restore_sqlite(
        &self,
        lock: &RepoLock,
        manifest: BackupManifest,
        target: &Path,
        options: &RestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<RestoreReport> {
        let source = Source::sqlite(target);
        let plan = self.plan(&manifest, &source, options).await?;
        refuse_if_in_use(&plan, options)?;
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create the directory", parent, e))?;
        }
        let timer = Instant::now();
        let copy = materialize(
            &self.data_path(&manifest),
            restore_temp_path(target, &manifest.id),
            &manifest,
            VerifyDepth::Full,
            &self.config.migration_table,
            progress,
        )
        .await?;
        let tables = self.record_verification(manifest.clone(), copy.outcome, timer.elapsed())?;
        let safety_backup = if plan.target_exists && !options.skip_safety_backup {
            Some(
                self.create_locked(lock, &source, Reason::PreRestore, progress)
                    .await?
                    .id,
            )
        } else {
            None
        };
        if !options.force {
            // The check again, just before the swap: something may have opened it meanwhile.
            if let Some(holder) =
                live_file::holder(target).map_err(|e| Error::io("inspect", target, e))?
            {
                return Err(Error::DatabaseInUse {
                    target: source.display_name(),
                    detail: holder,
                });
            }
        }
        let removed_files = sqlite::restore::swap_into_place(copy.temp, target)?;
        tracing::info!(id = %manifest.id, target = %target.display(), "backup restored");
        Ok(RestoreReport {
            plan,
            executed: true,
            safety_backup,
            removed_files,
            replaced_database: None,
            tables,
            duration: Duration::ZERO,
        })
    }

    async fn restore_postgres(
        &self,
        lock: &RepoLock,
        manifest: BackupManifest,
        url: &str,
        options: &RestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<RestoreReport> {
        let source = Source::Postgres {
            url: url.to_owned(),
        };
        let plan = self.plan(&manifest, &source, options).await?;
        refuse_if_in_use(&plan, options)?;
        let data_path = self.data_path(&manifest);
        let timer = Instant::now();
        if let Some(failure) = checksum_only(&data_path, &manifest).await? {
            self.save_verification(&manifest, Some(&failure), timer.elapsed())?;
            return Err(Error::VerificationFailed {
                id: manifest.id.to_string(),
                failure,
            });
        }
        let target = PgUrl::parse(url)?;
        let db = target.database().to_owned();
        let tools = &self.config.pg_tools;
        let safety_backup = if plan.target_exists && !options.skip_safety_backup {
            Some(
                self.create_locked(lock, &source, Reason::PreRestore, progress)
                    .await?
                    .id,
            )
        } else {
            None
        };
        let mut admin = Admin::connect(&target, tools).await?;
        let mut report = RestoreReport {
            plan,
            executed: true,
            safety_backup,
            removed_files: Vec::new(),
            replaced_database: None,
            tables: BTreeMap::new(),
            duration: Duration::ZERO,
        };
        let outcome = if !report.plan.target_exists {
            admin.create(&db).await?;
            let checked = self
                .restore_and_check(&target, &data_path, &manifest, &[], progress)
                .await;
            if !matches!(checked, Ok(Ok(_))) {
                admin.drop_quietly(&db).await;
            }
            checked
        } else if options.mode == RestoreMode::Clean {
            self.restore_and_check(
                &target,
                &data_path,
                &manifest,
                &["--clean", "--if-exists", "--single-transaction"],
                progress,
            )
            .await
        } else {
            let new_name = derived_name(&db, &format!("restoring_{}", lower(&manifest.id)));
            admin.create(&new_name).await?;
            let fresh = target.with_database(&new_name);
            let checked = self
                .restore_and_check(&fresh, &data_path, &manifest, &[], progress)
                .await;
            if matches!(checked, Ok(Ok(_))) {
                match swap(&mut admin, &db, &new_name, options.force).await {
                    Ok(replaced) => report.replaced_database = Some(replaced),
                    Err(e) => {
                        admin.drop_quietly(&new_name).await;
                        admin.close().await;
                        return Err(e);
                    }
                }
            } else {
                admin.drop_quietly(&new_name).await;
            }
            checked
        };
        admin.close().await;
        report.tables = self.record_verification(manifest, outcome?, timer.elapsed())?;
        tracing::info!(target = %report.plan.target, "backup restored");
        Ok(report)
    }

    /// pg_restore into `db`, then the row counts.
    async fn restore_and_check(
        &self,
        db: &PgUrl,
        data_path: &Path,
        manifest: &BackupManifest,
        args: &[&str],
        progress: &ProgressFn<'_>,
    ) -> Result<std::result::Result<BTreeMap<String, u64>, VerifyFailure>> {
        let tools = &self.config.pg_tools;
        if let Some(failure) = restore_into(db, data_path, manifest, tools, args, progress).await? {
            return Ok(Err(failure));
        }
        let (tables, failure) = check_database(db, manifest, &self.config.migration_table).await?;
        Ok(failure.map_or(Ok(tables), Err))
    }

    /// Records a restore's checks as the backup's verification; a failure becomes
    /// [`Error::VerificationFailed`].
    fn record_verification(
        &self,
        manifest: BackupManifest,
        outcome: std::result::Result<BTreeMap<String, u64>, VerifyFailure>,
        duration: Duration,
    ) -> Result<BTreeMap<String, u64>> {
        self.save_verification(&manifest, outcome.as_ref().err(), duration)?;
        outcome.map_err(|failure| Error::VerificationFailed {
            id: manifest.id.to_string(),
            failure,
        })
    }

    fn save_verification(
        &self,
        manifest: &BackupManifest,
        failure: Option<&VerifyFailure>,
        duration: Duration,
    ) -> Result<()> {
        let mut manifest = manifest.clone();
        manifest.verification = Some(Verification {
            verified_at: Utc::now(),
            ok: failure.is_none(),
            depth: VerifyDepth::Full,
            failure: failure.cloned(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        });
        manifest.write(&self.dir)
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

/// Renames `db` aside and `new_name` to `db`; returns the name the old database now has.
async fn swap(admin: &mut Admin, db: &str, new_name: &str, force: bool) -> Result<String> {
    if force {
        admin.disconnect_everyone(db).await?;
    } else {
        let sessions = admin.sessions(db).await?;
        if !sessions.is_empty() {
            return Err(Error::DatabaseInUse {
                target: db.to_owned(),
                detail: sessions.join(", "),
            });
        }
    }
    let replaced = derived_name(
        db,
        &format!("replaced_{}", Utc::now().format("%Y%m%dt%H%M%Sz")),
    );
    admin.rename(db, &replaced).await?;
    if let Err(e) = admin.rename(new_name, db).await {
        // Put the old database back under its name before reporting.
        if let Err(back) = admin.rename(&replaced, db).await {
            tracing::error!(database = db, kept_as = %replaced, error = %back, "cannot rename the replaced database back");
        }
        return Err(e);
    }
    Ok(replaced)
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

fn lower(id: &BackupId) -> String {
    id.as_str().to_lowercase().replace('-', "_")
}
