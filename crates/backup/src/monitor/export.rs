//! The report as monitoring systems read it: a Nagios plugin line, Prometheus text.

use std::path::Path;

use super::{HealthReport, Status};
use crate::{Result, durable};

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
                .find(|c| c.name == "age" || c.name == "base-backup")
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
        if let Some(lag) = m.replication_lag_seconds {
            perf.push(format!("lag={lag:.3}s"));
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
        let seconds = |v: Option<f64>| v.map(|v| vec![(String::new(), v)]).unwrap_or_default();
        gauge(
            "backup_replication_lag_seconds",
            "Age of the newest change (or heartbeat) shipped by continuous replication.",
            seconds(m.replication_lag_seconds),
        );
        gauge(
            "backup_restorable_from_timestamp_seconds",
            "The earliest instant the newest generation can be restored to (Unix seconds).",
            seconds(
                m.restorable_from
                    .map(|t| t.timestamp_millis() as f64 / 1000.0),
            ),
        );
        gauge(
            "backup_restorable_to_timestamp_seconds",
            "The latest instant the newest generation can be restored to (Unix seconds).",
            seconds(
                m.restorable_to
                    .map(|t| t.timestamp_millis() as f64 / 1000.0),
            ),
        );
        let pitr = m.pitr.clone().unwrap_or_default();
        let signed = |v: Option<i64>| {
            v.map(|v| vec![(String::new(), v as f64)])
                .unwrap_or_default()
        };
        let instant = |v: Option<chrono::DateTime<chrono::Utc>>| {
            seconds(v.map(|t| t.timestamp_millis() as f64 / 1000.0))
        };
        if m.pitr.is_some() {
            gauge(
                "backup_pitr_base_backups",
                "PostgreSQL base backups in the repository.",
                vec![(String::new(), pitr.base_backups as f64)],
            );
        }
        gauge(
            "backup_pitr_newest_base_age_seconds",
            "Age of the newest PostgreSQL base backup.",
            signed(pitr.newest_base_age_seconds),
        );
        gauge(
            "backup_pitr_newest_wal_age_seconds",
            "Age of the newest archived WAL segment.",
            signed(pitr.newest_wal_age_seconds),
        );
        gauge(
            "backup_pitr_segments_behind",
            "Finished WAL segments the server has not archived yet (pg_stat_archiver).",
            optional(pitr.segments_behind),
        );
        gauge(
            "backup_pitr_failed_archive_runs",
            "Failed archive_command runs since the server's statistics were reset.",
            signed(pitr.failed_archive_runs),
        );
        gauge(
            "backup_pitr_restorable_from_timestamp_seconds",
            "The earliest instant PostgreSQL can be recovered to (Unix seconds).",
            instant(pitr.restorable_from),
        );
        gauge(
            "backup_pitr_restorable_to_timestamp_seconds",
            "About the latest instant PostgreSQL can be recovered to (Unix seconds).",
            instant(pitr.restorable_to),
        );
        gauge(
            "backup_replication_generations",
            "Generations (lines of snapshots and segments) in the repository.",
            vec![(String::new(), m.generations as f64)],
        );
        gauge(
            "backup_leftovers",
            "Scratch files and databases left by interrupted runs (removed by the next run).",
            vec![(String::new(), m.leftovers as f64)],
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
