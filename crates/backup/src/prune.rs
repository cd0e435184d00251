//! Applying a retention policy to the repository.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    BackupId, BackupManifest, BackupRepository, Result, RetentionPolicy,
    display::error_chain,
    manifest::{DATA_SUFFIXES, manifest_key},
    replicate::generation_key,
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
    /// What happens to each generation of continuous replication.
    pub generations: Vec<GenerationPrune>,
}

/// What prune does to one generation's segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenerationPrune {
    /// The generation.
    pub generation: String,
    /// The segments deleted (or that would be): the first and last number, and how many.
    pub deleted_segments: Option<(u64, u64)>,
    /// How many.
    pub deleted_count: usize,
    /// Their size.
    pub deleted_bytes: u64,
    /// Segments kept.
    pub kept_segments: usize,
    /// Whether the whole generation goes (no snapshot of it is kept).
    pub removes_generation: bool,
    /// Why.
    pub why: String,
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
        match &result {
            Err(e) if e.is_invalid_request() => {}
            _ => {
                let error = result.as_ref().err().map(|e| error_chain(e));
                self.record(Operation::Prune, started, None, error).await;
            }
        }
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
        let deleted: Vec<BackupId> = decisions
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
        let generations = self.plan_segments(&listing.backups, &deleted).await?;
        Ok(PruneReport {
            dry_run,
            decisions,
            deleted,
            removed_files,
            generations,
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
        for generation in &report.generations {
            let Some((first, last)) = generation.deleted_segments else {
                continue;
            };
            // Oldest first: an interruption leaves a line that still starts at a snapshot.
            for (seq, object) in self.segment_objects(&generation.generation).await? {
                if (first..=last).contains(&seq) {
                    self.store.delete(&object.key).await?;
                }
            }
            if generation.removes_generation {
                self.store
                    .delete(&generation_key(&generation.generation))
                    .await?;
            }
            tracing::info!(generation = %generation.generation, first, last, why = %generation.why, "replication segments deleted by retention");
        }
        self.store.sync().await?;
        Ok(report)
    }
}

impl BackupRepository {
    /// Which segments the snapshots kept still need: those after the oldest kept snapshot of
    /// their generation. A generation without a kept snapshot cannot be restored at all, so
    /// it goes whole.
    async fn plan_segments(
        &self,
        backups: &[BackupManifest],
        deleted: &[BackupId],
    ) -> Result<Vec<GenerationPrune>> {
        let mut plans = Vec::new();
        for id in self.generation_ids().await? {
            let kept: Vec<u64> = backups
                .iter()
                .filter(|m| !deleted.contains(&m.id))
                .filter_map(|m| m.replication.as_ref())
                .filter(|r| r.generation == id)
                .map(|r| r.seq)
                .collect();
            let segments = self.segment_objects(&id).await?;
            let (cut, removes, why) = match kept.iter().min() {
                Some(&oldest) => (
                    oldest,
                    false,
                    format!(
                        "segments up to {oldest} are in the oldest kept snapshot of the \
                         generation; the {} after it are kept to restore any point since",
                        segments.range(oldest + 1..).count()
                    ),
                ),
                None => (
                    u64::MAX,
                    true,
                    "no snapshot of this generation is kept: nothing of it can be restored"
                        .to_owned(),
                ),
            };
            let gone: Vec<(&u64, &crate::store::ObjectMeta)> = segments.range(..=cut).collect();
            plans.push(GenerationPrune {
                generation: id,
                deleted_segments: match (gone.first(), gone.last()) {
                    (Some((first, _)), Some((last, _))) => Some((**first, **last)),
                    _ => None,
                },
                deleted_count: gone.len(),
                deleted_bytes: gone.iter().map(|(_, o)| o.size).sum(),
                kept_segments: segments.len() - gone.len(),
                removes_generation: removes,
                why,
            });
        }
        Ok(plans)
    }
}
