//! Applying a retention policy to the backup directory.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    BackupId, BackupRepository, Result, RetentionPolicy,
    display::error_chain,
    durable::{self, remove_if_exists},
    retention::PruneDecision,
    run_log::Operation,
};

/// What [`BackupRepository::prune`] decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// True when nothing was deleted because it was a dry run.
    pub dry_run: bool,
    /// The decision about every backup, newest first.
    pub decisions: Vec<PruneDecision>,
    /// The backups deleted (or, in a dry run, that would be).
    pub deleted: Vec<BackupId>,
    /// Leftovers removed (or that would be): data files with no manifest at all.
    pub removed_files: Vec<PathBuf>,
}

impl BackupRepository {
    /// Deletes the backups `policy` does not keep (see [`RetentionPolicy`] for the rules and
    /// the protections), and data files that have no manifest (interrupted backups).
    ///
    /// A backup's manifest is deleted before its data file, so an interruption leaves a data
    /// file without manifest (not a backup), never a manifest without data. Files whose
    /// manifest exists but cannot be read (a newer tool's, say) are left alone.
    ///
    /// `now` is the clock for the decisions (tests pass a fixed one).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] for a policy that keeps nothing; [`crate::Error::LockHeld`];
    /// I/O errors.
    pub async fn prune(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PruneReport> {
        if dry_run {
            return self.prune_plan(policy, now, true);
        }
        let _lock = self.lock(Operation::Prune).await?;
        let started = Utc::now();
        let result = self.prune_locked(policy, now);
        let error = result.as_ref().err().map(|e| error_chain(e));
        self.record(Operation::Prune, started, None, error);
        result
    }

    fn prune_plan(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PruneReport> {
        let listing = self.list()?;
        let decisions = policy.plan(&listing.backups, now)?;
        let deleted = decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.id.clone())
            .collect();
        // Only data files whose manifest is absent altogether: an unreadable manifest may be a
        // newer tool's, and its backup is not ours to judge.
        let removed_files = listing
            .ignored
            .into_iter()
            .map(|i| i.path)
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let Some(stem) = name
                    .strip_suffix(".sqlite.zst")
                    .or_else(|| name.strip_suffix(".pgdump.zst"))
                else {
                    return false;
                };
                !self.dir.join(format!("{stem}.json")).exists()
            })
            .collect();
        Ok(PruneReport {
            dry_run,
            decisions,
            deleted,
            removed_files,
        })
    }

    fn prune_locked(&self, policy: &RetentionPolicy, now: DateTime<Utc>) -> Result<PruneReport> {
        let report = self.prune_plan(policy, now, false)?;
        for id in &report.deleted {
            let manifest = self.manifest(id)?;
            std::fs::remove_file(self.dir.join(format!("{id}.json")))
                .map_err(|e| crate::Error::io("remove", &self.dir.join(format!("{id}.json")), e))?;
            remove_if_exists(&self.data_path(&manifest));
            tracing::info!(id = %id, "backup deleted by retention");
        }
        for path in &report.removed_files {
            remove_if_exists(path);
            tracing::info!(path = %path.display(), "removed a data file without manifest");
        }
        durable::sync_dir(&self.dir)?;
        Ok(report)
    }
}
