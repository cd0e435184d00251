//! Verification of a base backup by a real recovery: the backup restored into a scratch data
//! directory with its WAL replayed up to where its row counts were taken, PostgreSQL started
//! on a free port, the counts compared with the manifest's, and everything removed.
//!
//! The scratch directory is claimed before it is created ([`crate::scratch`]); a verification
//! killed midway leaves a claim whose lock is gone, and the next operation that takes the
//! repository's lock stops the server still running in it and removes it.

use std::{path::PathBuf, time::Duration};

use serde::Serialize;

use super::{
    base_backup::{BaseBackupManifest, Lsn},
    pitr_restore::{PitrRestoreOptions, RecoveredServer, RecoveryTarget},
};
use crate::{BackupId, BackupRepository, Error, Result, progress::ProgressFn};

/// How base backups are verified.
#[derive(Debug, Clone)]
pub struct BaseVerifyOptions {
    /// The directory of the server programs (`pg_ctl`).
    pub bin_dir: PathBuf,
    /// The role to connect to the recovered server as.
    pub user: String,
    /// The `restore_command` (see [`PitrRestoreOptions::restore_command`]).
    pub restore_command: String,
    /// How long recovery may take.
    pub patience: Duration,
}

/// What a verification of a base backup found.
#[derive(Debug, Clone, Serialize)]
pub struct BaseVerifyReport {
    /// The backup.
    pub id: BackupId,
    /// Whether it recovered and every count matched.
    pub ok: bool,
    /// Where recovery was asked to stop (the newest position the counts were taken at).
    pub target: Lsn,
    /// Where it ended.
    pub recovered_to: Option<Lsn>,
    /// Each difference from the manifest, or why recovery failed.
    pub problems: Vec<String>,
    /// How long it took, seconds.
    pub seconds: f64,
}

/// The differences between the manifest's counts and the recovered server's.
fn compare(manifest: &BaseBackupManifest, server: &RecoveredServer) -> Vec<String> {
    let mut problems = Vec::new();
    for (db, expected) in &manifest.databases {
        let Some(found) = server.databases.get(db) else {
            problems.push(format!("database {db} is missing"));
            continue;
        };
        for (table, rows) in &expected.tables {
            match found.tables.get(table) {
                Some(n) if n == rows => {}
                Some(n) => {
                    problems.push(format!("{db}.{table}: {n} rows, the manifest says {rows}"))
                }
                None => problems.push(format!("{db}.{table} is missing")),
            }
        }
        for table in found.tables.keys() {
            if !expected.tables.contains_key(table) {
                problems.push(format!("{db}.{table} is not in the manifest"));
            }
        }
    }
    problems
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Internal(format!("no free port on 127.0.0.1: {e}")))
}

impl BackupRepository {
    /// Verifies the base backup `id` (the newest without one) by recovering it into a scratch
    /// data directory under the scratch directory, up to where its row counts were taken,
    /// starting PostgreSQL on a free port and comparing the counts; the server is stopped and
    /// the directory removed afterwards, whatever happened.
    ///
    /// A recovery that fails (a damaged base backup or WAL segment) is a report with `ok`
    /// false, not an error.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when there is no such base backup; [`Error::LockHeld`]; the
    /// file system's errors about the scratch directory.
    pub async fn verify_base_backup(
        &self,
        id: Option<&BackupId>,
        options: &BaseVerifyOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<BaseVerifyReport> {
        let started = std::time::Instant::now();
        let backups = self.base_backups().await?;
        let manifest = match id {
            Some(id) => backups.into_iter().find(|b| &b.id == id),
            None => backups.into_iter().next(),
        }
        .ok_or_else(|| {
            Error::InvalidConfig(format!(
                "no base backup {} in {}",
                id.map_or_else(|| "at all".to_owned(), ToString::to_string),
                self.location
            ))
        })?;
        let target = manifest
            .databases
            .values()
            .map(|d| d.counted_at_lsn)
            .max()
            .unwrap_or(manifest.stop_lsn)
            .max(manifest.stop_lsn);

        let scratch_root = self.scratch_dir();
        std::fs::create_dir_all(&scratch_root)
            .map_err(crate::error::io_err("create", &scratch_root))?;
        let dir = scratch_root.join(format!(
            ".hotel-verify-{}-{}",
            manifest.id,
            std::process::id()
        ));
        let claim = self.scratch().claim_file(&dir, "verify-base")?;
        std::fs::create_dir(&dir).map_err(crate::error::io_err("create", &dir))?;
        let pgdata = dir.join("data");
        let restore = PitrRestoreOptions {
            pgdata: pgdata.clone(),
            target: RecoveryTarget::Lsn(target),
            restore_command: options.restore_command.clone(),
            keep_archiving: false,
        };
        let mut problems = Vec::new();
        let mut recovered_to = None;
        match self.restore_pitr_from(&manifest, &restore, progress).await {
            Err(e) => problems.push(format!("restore: {}", crate::error_chain(&e))),
            Ok(_) => {
                let started = match free_port() {
                    Ok(port) => {
                        self.start_recovered(
                            &pgdata,
                            &options.bin_dir,
                            port,
                            &options.user,
                            options.patience,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                match started {
                    Ok(server) => {
                        recovered_to = Some(server.wal_position);
                        problems.extend(compare(&manifest, &server));
                    }
                    Err(e) => problems.push(format!("recovery: {}", crate::error_chain(&e))),
                }
                stop_server(&options.bin_dir, &pgdata).await;
            }
        }
        let removed = std::fs::remove_dir_all(&dir);
        if removed.is_ok() {
            claim.release();
        } else {
            // Left claimed (the lock goes with this process): the next run removes it.
            drop(claim);
        }
        Ok(BaseVerifyReport {
            id: manifest.id,
            ok: problems.is_empty(),
            target,
            recovered_to,
            problems,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Stops the server of `pgdata` at once (nothing of a scratch server is worth a checkpoint),
/// if one runs.
pub(crate) async fn stop_server(bin_dir: &std::path::Path, pgdata: &std::path::Path) {
    if !pgdata.join("postmaster.pid").exists() {
        return;
    }
    let _ = tokio::process::Command::new(bin_dir.join("pg_ctl"))
        .args(["stop", "-m", "immediate", "-w", "-D"])
        .arg(pgdata)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
}
