//! PostgreSQL point-in-time recovery in the health report: [`BackupRepository::pitr_health`]
//! as checks and metrics.

use chrono::{DateTime, Utc};

use super::{Check, HealthMetrics, PitrMetrics, Status, check};
use crate::{BackupRepository, PitrHealthPolicy};

/// The PITR checks, or none when the repository holds neither a base backup nor archived WAL
/// (point-in-time recovery is not in use there; the server is then not asked either).
pub(super) async fn checks(
    repo: &BackupRepository,
    policy: &PitrHealthPolicy,
    server_url: Option<&str>,
    now: DateTime<Utc>,
    metrics: &mut HealthMetrics,
) -> Vec<Check> {
    let in_use = match (repo.base_backups().await, repo.archived_wal().await) {
        (Ok(bases), Ok(wal)) => !bases.is_empty() || !wal.is_empty(),
        (Err(e), _) | (_, Err(e)) => {
            return vec![check("pitr", Status::Unknown, crate::error_chain(&e))];
        }
    };
    if !in_use {
        return Vec::new();
    }
    match repo.pitr_health(server_url, policy, now).await {
        Ok(health) => {
            metrics.pitr = Some(PitrMetrics {
                base_backups: health.base_backups,
                newest_base_age_seconds: health.newest_base_age_seconds,
                newest_wal_age_seconds: health
                    .newest_archived_at
                    .map(|at| (now - at).num_seconds()),
                segments_behind: health.archiver.as_ref().map(|a| a.segments_behind),
                failed_archive_runs: health.archiver.as_ref().map(|a| a.failed_count),
                restorable_from: health.restorable_from,
                restorable_to: health.restorable_to,
            });
            health.checks
        }
        Err(e) => vec![check("pitr", Status::Unknown, crate::error_chain(&e))],
    }
}
