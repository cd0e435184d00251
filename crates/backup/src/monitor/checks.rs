//! The individual health checks.

use std::{path::Path, time::Duration};

use chrono::{DateTime, Utc};

use super::{Check, HealthMetrics, HealthPolicy, Status, check};
use crate::{BackupManifest, BackupRepository, display::human_bytes as bytes, run_log::Operation};

pub(super) fn age_check(
    backups: &[BackupManifest],
    policy: &HealthPolicy,
    now: DateTime<Utc>,
    metrics: &mut HealthMetrics,
) -> Check {
    let Some(newest) = backups.iter().find(|m| m.is_verified()) else {
        return check(
            "age",
            Status::Critical,
            "no verified backup exists".to_owned(),
        );
    };
    let age = (now - newest.created_at).to_std().unwrap_or(Duration::ZERO);
    metrics.newest_verified_at = Some(newest.created_at);
    metrics.newest_verified_age_seconds = Some(age.as_secs());
    let text = format!("newest verified backup {} is {} old", newest.id, human(age));
    if age > policy.crit_age {
        check(
            "age",
            Status::Critical,
            format!("{text} (critical above {})", human(policy.crit_age)),
        )
    } else if age > policy.warn_age {
        check(
            "age",
            Status::Warning,
            format!("{text} (warning above {})", human(policy.warn_age)),
        )
    } else {
        check("age", Status::Ok, text)
    }
}

pub(super) async fn last_run_check(repo: &BackupRepository, metrics: &mut HealthMetrics) -> Check {
    let log = match repo.last_runs().await {
        Ok(log) => log,
        Err(e) => return check("last-run", Status::Unknown, crate::error_chain(&e)),
    };
    metrics.last_run_ok = log.runs.values().map(|r| (r.operation, r.ok)).collect();
    // A failed restore says nothing about the backups' health.
    let failed: Vec<String> = log
        .failures()
        .into_iter()
        .filter(|r| r.operation != Operation::Restore)
        .map(|r| {
            format!(
                "the last {} failed at {}: {}",
                r.operation,
                r.finished_at.format("%Y-%m-%d %H:%M:%SZ"),
                r.error.as_deref().unwrap_or("no detail")
            )
        })
        .collect();
    if failed.is_empty() {
        check(
            "last-run",
            Status::Ok,
            if log.runs.is_empty() {
                "no run recorded yet".to_owned()
            } else {
                "the last run of every operation succeeded".to_owned()
            },
        )
    } else {
        check("last-run", Status::Critical, failed.join("; "))
    }
}

pub(super) fn size_check(usable: &[&BackupManifest], policy: &HealthPolicy) -> Check {
    let Some((newest, earlier)) = usable.split_first() else {
        return check("size", Status::Ok, "no backup to compare".to_owned());
    };
    let mut sizes: Vec<u64> = earlier
        .iter()
        .take(policy.size_window)
        .map(|m| m.raw_bytes)
        .collect();
    if sizes.len() < 2 {
        return check(
            "size",
            Status::Ok,
            "too few earlier backups to compare sizes".to_owned(),
        );
    }
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2] as f64;
    let drop = if median > 0.0 {
        1.0 - newest.raw_bytes as f64 / median
    } else {
        0.0
    };
    let text = format!(
        "newest backup {} is {} bytes, the median of the {} before it {} bytes",
        newest.id,
        newest.raw_bytes,
        sizes.len(),
        median as u64
    );
    if drop >= policy.size_drop_crit {
        check(
            "size",
            Status::Critical,
            format!(
                "{text}: {:.0}% smaller (an empty or partial dump?)",
                drop * 100.0
            ),
        )
    } else if drop >= policy.size_drop_warn {
        check(
            "size",
            Status::Warning,
            format!("{text}: {:.0}% smaller", drop * 100.0),
        )
    } else {
        check("size", Status::Ok, text)
    }
}

pub(super) fn verification_check(
    newest: Option<&BackupManifest>,
    policy: &HealthPolicy,
    now: DateTime<Utc>,
) -> Check {
    let Some(newest) = newest else {
        return check("verification", Status::Ok, "no backup yet".to_owned());
    };
    match &newest.verification {
        Some(v) if !v.ok => check(
            "verification",
            Status::Critical,
            format!(
                "the newest backup {} failed verification: {}",
                newest.id,
                v.failure
                    .as_ref()
                    .map_or_else(|| "no detail".to_owned(), ToString::to_string)
            ),
        ),
        Some(v) => check(
            "verification",
            Status::Ok,
            format!(
                "the newest backup {} was verified at {}",
                newest.id,
                v.verified_at.format("%Y-%m-%d %H:%M:%SZ")
            ),
        ),
        None => {
            let age = (now - newest.created_at).to_std().unwrap_or(Duration::ZERO);
            if age > policy.verify_grace {
                check(
                    "verification",
                    Status::Warning,
                    format!(
                        "the newest backup {} is still unverified after {}",
                        newest.id,
                        human(age)
                    ),
                )
            } else {
                check(
                    "verification",
                    Status::Ok,
                    format!("the newest backup {} awaits verification", newest.id),
                )
            }
        }
    }
}

/// Free space where the next run writes: a local repository's disk (the next backup and its
/// verification copy), or, for an object store, the scratch directory's (the verification
/// copy only; the store's space is the provider's to watch).
pub(super) fn disk_check(
    repo: &BackupRepository,
    newest: Option<&BackupManifest>,
    policy: &HealthPolicy,
    metrics: &mut HealthMetrics,
) -> Check {
    let (dir, need) = match repo.local_dir() {
        Some(dir) => (
            dir.to_path_buf(),
            newest.map_or(0, |m| m.compressed_bytes + m.raw_bytes),
        ),
        None => {
            let scratch = repo.scratch_dir();
            // The scratch directory may not exist yet: its file system is its parent's.
            let existing = scratch
                .ancestors()
                .find(|d| d.is_dir())
                .map_or_else(|| scratch.clone(), Path::to_path_buf);
            (existing, newest.map_or(0, |m| m.raw_bytes))
        }
    };
    let dir = dir.as_path();
    let free = match nix::sys::statvfs::statvfs(dir) {
        Ok(stat) => stat.blocks_available() * stat.fragment_size(),
        Err(e) => {
            return check(
                "disk",
                Status::Unknown,
                format!("statvfs {}: {e}", dir.display()),
            );
        }
    };
    metrics.free_bytes = Some(free);
    let text = format!("{} free on {}", bytes(free), dir.display());
    if free < need {
        check(
            "disk",
            Status::Critical,
            format!(
                "{text}: the next backup and its verification need about {}",
                bytes(need)
            ),
        )
    } else if free < policy.min_free_bytes.max(2 * need) {
        check(
            "disk",
            Status::Warning,
            format!(
                "{text}, below {}",
                bytes(policy.min_free_bytes.max(2 * need))
            ),
        )
    } else {
        check("disk", Status::Ok, text)
    }
}

/// Scratch state of interrupted runs: WARNING, since it holds space (a scratch database can be
/// as large as the database) until the next run removes it.
pub(super) fn leftovers_check(repo: &BackupRepository, metrics: &mut HealthMetrics) -> Check {
    let found = repo.leftovers();
    metrics.leftovers = found.len();
    if found.is_empty() {
        return check(
            "leftovers",
            Status::Ok,
            "no scratch state of an interrupted run".to_owned(),
        );
    }
    let list: Vec<String> = found
        .iter()
        .map(|l| {
            let by = if l.pid > 0 {
                format!("{} (pid {})", l.operation, l.pid)
            } else {
                l.operation.clone()
            };
            format!(
                "{} of a {by} interrupted after {}",
                l.what,
                l.started_at.format("%Y-%m-%d %H:%M:%SZ")
            )
        })
        .collect();
    check(
        "leftovers",
        Status::Warning,
        format!(
            "{} left by interrupted runs: {}; the next create, verify or restore removes them",
            found.len(),
            list.join("; ")
        ),
    )
}

pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// For a replicated database: the age of the newest shipped change against the thresholds,
/// and never two lines written at once (a second database, or a second replicator).
pub(super) async fn replication_check(
    repo: &BackupRepository,
    backups: &[BackupManifest],
    policy: &HealthPolicy,
    now: DateTime<Utc>,
    metrics: &mut HealthMetrics,
) -> Check {
    let windows = match repo.windows_of(backups).await {
        Ok(windows) => windows,
        Err(e) => return check("replication", Status::Unknown, crate::error_chain(&e)),
    };
    metrics.generations = windows.len();
    let Some(newest) = windows.iter().max_by_key(|w| (w.to, w.generation.clone())) else {
        return check(
            "replication",
            Status::Ok,
            "not replicated continuously".to_owned(),
        );
    };
    let lag = (now - newest.to).to_std().unwrap_or(Duration::ZERO);
    metrics.replication_lag_seconds = Some(lag.as_secs_f64());
    metrics.restorable_from = Some(newest.from);
    metrics.restorable_to = Some(newest.to);
    // Lines follow each other; one written while the newest one was: two writers.
    let concurrent: Vec<String> = windows
        .iter()
        .filter(|w| {
            w.generation != newest.generation
                && w.started_at < newest.to
                && newest.started_at < w.to
        })
        .map(|w| format!("{} ({})", w.generation, w.written_by))
        .collect();
    if !concurrent.is_empty() {
        return check(
            "replication",
            Status::Critical,
            format!(
                "generation {} ({}) and {} are written at the same time: two databases or two \
                 replicators share this repository",
                newest.generation,
                newest.written_by,
                concurrent.join(", ")
            ),
        );
    }
    let text = format!(
        "newest change shipped {} ago (generation {}, segment {}); restorable from {} to {}",
        human_precise(lag),
        newest.generation,
        newest.last_seq,
        newest.from.format("%Y-%m-%d %H:%M:%SZ"),
        newest.to.format("%Y-%m-%d %H:%M:%S%.3fZ")
    );
    if lag > policy.crit_lag {
        check(
            "replication",
            Status::Critical,
            format!("{text} (critical above {})", human(policy.crit_lag)),
        )
    } else if lag > policy.warn_lag {
        check(
            "replication",
            Status::Warning,
            format!("{text} (warning above {})", human(policy.warn_lag)),
        )
    } else {
        check("replication", Status::Ok, text)
    }
}

/// Seconds with a decimal below two minutes (lags are seconds or less).
fn human_precise(d: Duration) -> String {
    if d < Duration::from_secs(120) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        human(d)
    }
}
