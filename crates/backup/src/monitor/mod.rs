//! Health of a repository, as a monitoring system wants it: Nagios statuses and exit
//! codes, and Prometheus metrics.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use backup::{BackupRepository, monitor::{self, HealthPolicy, Status}};
//! let dir = tempfile::tempdir()?;
//! let repo = BackupRepository::open(dir.path())?;
//! let report = monitor::assess(&repo, &HealthPolicy::default(), chrono::Utc::now()).await;
//! // No backup at all: critical, exit code 2.
//! assert_eq!(report.status, Status::Critical);
//! assert_eq!(report.status.exit_code(), 2);
//! assert!(report.nagios_line().starts_with("BACKUP CRITICAL"));
//! # Ok(())
//! # }
//! ```

mod checks;
mod export;
#[cfg(feature = "postgres")]
mod pitr;

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{BackupManifest, BackupRepository, run_log::Operation};

use self::checks::{
    age_check, disk_check, last_run_check, leftovers_check, replication_check, size_check,
    verification_check,
};

/// Thresholds of [`assess`].
#[derive(Debug, Clone, Serialize)]
pub struct HealthPolicy {
    /// WARNING when the newest verified backup is older. Default: 26 h (a daily backup
    /// with slack).
    #[serde(with = "secs")]
    pub warn_age: Duration,
    /// CRITICAL when the newest verified backup is older. Default: 50 h.
    #[serde(with = "secs")]
    pub crit_age: Duration,
    /// WARNING with fewer usable backups (not failed). Default: 3.
    pub min_backups: usize,
    /// How many earlier backups the newest one's size is compared with (their median).
    /// Default: 7.
    pub size_window: usize,
    /// WARNING when the newest backup is this fraction smaller than the median. Default: 0.25.
    pub size_drop_warn: f64,
    /// CRITICAL when the newest backup is this fraction smaller (an empty dump). Default: 0.5.
    pub size_drop_crit: f64,
    /// WARNING when the newest backup is still unverified this long after it was taken.
    /// Default: 6 h.
    #[serde(with = "secs")]
    pub verify_grace: Duration,
    /// WARNING when less space is free on the backup directory's disk. Default: 1 GiB.
    /// (CRITICAL when the next backup and its verification copy would not fit.)
    pub min_free_bytes: u64,
    /// For a replicated database: WARNING when the newest shipped change (or heartbeat) is
    /// older. Default: 60 s (the replicator sends a heartbeat every 15 s when idle).
    #[serde(with = "secs")]
    pub warn_lag: Duration,
    /// CRITICAL when it is older. Default: 5 min.
    #[serde(with = "secs")]
    pub crit_lag: Duration,
    /// PostgreSQL point-in-time recovery (base backups and archived WAL): base backup age and
    /// archiver backlog thresholds.
    pub pitr: PitrHealthPolicy,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            warn_age: Duration::from_secs(26 * 3600),
            crit_age: Duration::from_secs(50 * 3600),
            min_backups: 3,
            size_window: 7,
            size_drop_warn: 0.25,
            size_drop_crit: 0.5,
            verify_grace: Duration::from_secs(6 * 3600),
            min_free_bytes: 1 << 30,
            warn_lag: Duration::from_secs(60),
            crit_lag: Duration::from_secs(300),
            pitr: PitrHealthPolicy::default(),
        }
    }
}

/// Thresholds of `BackupRepository::pitr_health` (and of the PITR checks of
/// [`assess_with_server`]), feature `postgres`. Part of [`HealthPolicy`] in every build, so
/// that a policy written without the feature still compiles with it.
#[derive(Debug, Clone, Serialize)]
pub struct PitrHealthPolicy {
    /// WARNING when the newest base backup is older than this.
    #[serde(with = "secs")]
    pub warn_base_age: Duration,
    /// CRITICAL when it is older than this.
    #[serde(with = "secs")]
    pub crit_base_age: Duration,
    /// WARNING when this many finished segments wait to be archived.
    pub warn_segments_behind: u64,
}

impl Default for PitrHealthPolicy {
    fn default() -> Self {
        Self {
            warn_base_age: Duration::from_secs(26 * 3600),
            crit_base_age: Duration::from_secs(50 * 3600),
            warn_segments_behind: 4,
        }
    }
}

pub(crate) mod secs {
    pub(crate) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

/// A Nagios status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Exit code 0.
    Ok,
    /// Exit code 1.
    Warning,
    /// Exit code 2.
    Critical,
    /// Exit code 3: the health could not be assessed.
    Unknown,
}

impl Status {
    /// The Nagios plugin exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
            Self::Unknown => 3,
        }
    }

    /// How bad it is, for picking the worst: OK < WARNING < UNKNOWN < CRITICAL.
    fn severity(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Unknown => 2,
            Self::Critical => 3,
        }
    }

    fn worst(self, other: Self) -> Self {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        })
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// A stable name: `directory`, `age`, `last-run`, `size`, `count`, `verification`,
    /// `disk`, `replication`, `manifests`, `leftovers`.
    pub name: &'static str,
    /// Its status.
    pub status: Status,
    /// What was found, for a person.
    pub message: String,
}

/// The figures behind the checks, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthMetrics {
    /// Usable backups (not failed verification).
    pub backups: usize,
    /// When the newest verified backup was taken.
    pub newest_verified_at: Option<DateTime<Utc>>,
    /// Its age in seconds.
    pub newest_verified_age_seconds: Option<u64>,
    /// The newest backup's snapshot size.
    pub newest_raw_bytes: Option<u64>,
    /// The newest backup's file size.
    pub newest_compressed_bytes: Option<u64>,
    /// Free space on the backup directory's disk.
    pub free_bytes: Option<u64>,
    /// Whether the latest run of each operation succeeded.
    pub last_run_ok: Vec<(Operation, bool)>,
    /// For a replicated database: the age of the newest shipped change (or heartbeat).
    pub replication_lag_seconds: Option<f64>,
    /// The restorable window of the newest generation.
    pub restorable_from: Option<DateTime<Utc>>,
    /// Its end.
    pub restorable_to: Option<DateTime<Utc>>,
    /// Generations in the repository.
    pub generations: usize,
    /// Scratch state left by interrupted runs ([`BackupRepository::leftovers`]).
    pub leftovers: usize,
    /// PostgreSQL point-in-time recovery, when the repository holds base backups or WAL.
    pub pitr: Option<PitrMetrics>,
}

/// The figures of PostgreSQL point-in-time recovery ([`crate::PitrHealth`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PitrMetrics {
    /// Base backups in the repository.
    pub base_backups: usize,
    /// Age of the newest base backup, seconds.
    pub newest_base_age_seconds: Option<i64>,
    /// Age of the newest archived segment, seconds.
    pub newest_wal_age_seconds: Option<i64>,
    /// With a server: finished segments not archived yet.
    pub segments_behind: Option<u64>,
    /// With a server: failed `archive_command` runs (`pg_stat_archiver.failed_count`).
    pub failed_archive_runs: Option<i64>,
    /// The restorable window's start (end of the oldest base backup).
    pub restorable_from: Option<DateTime<Utc>>,
    /// Its end (about the newest archived segment).
    pub restorable_to: Option<DateTime<Utc>>,
}

/// The health of a backup directory.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The worst status of all checks.
    pub status: Status,
    /// Every check.
    pub checks: Vec<Check>,
    /// The figures.
    pub metrics: HealthMetrics,
    /// The clock the assessment used.
    pub assessed_at: DateTime<Utc>,
}

/// Assesses the backups in `repo` against `policy` at time `now`. Never fails: what cannot be
/// assessed (a repository that cannot be read or reached) is UNKNOWN.
pub async fn assess(
    repo: &BackupRepository,
    policy: &HealthPolicy,
    now: DateTime<Utc>,
) -> HealthReport {
    assess_with_server(repo, policy, None, now).await
}

/// [`assess`], and where the repository holds PostgreSQL point-in-time recovery, the server's
/// archiver too: `server_url` is the PostgreSQL server whose `pg_stat_archiver` says whether
/// `archive_command` fails and how many finished segments wait (`None`: the repository alone).
///
/// A repository with base backups adds the checks `base-backup`, `wal-archive`, `archiver`
/// (with a server) and `restorable-window`; when it holds no logical backup at all, the
/// checks of logical backups (`age`, `size`, `count`, `verification`) give way to one
/// `logical` check that says so, instead of a CRITICAL "no backup".
pub async fn assess_with_server(
    repo: &BackupRepository,
    policy: &HealthPolicy,
    server_url: Option<&str>,
    now: DateTime<Utc>,
) -> HealthReport {
    let mut checks = Vec::new();
    let mut metrics = HealthMetrics::default();
    let listing = match repo.list().await {
        Ok(listing) => listing,
        Err(e) => {
            checks.push(check("directory", Status::Unknown, crate::error_chain(&e)));
            return finish(checks, metrics, now);
        }
    };
    let usable: Vec<&BackupManifest> = listing
        .backups
        .iter()
        .filter(|m| !m.failed_verification())
        .collect();
    metrics.backups = usable.len();
    let newest = listing.backups.first();
    metrics.newest_raw_bytes = newest.map(|m| m.raw_bytes);
    metrics.newest_compressed_bytes = newest.map(|m| m.compressed_bytes);

    #[cfg(feature = "postgres")]
    let pitr_checks = pitr::checks(repo, &policy.pitr, server_url, now, &mut metrics).await;
    // Without the `postgres` feature there is no point-in-time recovery to assess.
    #[cfg(not(feature = "postgres"))]
    let pitr_checks: Vec<Check> = {
        let _ = (server_url, &policy.pitr);
        Vec::new()
    };
    let pitr_only =
        listing.backups.is_empty() && metrics.pitr.as_ref().is_some_and(|p| p.base_backups > 0);
    let last_run = last_run_check(repo, &mut metrics).await;
    if pitr_only {
        checks.push(check(
            "logical",
            Status::Ok,
            "no logical (pg_dump) backup: this repository holds PostgreSQL point-in-time \
             recovery"
                .to_owned(),
        ));
        checks.push(last_run);
    } else {
        checks.push(age_check(&listing.backups, policy, now, &mut metrics));
        checks.push(last_run);
        logical_checks(&listing.backups, &usable, policy, now, &mut checks);
    }
    checks.push(disk_check(repo, newest, policy, &mut metrics));
    checks.push(replication_check(repo, &listing.backups, policy, now, &mut metrics).await);
    checks.push(leftovers_check(repo, &mut metrics));
    checks.extend(pitr_checks);
    let unreadable: Vec<String> = listing
        .ignored
        .iter()
        .filter(|i| i.key.ends_with(".json"))
        .map(|i| i.why.clone())
        .collect();
    checks.push(if unreadable.is_empty() {
        check(
            "manifests",
            Status::Ok,
            "every manifest is readable".to_owned(),
        )
    } else {
        check("manifests", Status::Warning, unreadable.join("; "))
    });
    finish(checks, metrics, now)
}

/// The checks of logical backups after `age`: size, count, verification.
fn logical_checks(
    backups: &[BackupManifest],
    usable: &[&BackupManifest],
    policy: &HealthPolicy,
    now: DateTime<Utc>,
    checks: &mut Vec<Check>,
) {
    checks.push(size_check(usable, policy));
    checks.push(if usable.len() < policy.min_backups {
        check(
            "count",
            Status::Warning,
            format!(
                "{} usable backup(s), fewer than the minimum {}",
                usable.len(),
                policy.min_backups
            ),
        )
    } else {
        check(
            "count",
            Status::Ok,
            format!("{} usable backups", usable.len()),
        )
    });
    checks.push(verification_check(backups.first(), policy, now));
}

fn finish(checks: Vec<Check>, metrics: HealthMetrics, now: DateTime<Utc>) -> HealthReport {
    let status = checks
        .iter()
        .fold(Status::Ok, |worst, c| worst.worst(c.status));
    HealthReport {
        status,
        checks,
        metrics,
        assessed_at: now,
    }
}

pub(crate) fn check(name: &'static str, status: Status, message: String) -> Check {
    Check {
        name,
        status,
        message,
    }
}
