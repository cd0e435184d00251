//! Retention for point-in-time recovery: keep the newest base backups, and exactly the
//! archived WAL they need.
//!
//! A kept base backup needs every segment of its timeline from its `start_wal` on (to reach
//! consistency, then any later target). So on each timeline that has a kept base backup,
//! segments (and `.partial` and `.backup` files) before the oldest kept backup's start are
//! deleted; timelines without a kept base backup and every `.history` file are kept, since a
//! restore that follows timelines may still read them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::base_backup::BASE_DIR;
use crate::{BackupId, BackupRepository, Error, Result, WalFileKind, run_log::Operation};

/// What [`BackupRepository::prune_pitr`] did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PitrPruneReport {
    /// Whether anything was deleted.
    pub dry_run: bool,
    /// The base backups kept.
    pub kept: Vec<BackupId>,
    /// The base backups deleted.
    pub deleted: Vec<BackupId>,
    /// Per timeline (hex), the first segment kept: everything before it was deleted.
    pub wal_kept_from: BTreeMap<String, String>,
    /// Archived WAL files deleted.
    pub wal_deleted: usize,
    /// Their stored size.
    pub wal_deleted_bytes: u64,
    /// Why, in sentences.
    pub explanation: Vec<String>,
}

impl BackupRepository {
    /// Keeps the `keep` newest base backups (by stop position) and the WAL they need; deletes
    /// the rest (nothing with `dry_run`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `keep` is 0 (the archive would be useless);
    /// [`Error::LockHeld`]; the store's errors.
    pub async fn prune_pitr(&self, keep: usize, dry_run: bool) -> Result<PitrPruneReport> {
        if keep == 0 {
            return Err(Error::InvalidConfig(
                "keeping no base backup would make the whole WAL archive useless".to_owned(),
            ));
        }
        let _lock = self.lock(Operation::Prune).await?;
        let bases = self.base_backups().await?;
        let (kept, gone) = bases.split_at(keep.min(bases.len()));
        let mut explanation = Vec::new();
        let mut wal_kept_from: BTreeMap<String, String> = BTreeMap::new();
        for base in kept {
            let timeline = format!("{:08X}", base.timeline);
            let from = wal_kept_from
                .entry(timeline)
                .or_insert_with(|| base.start_wal.clone());
            if base.start_wal < *from {
                from.clone_from(&base.start_wal);
            }
            explanation.push(format!(
                "base backup {} kept (one of the {keep} newest); it needs WAL from {}",
                base.id, base.start_wal
            ));
        }
        if kept.is_empty() {
            explanation.push("no base backup: the WAL archive is kept whole".to_owned());
        }
        let mut doomed = Vec::new();
        let mut wal_deleted_bytes = 0;
        for wal in self.archived_wal().await? {
            let needed_from = wal_kept_from.get(&wal.name[..8.min(wal.name.len())]);
            let before = match (wal.kind, needed_from) {
                (WalFileKind::History, _) | (_, None) => false,
                (_, Some(from)) => wal
                    .name
                    .get(..24)
                    .is_some_and(|segment| segment < from.as_str()),
            };
            if before {
                wal_deleted_bytes += wal.stored_bytes;
                doomed.push(wal.name);
            }
        }
        for (timeline, from) in &wal_kept_from {
            explanation.push(format!(
                "timeline {timeline}: WAL before {from} is needed by no kept base backup"
            ));
        }
        for base in gone {
            explanation.push(format!(
                "base backup {} deleted: {} newer ones are kept",
                base.id,
                kept.len()
            ));
        }
        if !dry_run {
            for base in gone {
                // The manifest first: from then on it is not a backup, whatever remains.
                self.store
                    .delete(&format!("{BASE_DIR}/{}/manifest.json", base.id))
                    .await?;
                for object in self.store.list(&format!("{BASE_DIR}/{}", base.id)).await? {
                    self.store.delete(&object.key).await?;
                }
            }
            for name in &doomed {
                self.store.delete(&super::wal::wal_key(name)).await?;
            }
            self.store.sync().await?;
        }
        Ok(PitrPruneReport {
            dry_run,
            kept: kept.iter().map(|b| b.id.clone()).collect(),
            deleted: gone.iter().map(|b| b.id.clone()).collect(),
            wal_kept_from,
            wal_deleted: doomed.len(),
            wal_deleted_bytes,
            explanation,
        })
    }
}
