//! Applying a retention policy to the repository.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    BackupId, BackupRepository, Result, RetentionPolicy,
    display::error_chain,
    manifest::{DATA_SUFFIXES, manifest_key},
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
    /// Leftovers removed (or that would be): data objects with no manifest at all.
    pub removed_files: Vec<String>,
}

impl BackupRepository {
    /// Deletes the backups `policy` does not keep (see [`RetentionPolicy`] for the rules and
    /// the protections), and data objects that have no manifest (interrupted backups).
    ///
    /// A backup's manifest is deleted before its data, so an interruption leaves data without
    /// manifest (not a backup), never a manifest without data. Objects whose manifest exists
    /// but cannot be read (a newer tool's, say) are left alone.
    ///
    /// `now` is the clock for the decisions (tests pass a fixed one).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] for a policy that keeps nothing; [`crate::Error::LockHeld`];
    /// the repository's errors.
    pub async fn prune(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PruneReport> {
        if dry_run {
            return self.prune_plan(policy, now, true).await;
        }
        let _lock = self.lock(Operation::Prune).await?;
        let started = Utc::now();
        let result = self.prune_locked(policy, now).await;
        let error = result.as_ref().err().map(|e| error_chain(e));
        self.record(Operation::Prune, started, None, error).await;
        result
    }

    async fn prune_plan(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PruneReport> {
        let listing = self.list().await?;
        let decisions = policy.plan(&listing.backups, now)?;
        let deleted = decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.id.clone())
            .collect();
        // Only data objects whose manifest is absent altogether: an unreadable manifest may be
        // a newer tool's, and its backup is not ours to judge.
        let mut removed_files = Vec::new();
        for ignored in listing.ignored {
            let Some(stem) = DATA_SUFFIXES
                .iter()
                .find_map(|suffix| ignored.key.strip_suffix(suffix))
            else {
                continue;
            };
            let orphan = match BackupId::parse(stem) {
                Ok(id) => self.store.head(&manifest_key(&id)).await?.is_none(),
                Err(_) => false,
            };
            if orphan {
                removed_files.push(ignored.key);
            }
        }
        Ok(PruneReport {
            dry_run,
            decisions,
            deleted,
            removed_files,
        })
    }

    async fn prune_locked(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<PruneReport> {
        let report = self.prune_plan(policy, now, false).await?;
        for id in &report.deleted {
            let manifest = self.manifest(id).await?;
            self.store.delete(&manifest_key(id)).await?;
            self.store.delete(&manifest.file).await?;
            self.delete_verifications(id).await?;
            tracing::info!(id = %id, "backup deleted by retention");
        }
        for key in &report.removed_files {
            self.store.delete(key).await?;
            tracing::info!(object = %self.store.describe(key), "removed a data object without manifest");
        }
        self.store.sync().await?;
        Ok(report)
    }
}
