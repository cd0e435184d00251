//! Restoring a SQLite backup: build and check the copy beside the target, back up the
//! target, swap.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use crate::{
    BackupId, BackupManifest, BackupRepository, Error, Result, Source, VerifyDepth,
    durable::TempFile,
    lock::RepoLock,
    progress::ProgressFn,
    run_log::Operation,
    sqlite::{
        live_file,
        materialize::{materialize, swap_into_place},
    },
};

use super::{RestoreOptions, RestorePlan, RestoreReport, refuse_if_in_use, restore_temp_path};

impl BackupRepository {
    pub(super) async fn restore_sqlite(
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
        self.refuse_foreign_target(&plan, &source, options).await?;
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create the directory", parent, e))?;
        }
        let timer = Instant::now();
        let temp = restore_temp_path(target, &manifest.id);
        let claim = self
            .scratch()
            .claim_file(&temp, &Operation::Restore.to_string())?;
        let copy = materialize(
            &self.store,
            temp,
            claim,
            &manifest,
            VerifyDepth::Full,
            &self.config.migration_table,
            progress,
        )
        .await?;
        let tables = self
            .record_verification(manifest.clone(), copy.outcome, timer.elapsed())
            .await?;
        let (safety_backup, removed_files) = self
            .replace_sqlite(lock, copy.temp, target, &plan, options, progress)
            .await?;
        tracing::info!(id = %manifest.id, target = %target.display(), "backup restored");
        Ok(RestoreReport {
            executed: true,
            safety_backup,
            removed_files,
            tables,
            ..RestoreReport::planned(plan)
        })
    }

    /// Puts the checked copy in `temp` in place of `target`: a safety backup of the target
    /// first (unless told not to), the in-use check again just before, then the swap.
    pub(super) async fn replace_sqlite(
        &self,
        lock: &RepoLock,
        temp: TempFile,
        target: &Path,
        plan: &RestorePlan,
        options: &RestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<(Option<BackupId>, Vec<PathBuf>)> {
        let source = Source::sqlite(target);
        let safety_backup = self
            .safety_backup(lock, &source, plan, options, progress)
            .await?;
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
        let removed_files = swap_into_place(temp, target)?;
        Ok((safety_backup, removed_files))
    }
}
