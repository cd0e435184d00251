//! Restoring a PostgreSQL backup: into a new database then a swap of names, or `--clean` into
//! the target in one transaction.

use std::{collections::BTreeMap, time::Instant};

use chrono::Utc;

use crate::{
    BackupManifest, BackupRepository, Error, Result, Source, VerifyFailure,
    data_file::checksum_only,
    lock::RepoLock,
    postgres::{
        PgUrl,
        admin::Admin,
        derived_name,
        load::{check_database, restore_into},
    },
    progress::ProgressFn,
    run_log::Operation,
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
        let target = PgUrl::parse(url)?;
        let tools = &self.config.pg_tools;
        // What a killed restore left on this server goes first: it may hold the names and the
        // space this one needs.
        let mut admin = Admin::connect(&target, tools).await?;
        self.recover_databases(&mut admin, &target).await;
        admin.close().await;
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
        let db = target.database().to_owned();
        let safety_backup = self
            .safety_backup(lock, &source, &plan, options, progress)
            .await?;
        let mut admin = Admin::connect(&target, tools).await?;
        let mut report = RestoreReport {
            executed: true,
            safety_backup,
            ..RestoreReport::planned(plan)
        };
        let outcome = if report.plan.target_exists && options.mode == RestoreMode::Clean {
            // One transaction: a run that dies leaves the target as it was.
            self.restore_and_check(
                &target,
                &manifest,
                &["--clean", "--if-exists", "--single-transaction"],
                progress,
            )
            .await
        } else {
            // Into a new database of a name of our own, claimed while it exists, which takes
            // the target's name only once checked: the target never holds a partial restore.
            let new_name = derived_name(
                &db,
                &format!("restoring_{}_{}", lower(&manifest.id), std::process::id()),
            );
            let (given_back, claim) = self
                .create_claimed_database(admin, &target, &new_name, Operation::Restore)
                .await?;
            admin = given_back;
            let fresh = target.with_database(&new_name);
            let checked = self
                .restore_and_check(&fresh, &manifest, &[], progress)
                .await;
            let placed = if matches!(checked, Ok(Ok(_))) {
                if report.plan.target_exists {
                    swap(&mut admin, &db, &new_name, options.force)
                        .await
                        .map(Some)
                } else {
                    admin.rename(&new_name, &db).await.map(|()| None)
                }
            } else {
                Ok(None)
            };
            match placed {
                Ok(replaced) if matches!(checked, Ok(Ok(_))) => {
                    report.replaced_database = replaced;
                    claim.release();
                }
                placed => {
                    if admin.drop_quietly(&new_name).await {
                        claim.release();
                    }
                    if let Err(e) = placed {
                        admin.close().await;
                        return Err(e);
                    }
                }
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
    pub(crate) async fn restore_and_check(
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

/// Renames `db` aside and `new_name` to `db` (in one transaction); returns the name the old
/// database now has.
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
    admin.swap(db, &replaced, new_name).await?;
    Ok(replaced)
}
