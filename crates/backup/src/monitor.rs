//! Health of a backup directory, as a monitoring system wants it: Nagios statuses and exit
//! codes, and Prometheus metrics.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use backup::{BackupRepository, monitor::{self, HealthPolicy, Status}};
//! let dir = tempfile::tempdir()?;
//! let repo = BackupRepository::open(dir.path())?;
//! let report = monitor::assess(&repo, &HealthPolicy::default(), chrono::Utc::now());
//! // No backup at all: critical, exit code 2.
//! assert_eq!(report.status, Status::Critical);
//! assert_eq!(report.status.exit_code(), 2);
//! assert!(report.nagios_line().starts_with("BACKUP CRITICAL"));
//! # Ok(())
//! # }
//! ```

use std::{fmt, path::Path, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{BackupManifest, BackupRepository, Result, durable, run_log::Operation};

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
        }
    }
}

mod secs {
    pub(super) fn serialize<S: serde::Serializer>(
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
    /// `disk`, `manifests`.
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
/// assessed is UNKNOWN.
pub fn assess(repo: &BackupRepository, policy: &HealthPolicy, now: DateTime<Utc>) -> HealthReport {
    let mut checks = Vec::new();
    let mut metrics = HealthMetrics::default();
    let listing = match repo.list() {
        Ok(listing) => listing,
        Err(e) => {
            checks.push(check("directory", Status::Unknown, format!("{e}")));
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

    checks.push(age_check(&listing.backups, policy, now, &mut metrics));
    checks.push(last_run_check(repo, &mut metrics));
    checks.push(size_check(&usable, policy));
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
    checks.push(verification_check(newest, policy, now));
    checks.push(disk_check(repo.dir(), newest, policy, &mut metrics));
    let unreadable: Vec<String> = listing
        .ignored
        .iter()
        .filter(|i| i.path.extension().is_some_and(|e| e == "json"))
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

fn check(name: &'static str, status: Status, message: String) -> Check {
    Check {
        name,
        status,
        message,
    }
}

fn age_check(
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

fn last_run_check(repo: &BackupRepository, metrics: &mut HealthMetrics) -> Check {
    let log = match repo.last_runs() {
        Ok(log) => log,
        Err(e) => return check("last-run", Status::Unknown, e.to_string()),
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

fn size_check(usable: &[&BackupManifest], policy: &HealthPolicy) -> Check {
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

fn verification_check(
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
                newest.id, v.verified_at
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

fn disk_check(
    dir: &Path,
    newest: Option<&BackupManifest>,
    policy: &HealthPolicy,
    metrics: &mut HealthMetrics,
) -> Check {
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
    // The next backup needs its file, and its verification a decompressed copy.
    let need = newest.map_or(0, |m| m.compressed_bytes + m.raw_bytes);
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

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl HealthReport {
    /// The Nagios plugin output line: `BACKUP <STATUS> - <problems or summary> | <perfdata>`.
    pub fn nagios_line(&self) -> String {
        let problems: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| c.status != Status::Ok)
            .map(|c| c.message.as_str())
            .collect();
        let summary = if problems.is_empty() {
            self.checks
                .iter()
                .find(|c| c.name == "age")
                .map_or("backups healthy", |c| c.message.as_str())
                .to_owned()
        } else {
            problems.join("; ")
        };
        let m = &self.metrics;
        let mut perf = vec![format!("backups={}", m.backups)];
        if let Some(age) = m.newest_verified_age_seconds {
            perf.push(format!("age={age}s"));
        }
        if let Some(free) = m.free_bytes {
            perf.push(format!("free={free}B"));
        }
        if let Some(raw) = m.newest_raw_bytes {
            perf.push(format!("size={raw}B"));
        }
        format!("BACKUP {} - {summary} | {}", self.status, perf.join(" "))
    }

    /// The health as Prometheus text exposition format (for node_exporter's textfile
    /// collector).
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, samples: Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        let m = &self.metrics;
        gauge(
            "backup_health_status",
            "Overall backup health: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            vec![(String::new(), f64::from(self.status.exit_code()))],
        );
        gauge(
            "backup_check_status",
            "Status of each health check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            self.checks
                .iter()
                .map(|c| {
                    (
                        format!("{{check=\"{}\"}}", c.name),
                        f64::from(c.status.exit_code()),
                    )
                })
                .collect(),
        );
        gauge(
            "backup_count",
            "Usable backups (not failed verification).",
            vec![(String::new(), m.backups as f64)],
        );
        let optional = |v: Option<u64>| {
            v.map(|v| vec![(String::new(), v as f64)])
                .unwrap_or_default()
        };
        gauge(
            "backup_newest_verified_timestamp_seconds",
            "Creation time of the newest verified backup (Unix seconds).",
            optional(
                m.newest_verified_at
                    .and_then(|t| u64::try_from(t.timestamp()).ok()),
            ),
        );
        gauge(
            "backup_newest_verified_age_seconds",
            "Age of the newest verified backup.",
            optional(m.newest_verified_age_seconds),
        );
        gauge(
            "backup_newest_raw_bytes",
            "Snapshot size of the newest backup.",
            optional(m.newest_raw_bytes),
        );
        gauge(
            "backup_newest_compressed_bytes",
            "File size of the newest backup.",
            optional(m.newest_compressed_bytes),
        );
        gauge(
            "backup_free_bytes",
            "Free space on the backup directory's disk.",
            optional(m.free_bytes),
        );
        gauge(
            "backup_last_run_success",
            "Whether the latest run of each operation succeeded.",
            m.last_run_ok
                .iter()
                .map(|(op, ok)| {
                    (
                        format!("{{operation=\"{op}\"}}"),
                        if *ok { 1.0 } else { 0.0 },
                    )
                })
                .collect(),
        );
        out
    }

    /// Writes [`HealthReport::prometheus_text`] to `path` atomically (the collector never
    /// reads half a file).
    ///
    /// # Errors
    ///
    /// I/O errors on `path`'s directory.
    pub fn write_prometheus(&self, path: &Path) -> Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                crate::Error::InvalidConfig(format!("{} is not a file path", path.display()))
            })?;
        durable::write_atomically(dir, &name, self.prometheus_text().as_bytes())
    }
}
