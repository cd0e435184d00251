//! Restoring a PostgreSQL backup: into a new database then a swap of names, or `--clean` into
//! the target in one transaction.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::Utc;

use crate::{
    BackupManifest, BackupRepository, Error, Reason, Result, Source, VerifyFailure,
    data_file::checksum_only,
    lock::RepoLock,
    postgres::{
        PgUrl,
        admin::Admin,
        derived_name,
        load::{check_database, restore_into},
    },
    progress::ProgressFn,
};

use super::{RestoreMode, RestoreOptions, RestoreReport, lower, refuse_if_in_use};

impl BackupRepository {
    pub(super) async fn restore_postgres(
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
        self.refuse_foreign_target(&plan, &source, options).await?;
        let timer = Instant::now();
        if let Some(failure) = checksum_only(&self.store, &manifest).await? {
            self.record_restore_check(&manifest, Some(&failure), timer.elapsed())
                .await?;
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
            replayed: None,
        };
        let outcome = if !report.plan.target_exists {
            admin.create(&db).await?;
            let checked = self
                .restore_and_check(&target, &manifest, &[], progress)
                .await;
            if !matches!(checked, Ok(Ok(_))) {
                admin.drop_quietly(&db).await;
            }
            checked
        } else if options.mode == RestoreMode::Clean {
            self.restore_and_check(
                &target,
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
                .restore_and_check(&fresh, &manifest, &[], progress)
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
        report.tables = self
            .record_verification(manifest, outcome?, timer.elapsed())
            .await?;
        tracing::info!(target = %report.plan.target, "backup restored");
        Ok(report)
    }

    /// pg_restore into `db`, then the row counts.
    async fn restore_and_check(
        &self,
        db: &PgUrl,
        manifest: &BackupManifest,
        args: &[&str],
        progress: &ProgressFn<'_>,
    ) -> Result<std::result::Result<BTreeMap<String, u64>, VerifyFailure>> {
        let tools = &self.config.pg_tools;
        if let Some(failure) =
            restore_into(db, &self.store, manifest, tools, args, progress).await?
        {
            return Ok(Err(failure));
        }
        let (tables, failure) = check_database(db, manifest, &self.config.migration_table).await?;
        Ok(failure.map_or(Ok(tables), Err))
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
