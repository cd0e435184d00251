//! The backup directory's lock: one create, verify, restore or prune at a time, across
//! processes, so retention never deletes what a restore is reading.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{Error, Result, durable, error::io_err};

/// The lock file's name in the backup directory.
pub(crate) const LOCK_FILE: &str = ".lock";

/// An exclusive `flock` on the backup directory's lock file, released on drop (or by the
/// kernel when the process dies, so a crash never leaves a stale lock).
#[derive(Debug)]
pub(crate) struct RepoLock {
    file: File,
}

impl RepoLock {
    /// Takes the lock for `operation`, retrying until `wait` has passed.
    ///
    /// On success, removes temporary files left by interrupted runs: every writer holds this
    /// lock, so none of them can still be in use.
    pub(crate) async fn acquire(dir: &Path, operation: &str, wait: Duration) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open the lock file", &path))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(Error::LockHeld {
                        dir: dir.to_path_buf(),
                        lock: path,
                        holder: (!holder.is_empty()).then(|| holder.to_owned()),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
        }
        // Who holds the lock, for the error message of whoever waits. Best effort: the lock
        // works without it.
        let note = format!(
            "{operation} (pid {}, since {})",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(note.as_bytes()));
        remove_stale_temp_files(dir);
        Ok(Self { file })
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Removes `*.tmp` files of interrupted runs from the backup directory.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(durable::TEMP_SUFFIX))
        })
        .collect();
    for path in stale {
        tracing::info!(path = %path.display(), "removing a temporary file left by an interrupted run");
        durable::remove_if_exists(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = RepoLock::acquire(dir.path(), "create", Duration::ZERO)
            .await
            .unwrap();
        let err = RepoLock::acquire(dir.path(), "prune", Duration::from_millis(250))
            .await
            .unwrap_err();
        match err {
            Error::LockHeld { holder, .. } => {
                let holder = holder.unwrap();
                assert!(holder.starts_with("create (pid "), "{holder}");
            }
            other => panic!("expected LockHeld, got {other}"),
        }
        drop(first);
        RepoLock::acquire(dir.path(), "prune", Duration::ZERO)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn taking_the_lock_clears_temporary_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("20261125T103000Z.sqlite.zst.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("20261125T103000Z.json"), b"{}").unwrap();
        let _lock = RepoLock::acquire(dir.path(), "create", Duration::ZERO)
            .await
            .unwrap();
        assert!(!dir.path().join("20261125T103000Z.sqlite.zst.tmp").exists());
        assert!(dir.path().join("20261125T103000Z.json").exists());
    }
}
