//! Point-in-time restores of a PostgreSQL cluster: the newest base backup before the target,
//! unpacked into a new data directory with the recovery settings that replay the archived WAL
//! up to the target; optionally started on a port and checked.
//!
//! The data directory is built beside its final place, in `.<name>.hotel-restore-<pid>`
//! (claimed as scratch state, so a restore killed midway leaves nothing that blocks the next
//! one), and renamed into place once complete. A directory that is not empty is never
//! written to, and one holding a running cluster (its `postmaster.pid` names a live process)
//! is refused with [`Error::DatabaseInUse`].
//!
//! Before anything is written, the archive is checked to hold every segment from the base
//! backup's start to the target (or to the newest archived segment for `--latest` and time
//! targets): a missing segment is an error, never the silent end of recovery.

use std::{
    collections::BTreeSet,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, Connection};
use serde::Serialize;

use super::{
    PgUrl,
    base_backup::{BaseBackupManifest, DatabaseCounts, Lsn, next_segment, segment_name},
    row_counts,
};
use crate::{
    BackupRepository, Error, Result,
    error::io_err,
    progress::{Phase, ProgressFn, run_blocking},
    run_log::Operation,
    stream,
};

/// Where recovery stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "at", rename_all = "kebab-case")]
pub enum RecoveryTarget {
    /// Everything archived.
    Latest,
    /// Every transaction committed at or before this instant.
    Time(DateTime<Utc>),
    /// Everything up to and including this WAL position.
    Lsn(Lsn),
}

/// How a point-in-time restore is done.
#[derive(Debug, Clone)]
pub struct PitrRestoreOptions {
    /// The data directory to create (missing or empty).
    pub pgdata: PathBuf,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// The shell command PostgreSQL runs to fetch a WAL file, with `%f` and `%p`
    /// (`'/usr/bin/hotel-backup' -d '/backups' wal-fetch %f %p`).
    pub restore_command: String,
    /// Leave `archive_mode` as the backup had it. Default (false): the restored cluster does
    /// not archive, so a check or a drill never writes a new timeline into the repository;
    /// turn archiving on once it replaces the original.
    pub keep_archiving: bool,
}

/// What a point-in-time restore did.
#[derive(Debug, Clone, Serialize)]
pub struct PitrRestoreReport {
    /// The base backup it started from.
    pub base_backup: BaseBackupManifest,
    /// The data directory.
    pub pgdata: PathBuf,
    /// The target.
    pub target: RecoveryTarget,
    /// The archived segments recovery will replay from (first and last checked).
    pub wal_from: String,
    /// The last segment known to be needed and present.
    pub wal_to: String,
    /// The recovery settings written to `postgresql.auto.conf`.
    pub settings: Vec<String>,
}

/// What starting the restored cluster showed.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveredServer {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The postmaster's process id (it keeps running).
    pub pid: Option<u32>,
    /// Where recovery ended: the server's WAL position once promoted.
    pub wal_position: Lsn,
    /// Row counts of every database.
    pub databases: std::collections::BTreeMap<String, DatabaseCounts>,
    /// The server's log file.
    pub log: PathBuf,
}

/// Quotes a value for postgresql.conf.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Refuses a data directory that holds a running cluster or anything at all.
fn check_target_dir(pgdata: &Path) -> Result<()> {
    let pid_file = pgdata.join("postmaster.pid");
    if let Ok(text) = std::fs::read_to_string(&pid_file)
        && let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        && Path::new(&format!("/proc/{pid}")).exists()
    {
        return Err(Error::DatabaseInUse {
            target: pgdata.display().to_string(),
            detail: format!("a PostgreSQL server runs on it (postmaster pid {pid})"),
        });
    }
    match std::fs::read_dir(pgdata) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::InvalidConfig(format!(
                    "{} is not empty; a restore only writes a new or empty data directory",
                    pgdata.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("read", pgdata, e)),
    }
}

impl BackupRepository {
    /// The newest base backup a restore to `target` starts from.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when no base backup ends before the target.
    pub async fn base_backup_for(&self, target: RecoveryTarget) -> Result<BaseBackupManifest> {
        let backups = self.base_backups().await?;
        let oldest = backups.last().map(|b| (b.finished_at, b.stop_lsn));
        backups
            .into_iter()
            .find(|b| match target {
                RecoveryTarget::Latest => true,
                RecoveryTarget::Time(at) => b.finished_at <= at,
                RecoveryTarget::Lsn(lsn) => b.stop_lsn <= lsn,
            })
            .ok_or_else(|| {
                Error::InvalidConfig(match oldest {
                    None => format!("{} holds no base backup", self.location),
                    Some((at, lsn)) => format!(
                        "no base backup ends before the target; the oldest ends at {at} \
                         (WAL position {lsn})"
                    ),
                })
            })
    }

    /// Checks that the archive holds every segment from `from` through `to` (or, without
    /// `to`, through the newest archived segment of that timeline); returns the last one.
    async fn check_wal_chain(
        &self,
        from: &str,
        to: Option<&str>,
        segment_size: u64,
    ) -> Result<String> {
        let timeline = &from[..8];
        let archived: BTreeSet<String> = self
            .archived_wal()
            .await?
            .into_iter()
            .filter(|w| w.kind == crate::WalFileKind::Segment && w.name.starts_with(timeline))
            .map(|w| w.name)
            .collect();
        let last = match to {
            Some(to) => to.to_owned(),
            None => archived
                .iter()
                .next_back()
                .cloned()
                .unwrap_or_else(|| from.to_owned()),
        };
        let mut at = from.to_owned();
        loop {
            if !archived.contains(&at) {
                return Err(Error::Corrupt {
                    object: self.store.describe(&super::wal::wal_key(&at)),
                    reason: format!(
                        "the WAL segment {at}, needed to recover from {from} to {last}, is \
                         missing from the archive"
                    ),
                });
            }
            if at >= last {
                return Ok(last);
            }
            at = next_segment(&at, segment_size)
                .ok_or_else(|| Error::Internal(format!("`{at}` is not a segment name")))?;
        }
    }

    /// Restores the cluster as of `options.target` into `options.pgdata`: the newest base
    /// backup before the target, checked against its SHA-256, with the recovery settings
    /// (`restore_command`, the target, `recovery.signal`). Starting PostgreSQL on it replays
    /// the WAL; see [`BackupRepository::start_recovered`].
    ///
    /// # Errors
    ///
    /// [`Error::DatabaseInUse`] for a data directory of a running server;
    /// [`Error::InvalidConfig`] for a non-empty one or a target before every base backup;
    /// [`Error::Corrupt`] when the base backup or a needed WAL segment is damaged or missing;
    /// [`Error::LockHeld`]; the store's and the file system's errors.
    pub async fn restore_pitr(
        &self,
        options: &PitrRestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<PitrRestoreReport> {
        check_target_dir(&options.pgdata)?;
        let base = self.base_backup_for(options.target).await?;
        self.restore_pitr_from(&base, options, progress).await
    }

    /// [`BackupRepository::restore_pitr`] from the base backup `base`.
    pub(crate) async fn restore_pitr_from(
        &self,
        base: &BaseBackupManifest,
        options: &PitrRestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<PitrRestoreReport> {
        let base = base.clone();
        let pgdata =
            std::path::absolute(&options.pgdata).map_err(io_err("resolve", &options.pgdata))?;
        check_target_dir(&pgdata)?;
        let to = match options.target {
            RecoveryTarget::Lsn(lsn) => {
                Some(segment_name(base.timeline, lsn, base.wal_segment_size))
            }
            _ => None,
        };
        let wal_to = self
            .check_wal_chain(&base.start_wal, to.as_deref(), base.wal_segment_size)
            .await?;
        if wal_to < base.stop_wal {
            return Err(Error::Corrupt {
                object: self.store.describe(&super::wal::wal_key(&base.stop_wal)),
                reason: format!(
                    "the base backup {} needs WAL through {}",
                    base.id, base.stop_wal
                ),
            });
        }

        let _lock = self.lock(Operation::Restore).await?;
        let parent = pgdata
            .parent()
            .ok_or_else(|| Error::InvalidConfig(format!("{} has no parent", pgdata.display())))?
            .to_path_buf();
        let name = pgdata
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let staging = parent.join(format!(".{name}.hotel-restore-{}", std::process::id()));
        let claim = self.scratch().claim_file(&staging, "restore")?;
        let built = self
            .build_data_dir(&base, &staging, options, progress)
            .await;
        let settings = match built {
            Ok(settings) => settings,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                claim.release();
                return Err(e);
            }
        };
        // A missing or empty target: rename(2) replaces an empty directory.
        check_target_dir(&pgdata)?;
        if let Err(e) = std::fs::rename(&staging, &pgdata) {
            let _ = std::fs::remove_dir_all(&staging);
            claim.release();
            return Err(Error::io("rename into place", &pgdata, e));
        }
        claim.release();
        Ok(PitrRestoreReport {
            wal_from: base.start_wal.clone(),
            base_backup: base,
            pgdata,
            target: options.target,
            wal_to,
            settings,
        })
    }

    /// Unpacks the base backup into `dir` and writes the recovery settings.
    async fn build_data_dir(
        &self,
        base: &BaseBackupManifest,
        dir: &Path,
        options: &PitrRestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<Vec<String>> {
        std::fs::create_dir(dir).map_err(io_err("create", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("set the permissions of", dir))?;
        let object = self.store.describe(&base.file);
        let Some(reader) = self.store.download(&base.file).await? else {
            return Err(Error::Corrupt {
                object,
                reason: "the base backup's data is missing".to_owned(),
            });
        };
        let target = dir.to_path_buf();
        let total = Some(base.compressed_bytes);
        let path = PathBuf::from(&object);
        let (decompressed, tar_ok, tar_err) =
            run_blocking(Phase::Decompress, progress, move |tx| {
                let mut tar = Command::new("tar")
                    .args(["--extract", "--file=-", "--no-same-owner", "--directory"])
                    .arg(&target)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|source| Error::ToolMissing {
                        tool: "tar".to_owned(),
                        source,
                    })?;
                let mut stdin = tar
                    .stdin
                    .take()
                    .ok_or_else(|| Error::Internal("tar has no stdin".to_owned()))?;
                let done =
                    stream::decompress(reader, &path, total, &mut stdin, Path::new("tar"), &tx);
                drop(stdin);
                let output = tar
                    .wait_with_output()
                    .map_err(|e| Error::Internal(format!("tar: {e}")))?;
                Ok::<_, Error>((
                    done?,
                    output.status.success(),
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                ))
            })
            .await??;
        if decompressed.sha256 != base.sha256 {
            return Err(Error::Corrupt {
                object,
                reason: format!(
                    "checksum mismatch: SHA-256 {}, the manifest says {}",
                    decompressed.sha256, base.sha256
                ),
            });
        }
        if let Some(reason) = decompressed.decode_error {
            return Err(Error::Corrupt { object, reason });
        }
        if !tar_ok {
            return Err(Error::DumpFailed {
                tool: "tar".to_owned(),
                status: "failed".to_owned(),
                stderr: tar_err,
            });
        }
        std::fs::create_dir_all(dir.join("pg_wal/archive_status"))
            .map_err(io_err("create", &dir.join("pg_wal")))?;

        let mut settings = vec![
            format!("restore_command = {}", conf_quote(&options.restore_command)),
            "recovery_target_action = 'promote'".to_owned(),
        ];
        match options.target {
            RecoveryTarget::Latest => {
                settings.push("recovery_target_timeline = 'latest'".to_owned());
            }
            RecoveryTarget::Time(at) => {
                settings.push("recovery_target_timeline = 'current'".to_owned());
                settings.push(format!(
                    "recovery_target_time = {}",
                    conf_quote(&at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
                ));
            }
            RecoveryTarget::Lsn(lsn) => {
                settings.push("recovery_target_timeline = 'current'".to_owned());
                settings.push(format!(
                    "recovery_target_lsn = {}",
                    conf_quote(&lsn.to_string())
                ));
            }
        }
        if !options.keep_archiving {
            settings.push("archive_mode = 'off'".to_owned());
        }
        let auto = dir.join("postgresql.auto.conf");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&auto)
            .map_err(io_err("open", &auto))?;
        let mut text = format!(
            "\n# Written by hotel-backup restore: base backup {}, target {:?}\n",
            base.id, options.target
        );
        for line in &settings {
            text.push_str(line);
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &auto))?;
        let signal = dir.join("recovery.signal");
        std::fs::write(&signal, b"").map_err(io_err("create", &signal))?;
        Ok(settings)
    }

    /// Starts PostgreSQL (`pg_ctl` in `bin_dir`) on a restored data directory, on `port` of
    /// 127.0.0.1, waits until recovery has ended and the server is promoted (at most
    /// `patience`), then counts the rows of every database as `user`. The server keeps
    /// running.
    ///
    /// # Errors
    ///
    /// [`Error::DumpFailed`] with the server's log when it does not start or recovery fails
    /// (a damaged or missing WAL segment, a target the archive does not reach);
    /// [`Error::Internal`] when recovery does not end within `patience`; the database's
    /// errors.
    pub async fn start_recovered(
        &self,
        pgdata: &Path,
        bin_dir: &Path,
        port: u16,
        user: &str,
        patience: Duration,
    ) -> Result<RecoveredServer> {
        let log = pgdata.join("hotel-restore-start.log");
        let options =
            format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''");
        let output = tokio::process::Command::new(bin_dir.join("pg_ctl"))
            .arg("start")
            .arg("-D")
            .arg(pgdata)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "-w", "-t"])
            .arg(patience.as_secs().max(1).to_string())
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| Error::ToolMissing {
                tool: "pg_ctl".to_owned(),
                source,
            })?;
        let log_tail = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let start = text.len().saturating_sub(8 * 1024);
            text.get(start..).unwrap_or_default().trim().to_owned()
        };
        if !output.status.success() {
            return Err(Error::DumpFailed {
                tool: "pg_ctl start (recovery)".to_owned(),
                status: output.status.to_string(),
                stderr: log_tail(),
            });
        }
        let url = PgUrl::parse(&format!("postgres://{user}@127.0.0.1:{port}/postgres"))?;
        let deadline = Instant::now() + patience;
        // The server accepts connections once consistent, while it still replays: a
        // recovery that fails later (a damaged segment) ends the server, and its log says why.
        let failed = |e: String| Error::DumpFailed {
            tool: "PostgreSQL recovery".to_owned(),
            status: e,
            stderr: log_tail(),
        };
        let mut conn = url
            .connect()
            .await
            .map_err(|e| failed(crate::error_chain(&e)))?;
        loop {
            let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| failed(format!("the server stopped answering: {e}")))?;
            if !in_recovery {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Internal(format!(
                    "recovery did not end within {patience:?}; the server runs on port {port}; \
                     log:\n{}",
                    log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let position: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::db("reading the recovered position", e))?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| Error::db("listing the recovered databases", e))?;
        let _ = conn.close().await;
        let mut databases = std::collections::BTreeMap::new();
        for name in names {
            let db = url.with_database(&name);
            let mut conn = db.connect().await?;
            let tables = row_counts(&mut conn)
                .await
                .map_err(|e| Error::db(format!("counting the rows of {}", db.public()), e))?;
            let _ = conn.close().await;
            databases.insert(
                name,
                DatabaseCounts {
                    counted_at_lsn: position.parse()?,
                    tables,
                },
            );
        }
        let pid = std::fs::read_to_string(pgdata.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
        Ok(RecoveredServer {
            port,
            pid,
            wal_position: position.parse()?,
            databases,
            log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_or_running_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_target_dir(&dir.path().join("new")).unwrap();
        check_target_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("PG_VERSION"), "15").unwrap();
        assert!(matches!(
            check_target_dir(dir.path()),
            Err(Error::InvalidConfig(_))
        ));
        std::fs::write(
            dir.path().join("postmaster.pid"),
            format!("{}\n/data\n", std::process::id()),
        )
        .unwrap();
        assert!(matches!(
            check_target_dir(dir.path()),
            Err(Error::DatabaseInUse { .. })
        ));
        assert_eq!(conf_quote("a 'b' \\c"), "'a ''b'' \\\\c'");
    }
}
