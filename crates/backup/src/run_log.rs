//! `last-run.json`: how the latest run of each operation ended, for the monitor.

use std::{collections::BTreeMap, fmt, path::Path};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{BackupId, Result, durable, error::io_err};

/// The run log's file name in the backup directory.
pub const RUN_LOG_FILE: &str = "last-run.json";

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
    /// Reads the run log of a backup directory; an absent file is an empty log.
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(RUN_LOG_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| crate::Error::InvalidManifest {
                    path: path.clone(),
                    reason: format!("not a run log: {e}"),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Records `record` (the caller holds the directory's lock). Failing to record is logged,
    /// not returned: it must not turn a successful backup into a failed one.
    pub(crate) fn record(dir: &Path, record: RunRecord) {
        let mut log = Self::read(dir).unwrap_or_default();
        log.runs.insert(record.operation, record);
        let written = serde_json::to_vec_pretty(&log)
            .map_err(|e| crate::Error::Internal(e.to_string()))
            .and_then(|bytes| durable::write_atomically(dir, RUN_LOG_FILE, &bytes));
        if let Err(e) = written {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot record the run's outcome");
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

    #[test]
    fn the_latest_run_of_each_operation_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunLog::read(dir.path()).unwrap(), RunLog::default());
        let at = Utc::now();
        let run = |operation, ok| RunRecord {
            operation,
            started_at: at,
            finished_at: at,
            ok,
            backup: None,
            error: (!ok).then(|| "boom".to_owned()),
        };
        RunLog::record(dir.path(), run(Operation::Create, false));
        RunLog::record(dir.path(), run(Operation::Prune, true));
        assert_eq!(RunLog::read(dir.path()).unwrap().failures().len(), 1);
        RunLog::record(dir.path(), run(Operation::Create, true));
        let log = RunLog::read(dir.path()).unwrap();
        assert!(log.failures().is_empty());
        assert_eq!(log.runs.len(), 2);
    }
}
