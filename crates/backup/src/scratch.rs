//! Scratch state of running operations, registered so that what a run leaves when it dies is
//! found and removed by the next one.
//!
//! A verification restores into a scratch database, a restore builds its copy beside the
//! target (a file, or a new PostgreSQL database), a `VACUUM INTO` snapshot writes a copy into
//! the scratch directory. A run killed with SIGKILL (or a cancelled task) cannot remove them,
//! and names derived from the backup would then block every retry.
//!
//! So every piece of scratch state is *claimed* before it is created: a small claim file in the
//! repository's control directory (`.scratch/` beside the lock file) says what it is, and its
//! owner holds an exclusive `flock` on it for as long as the state is its own. The kernel drops
//! the lock when the owner dies, so a claim whose lock is free is a **leftover**: the next
//! operation (under the repository's lock) removes the state and then the claim; `monitor`
//! reports the leftovers it finds without touching them.
//!
//! Invariants:
//! - The claim exists (written, fsync'd, renamed into place) before the state is created, and
//!   is removed only after the state is gone or has become permanent (a restored database that
//!   replaced its target): no state of ours is ever unclaimed.
//! - A claim under a live owner's lock is never touched by anyone else.
//! - Removing state needs what only some runs have: a file needs nothing, a PostgreSQL
//!   database needs a connection to its server (the claim never records a password), so a
//!   database claim waits for the next run that connects to that server.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Write},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    durable::{self, TEMP_SUFFIX},
    error::io_err,
};

/// The directory of claims, inside the repository's control directory.
pub(crate) const CLAIMS_DIR: &str = ".scratch";

/// A piece of scratch state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum ScratchItem {
    /// A local file.
    File {
        /// Its path.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    PostgresDatabase {
        /// The server, `postgres://host:port` (no user, no password).
        server: String,
        /// The database.
        database: String,
    },
}

impl std::fmt::Display for ScratchItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File { path } => write!(f, "file {}", path.display()),
            Self::PostgresDatabase { server, database } => {
                write!(f, "database {database} on {server}")
            }
        }
    }
}

/// What a claim file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClaimRecord {
    item: ScratchItem,
    operation: String,
    pid: u32,
    started_at: DateTime<Utc>,
}

/// Scratch state left by a run that died (or was cancelled) before removing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    /// What it is: `file <path>`, `database <name> on postgres://host:port`.
    pub what: String,
    /// The operation that created it (`verify`, `restore`, `create`, ...).
    pub operation: String,
    /// The process that created it (no longer running, or no longer owning it).
    pub pid: u32,
    /// When that operation started.
    pub started_at: DateTime<Utc>,
}

/// The claims of one repository's control directory.
#[derive(Debug, Clone)]
pub(crate) struct ScratchRegistry {
    dir: PathBuf,
}

/// A claim on a piece of scratch state, held (locked) by this process.
///
/// [`ScratchClaim::release`] forgets it once the state is gone or permanent. Dropped without
/// that, the claim stays and its lock goes: the state is then a leftover, removed by the next
/// run (or by [`crate::BackupRepository::clean_leftovers`]).
#[derive(Debug)]
pub(crate) struct ScratchClaim {
    path: PathBuf,
    _locked: File,
}

impl ScratchClaim {
    /// The state is gone (or now permanent): the claim file goes, then the lock.
    pub(crate) fn release(self) {
        durable::remove_if_exists(&self.path);
    }
}

/// Kills (SIGKILL) the processes working in `dir` or below it: the PostgreSQL server a dead
/// verification started on its scratch data directory (every server process has its data
/// directory as working directory). Waits a few seconds for them to go.
fn stop_processes_in(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else {
        return;
    };
    let in_dir = || -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
                let state = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                let zombie = state
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
                (cwd.starts_with(&dir) && !zombie).then_some(pid)
            })
            .collect()
    };
    for _ in 0..100 {
        let pids = in_dir();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            tracing::info!(pid, dir = %dir.display(), "stopping a process left in a scratch directory");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A claim file found in the registry, locked by us (so its owner is gone).
struct DeadClaim {
    path: PathBuf,
    record: Option<ClaimRecord>,
    _locked: File,
}

impl ScratchRegistry {
    /// The registry of the control directory `control_dir` (where the repository's lock is).
    pub(crate) fn new(control_dir: &Path) -> Self {
        Self {
            dir: control_dir.join(CLAIMS_DIR),
        }
    }

    /// Claims `item` for `operation`: durable and locked before the caller creates it.
    pub(crate) fn claim(&self, item: ScratchItem, operation: &str) -> Result<ScratchClaim> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir).map_err(io_err("create the directory", &self.dir))?;
        let record = ClaimRecord {
            item,
            operation: operation.to_owned(),
            pid: std::process::id(),
            started_at: Utc::now(),
        };
        let bytes = serde_json::to_vec_pretty(&record)
            .map_err(|e| Error::Internal(format!("cannot encode a scratch claim: {e}")))?;
        // The pid alone could repeat (a dead owner's claim with a recycled pid): the time and
        // a counter make the name unique.
        let name = format!(
            "{operation}-{}-{}-{}.json",
            record.pid,
            record.started_at.format("%Y%m%dT%H%M%S%.9fZ"),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.dir.join(&name);
        // Written under a temporary name and renamed: a reader never sees a claim that is not
        // yet locked or not yet complete. The lock follows the inode through the rename.
        let temp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io_err("create", &temp))?;
        let written = file
            .try_lock()
            .map_err(|e| Error::Internal(format!("cannot lock {}: {e}", temp.display())))
            .and_then(|()| file.write_all(&bytes).map_err(io_err("write", &temp)))
            .and_then(|()| file.sync_all().map_err(io_err("fsync", &temp)))
            .and_then(|()| std::fs::rename(&temp, &path).map_err(io_err("rename", &path)))
            .and_then(|()| durable::sync_dir(&self.dir));
        if let Err(e) = written {
            durable::remove_if_exists(&temp);
            durable::remove_if_exists(&path);
            return Err(e);
        }
        Ok(ScratchClaim {
            path,
            _locked: file,
        })
    }

    /// Claims a file about to be created at `path`.
    pub(crate) fn claim_file(&self, path: &Path, operation: &str) -> Result<ScratchClaim> {
        self.claim(
            ScratchItem::File {
                path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            },
            operation,
        )
    }

    /// The claims whose owner is gone, each locked by us while we hold it. Claims that
    /// cannot be read are included (with no record) so that they can be removed.
    fn dead_claims(&self) -> Vec<DeadClaim> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut dead = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let Ok(mut file) = OpenOptions::new().read(true).open(&path) else {
                continue;
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    tracing::warn!(claim = %path.display(), error = %e, "cannot lock a scratch claim");
                    continue;
                }
            }
            // Removed by another run's recovery between our open and our lock.
            if file.metadata().is_ok_and(|m| m.nlink() == 0) {
                continue;
            }
            let mut bytes = Vec::new();
            let record = file
                .read_to_end(&mut bytes)
                .ok()
                .and_then(|_| serde_json::from_slice::<ClaimRecord>(&bytes).ok());
            dead.push(DeadClaim {
                path,
                record,
                _locked: file,
            });
        }
        dead.sort_by(|a, b| a.path.cmp(&b.path));
        dead
    }

    /// The leftovers of dead runs, for the monitor: changes nothing. A claimed file that no
    /// longer exists is not a leftover (its owner removed it and died before its claim).
    pub(crate) fn leftovers(&self) -> Vec<Leftover> {
        self.dead_claims()
            .into_iter()
            .filter_map(|claim| {
                let record = claim.record?;
                if let ScratchItem::File { path } = &record.item
                    && !path.exists()
                {
                    return None;
                }
                Some(Leftover {
                    what: record.item.to_string(),
                    operation: record.operation,
                    pid: record.pid,
                    started_at: record.started_at,
                })
            })
            .collect()
    }

    /// Removes the files of dead claims, then the claims (the caller holds the repository's
    /// lock). Database claims are left for [`ScratchRegistry::recover_databases`]. Returns
    /// what was removed.
    pub(crate) fn recover_files(&self) -> Vec<Leftover> {
        let mut removed = Vec::new();
        for claim in self.dead_claims() {
            let Some(record) = &claim.record else {
                tracing::warn!(claim = %claim.path.display(), "removing an unreadable scratch claim");
                durable::remove_if_exists(&claim.path);
                continue;
            };
            let ScratchItem::File { path } = &record.item else {
                continue;
            };
            if path.exists() {
                if !durable::is_unlocked(path) {
                    // A temporary file whose writer is alive: not ours to remove after all.
                    continue;
                }
                tracing::info!(path = %path.display(), operation = %record.operation, pid = record.pid, "removing a file left by an interrupted run");
                // A restore's data directory in the making, or a verification's with its
                // server still running, is a directory.
                let gone = if path.is_dir() {
                    stop_processes_in(path);
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                };
                if let Err(e) = gone
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover file; the next run retries");
                    continue;
                }
                removed.push(leftover(record));
            }
            durable::remove_if_exists(&claim.path);
        }
        removed
    }

    /// Drops the databases of dead claims on the server `server` (`postgres://host:port`)
    /// through `admin`, then the claims. Returns what was removed.
    #[cfg(feature = "postgres")]
    pub(crate) async fn recover_databases(
        &self,
        server: &str,
        admin: &mut crate::postgres::admin::Admin,
    ) -> Vec<Leftover> {
        let mut removed = Vec::new();
        for claim in self.dead_claims() {
            let Some(record) = &claim.record else {
                continue;
            };
            let ScratchItem::PostgresDatabase {
                server: on,
                database,
            } = &record.item
            else {
                continue;
            };
            if on != server {
                continue;
            }
            tracing::info!(database = %database, operation = %record.operation, pid = record.pid, "dropping a database left by an interrupted run");
            if admin.drop_quietly(database).await {
                removed.push(leftover(record));
                durable::remove_if_exists(&claim.path);
            }
        }
        removed
    }
}

fn leftover(record: &ClaimRecord) -> Leftover {
    Leftover {
        what: record.item.to_string(),
        operation: record.operation.clone(),
        pid: record.pid,
        started_at: record.started_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_claim_is_no_leftover_and_a_dropped_one_is_recovered() {
        let control = tempfile::tempdir().unwrap();
        let registry = ScratchRegistry::new(control.path());
        let file = control.path().join("copy.tmp");

        let live = registry.claim_file(&file, "restore").unwrap();
        std::fs::write(&file, b"partial").unwrap();
        assert!(registry.leftovers().is_empty(), "its owner holds the claim");
        assert!(registry.recover_files().is_empty());
        assert!(file.exists());

        // The owner goes without removing anything: the claim's lock goes with it.
        drop(live);
        let found = registry.leftovers();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].operation, "restore");
        assert_eq!(found[0].pid, std::process::id());
        assert!(found[0].what.ends_with("copy.tmp"), "{}", found[0].what);
        assert!(file.exists(), "monitoring changes nothing");

        assert_eq!(registry.recover_files().len(), 1);
        assert!(!file.exists());
        assert!(registry.leftovers().is_empty());
        assert_eq!(
            std::fs::read_dir(control.path().join(CLAIMS_DIR))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_released_claim_leaves_nothing() {
        let control = tempfile::tempdir().unwrap();
        let registry = ScratchRegistry::new(control.path());
        let claim = registry
            .claim(
                ScratchItem::PostgresDatabase {
                    server: "postgres://db:5432".to_owned(),
                    database: "hotel_verify_x".to_owned(),
                },
                "verify",
            )
            .unwrap();
        claim.release();
        assert!(registry.leftovers().is_empty());
        assert_eq!(
            std::fs::read_dir(control.path().join(CLAIMS_DIR))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_dead_database_claim_waits_for_its_server() {
        let control = tempfile::tempdir().unwrap();
        let registry = ScratchRegistry::new(control.path());
        drop(
            registry
                .claim(
                    ScratchItem::PostgresDatabase {
                        server: "postgres://db:5432".to_owned(),
                        database: "hotel_verify_x".to_owned(),
                    },
                    "verify",
                )
                .unwrap(),
        );
        assert!(registry.recover_files().is_empty());
        let found = registry.leftovers();
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "database hotel_verify_x on postgres://db:5432"
        );
    }

    #[test]
    fn a_missing_registry_is_empty_and_stays_missing() {
        let control = tempfile::tempdir().unwrap();
        let registry = ScratchRegistry::new(&control.path().join("nowhere"));
        assert!(registry.leftovers().is_empty());
        assert!(registry.recover_files().is_empty());
        assert!(!control.path().join("nowhere").exists());
    }
}
