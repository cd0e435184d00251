//! Run records: how each run of each operation ended, for the monitor.
//!
//! Every run writes a sealed record of its own, `runs/<operation>/<finished_at>-<pid>-<n>.json`
//! (written once, like every object); the newest of each operation is the one that counts,
//! and older ones beyond [`KEEP`] are removed.

use std::{
    collections::BTreeMap,
    fmt,
    sync::atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{BackupId, Error, Result, sealed, store::Store};

/// The directory of run records.
pub(crate) const RUNS_DIR: &str = "runs";

/// Records kept per operation.
const KEEP: usize = 5;

/// The operations whose outcome is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Taking a backup.
    Create,
    /// Verifying a backup.
    Verify,
    /// Applying retention.
    Prune,
    /// Restoring a backup.
    Restore,
    /// The pre-migration gate (create and verify).
    PreMigration,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::Verify => "verify",
            Self::Prune => "prune",
            Self::Restore => "restore",
            Self::PreMigration => "pre-migration",
        })
    }
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The operation.
    pub operation: Operation,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Whether it succeeded (for verify: whether the backup passed).
    pub ok: bool,
    /// The backup it made or looked at.
    pub backup: Option<BackupId>,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// The latest run of each operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLog {
    /// Keyed by operation.
    pub runs: BTreeMap<Operation, RunRecord>,
}

impl RunLog {
    /// Reads the newest record of each operation.
    pub(crate) async fn read(store: &Store) -> Result<Self> {
        let mut newest: BTreeMap<String, String> = BTreeMap::new();
        for object in store.list(RUNS_DIR).await? {
            let Some(operation) = object.key.split('/').nth(1) else {
                continue;
            };
            let slot = newest.entry(operation.to_owned()).or_default();
            if object.key > *slot {
                *slot = object.key;
            }
        }
        let records: Vec<Result<RunRecord>> =
            futures::stream::iter(newest.into_values().map(|key| async move {
                let bytes = store
                    .get(&key)
                    .await?
                    .ok_or_else(|| Error::InvalidManifest {
                        object: store.describe(&key),
                        reason: "removed while it was being read".to_owned(),
                    })?;
                sealed::open::<RunRecord>(&bytes).map_err(|reason| Error::InvalidManifest {
                    object: store.describe(&key),
                    reason: format!("not a run record: {reason}"),
                })
            }))
            .buffer_unordered(8)
            .collect()
            .await;
        let mut log = Self::default();
        for record in records {
            let record = record?;
            log.runs.insert(record.operation, record);
        }
        Ok(log)
    }

    /// Records `record` (the caller holds the repository's lock). Failing to record is
    /// logged, not returned: it must not turn a successful backup into a failed one.
    pub(crate) async fn record(store: &Store, record: RunRecord) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = format!("{RUNS_DIR}/{}", record.operation);
        let key = format!(
            "{dir}/{}-{}-{:06}.json",
            record.finished_at.format("%Y%m%dT%H%M%S%.6fZ"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let written = match sealed::seal(&record) {
            Ok(bytes) => store.put_once(&key, bytes).await.map(|_| ()),
            Err(e) => Err(Error::Internal(e)),
        };
        if let Err(e) = written {
            tracing::warn!(record = %store.describe(&key), error = %crate::error_chain(&e), "cannot record the run's outcome");
            return;
        }
        if let Ok(records) = store.list(&dir).await {
            let keys: Vec<String> = records.into_iter().map(|o| o.key).collect();
            for old in keys.iter().take(keys.len().saturating_sub(KEEP)) {
                if let Err(e) = store.delete(old).await {
                    tracing::warn!(record = %store.describe(old), error = %crate::error_chain(&e), "cannot remove an old run record");
                }
            }
        }
    }

    /// The failed latest runs, oldest first.
    pub fn failures(&self) -> Vec<&RunRecord> {
        let mut failed: Vec<&RunRecord> = self.runs.values().filter(|r| !r.ok).collect();
        failed.sort_by_key(|r| r.finished_at);
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::LocalStore;

    #[tokio::test]
    async fn the_latest_run_of_each_operation_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Local(LocalStore::open(dir.path()).unwrap());
        assert_eq!(RunLog::read(&store).await.unwrap(), RunLog::default());
        let run = |operation, ok| RunRecord {
            operation,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            ok,
            backup: None,
            error: (!ok).then(|| "boom".to_owned()),
        };
        RunLog::record(&store, run(Operation::Create, false)).await;
        RunLog::record(&store, run(Operation::Prune, true)).await;
        assert_eq!(RunLog::read(&store).await.unwrap().failures().len(), 1);
        for _ in 0..KEEP + 2 {
            RunLog::record(&store, run(Operation::Create, true)).await;
        }
        let log = RunLog::read(&store).await.unwrap();
        assert!(log.failures().is_empty());
        assert_eq!(log.runs.len(), 2);
        assert_eq!(store.list("runs/create").await.unwrap().len(), KEEP);
    }
}
