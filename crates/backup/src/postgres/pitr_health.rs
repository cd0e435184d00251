//! The health of PostgreSQL point-in-time recovery: is the WAL being archived, how far behind,
//! how old is the newest base backup, what window can be restored.

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, Connection};
use serde::Serialize;

use super::PgUrl;
use crate::{
    BackupRepository, PitrHealthPolicy, Result, WalFileKind,
    monitor::{Check, Status, check},
};

/// What `pg_stat_archiver` and the server's WAL position say.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiverStats {
    /// Segments archived successfully since the statistics were reset.
    pub archived_count: i64,
    /// The last one archived.
    pub last_archived_wal: Option<String>,
    /// When.
    pub last_archived_time: Option<DateTime<Utc>>,
    /// Failed `archive_command` runs.
    pub failed_count: i64,
    /// The last segment that failed.
    pub last_failed_wal: Option<String>,
    /// When.
    pub last_failed_time: Option<DateTime<Utc>>,
    /// The segment the server writes now.
    pub current_wal: String,
    /// Finished segments not archived yet (same timeline).
    pub segments_behind: u64,
}

/// The health of point-in-time recovery.
#[derive(Debug, Clone, Serialize)]
pub struct PitrHealth {
    /// The worst of the checks.
    pub status: Status,
    /// What was found, worst first: `base-backup`, `wal-archive`, `archiver` (with a server),
    /// `restorable-window`.
    pub checks: Vec<Check>,
    /// Base backups in the repository.
    pub base_backups: usize,
    /// Age of the newest base backup, seconds.
    pub newest_base_age_seconds: Option<i64>,
    /// The newest archived segment.
    pub newest_archived_wal: Option<String>,
    /// When it was archived.
    pub newest_archived_at: Option<DateTime<Utc>>,
    /// The restorable window: from the end of the oldest base backup…
    pub restorable_from: Option<DateTime<Utc>>,
    /// …to the newest archived segment (approximately: its archiving time) or the end of the
    /// newest base backup, whichever is later.
    pub restorable_to: Option<DateTime<Utc>>,
    /// The server's archiver, when a server was given.
    pub archiver: Option<ArchiverStats>,
}

/// The distance in segments between two segment names of one timeline.
fn segments_between(older: &str, newer: &str, segment_size: u64) -> Option<u64> {
    let number = |name: &str| -> Option<u64> {
        let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
        let seg = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
        Some(log * (0x1_0000_0000 / segment_size.max(1)) + seg)
    };
    if older.get(..8) != newer.get(..8) {
        return None;
    }
    number(newer)?.checked_sub(number(older)?)
}

async fn archiver_stats(url: &PgUrl) -> Result<(ArchiverStats, u64)> {
    let context = || format!("reading pg_stat_archiver on {}", url.public());
    let mut conn = url.connect().await?;
    type Row = (
        i64,
        Option<String>,
        Option<DateTime<Utc>>,
        i64,
        Option<String>,
        Option<DateTime<Utc>>,
        String,
        String,
    );
    let row: Row = sqlx::query_as(
        "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, \
                last_failed_wal, last_failed_time, pg_walfile_name(pg_current_wal_lsn()), \
                (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') \
         FROM pg_stat_archiver",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| crate::Error::db(context(), e))?;
    let _ = conn.close().await;
    let segment_size: u64 = row.7.parse().unwrap_or(16 << 20);
    // The current segment is not finished: it is not expected in the archive yet.
    let segments_behind = row
        .1
        .as_deref()
        .and_then(|last| segments_between(last, &row.6, segment_size))
        .map_or(0, |n| n.saturating_sub(1));
    Ok((
        ArchiverStats {
            archived_count: row.0,
            last_archived_wal: row.1,
            last_archived_time: row.2,
            failed_count: row.3,
            last_failed_wal: row.4,
            last_failed_time: row.5,
            current_wal: row.6,
            segments_behind,
        },
        segment_size,
    ))
}

impl BackupRepository {
    /// Assesses point-in-time recovery: base backups and archived WAL in the repository, and,
    /// with `server_url`, the server's archiver (`pg_stat_archiver`): failing
    /// `archive_command` runs are CRITICAL, a backlog of finished segments a WARNING.
    ///
    /// # Errors
    ///
    /// The store's errors. A server that cannot be reached is a CRITICAL finding, not an error.
    pub async fn pitr_health(
        &self,
        server_url: Option<&str>,
        policy: &PitrHealthPolicy,
        now: DateTime<Utc>,
    ) -> Result<PitrHealth> {
        let mut checks = Vec::new();
        let bases = self.base_backups().await?;
        let wal: Vec<_> = self
            .archived_wal()
            .await?
            .into_iter()
            .filter(|w| w.kind == WalFileKind::Segment)
            .collect();
        let newest = wal.iter().max_by(|a, b| a.name.cmp(&b.name));
        let newest_base_age = bases
            .iter()
            .map(|b| (now - b.finished_at).num_seconds())
            .min();
        checks.push(match newest_base_age {
            None => check("base-backup", Status::Critical, "no base backup".to_owned()),
            Some(age) => {
                let age_u = u64::try_from(age).unwrap_or(0);
                let text = format!("newest of {} base backups is {age}s old", bases.len());
                if age_u > policy.crit_base_age.as_secs() {
                    check(
                        "base-backup",
                        Status::Critical,
                        format!(
                            "{text} (critical above {}s)",
                            policy.crit_base_age.as_secs()
                        ),
                    )
                } else if age_u > policy.warn_base_age.as_secs() {
                    check(
                        "base-backup",
                        Status::Warning,
                        format!("{text} (warning above {}s)", policy.warn_base_age.as_secs()),
                    )
                } else {
                    check("base-backup", Status::Ok, text)
                }
            }
        });
        checks.push(match newest {
            None => check(
                "wal-archive",
                Status::Critical,
                "no WAL archived".to_owned(),
            ),
            // Its age alone is no lag: an idle server switches segments only every
            // archive_timeout. The archiver check below says whether anything waits.
            Some(w) => check(
                "wal-archive",
                Status::Ok,
                format!(
                    "{} segments archived, the newest {} {}s ago",
                    wal.len(),
                    w.name,
                    (now - w.archived_at).num_seconds()
                ),
            ),
        });
        let mut archiver = None;
        if let Some(url) = server_url {
            match async { archiver_stats(&PgUrl::parse(url)?).await }.await {
                Ok((stats, _)) => {
                    checks.push(archiver_check(&stats, policy));
                    archiver = Some(stats);
                }
                Err(e) => checks.push(check(
                    "archiver",
                    Status::Critical,
                    format!("cannot read the archiver: {}", crate::error_chain(&e)),
                )),
            }
        }
        let restorable_from = bases.iter().map(|b| b.finished_at).min();
        let restorable_to = newest
            .map(|w| w.archived_at)
            .into_iter()
            .chain(bases.iter().map(|b| b.finished_at))
            .max();
        if let (Some(from), Some(to)) = (restorable_from, restorable_to) {
            checks.push(check(
                "restorable-window",
                Status::Ok,
                format!(
                    "restorable to any instant from {} to about {}",
                    from.format("%Y-%m-%d %H:%M:%SZ"),
                    to.format("%Y-%m-%d %H:%M:%SZ")
                ),
            ));
        }
        checks.sort_by_key(|c| std::cmp::Reverse(c.status.exit_code()));
        let status = checks.first().map_or(Status::Ok, |c| c.status);
        Ok(PitrHealth {
            status,
            checks,
            base_backups: bases.len(),
            newest_base_age_seconds: newest_base_age,
            newest_archived_wal: newest.map(|w| w.name.clone()),
            newest_archived_at: newest.map(|w| w.archived_at),
            restorable_from,
            restorable_to,
            archiver,
        })
    }
}

/// What the server's archiver says: failing `archive_command` runs are CRITICAL (the newest
/// failure is later than the newest success), a backlog of finished segments a WARNING.
fn archiver_check(stats: &ArchiverStats, policy: &PitrHealthPolicy) -> Check {
    let failing = match (stats.last_failed_time, stats.last_archived_time) {
        (Some(failed), Some(ok)) => failed > ok,
        (Some(_), None) => true,
        _ => false,
    };
    let behind = stats.segments_behind;
    let backlog = format!(
        "{behind} finished WAL segments wait to be archived ({} archive_command runs failed \
         since the statistics were reset)",
        stats.failed_count
    );
    if failing {
        check(
            "archiver",
            Status::Critical,
            format!(
                "archive_command is failing: {} failed at {}; {backlog}",
                stats.last_failed_wal.as_deref().unwrap_or("?"),
                stats
                    .last_failed_time
                    .map_or_else(String::new, |t| t.to_rfc3339())
            ),
        )
    } else if behind >= policy.warn_segments_behind {
        check(
            "archiver",
            Status::Warning,
            format!("{backlog} (warning from {})", policy.warn_segments_behind),
        )
    } else {
        check("archiver", Status::Ok, backlog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_counted_across_log_boundaries() {
        let size = 16 << 20;
        assert_eq!(
            segments_between("0000000100000000000000FE", "000000010000000100000001", size),
            Some(3)
        );
        assert_eq!(
            segments_between("000000010000000000000002", "000000020000000000000003", size),
            None
        );
    }
}
