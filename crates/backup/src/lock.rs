//! The repository's lock: one create, verify, restore or prune at a time, across processes,
//! so retention never deletes what a restore is reading.
//!
//! It is an `flock` on a local file: `.lock` in a local repository, or a file in the scratch
//! directory for a repository in an object store (where it serialises the processes of one
//! host; objects written once keep several hosts from damaging each other's backups).

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::Path,
    time::{Duration, Instant},
};

use crate::{Error, Result, error::io_err};

/// The lock file's name in a local repository.
pub(crate) const LOCK_FILE: &str = ".lock";

/// An exclusive `flock` on the repository's lock file, released on drop (or by the
/// kernel when the process dies, so a crash never leaves a stale lock).
#[derive(Debug)]
pub(crate) struct RepoLock {
    file: File,
}

impl RepoLock {
    /// Takes the lock file at `path` (of the repository `repository`) for `operation`,
    /// retrying until `wait` has passed.
    pub(crate) async fn acquire(
        path: &Path,
        repository: &str,
        operation: &str,
        wait: Duration,
    ) -> Result<Self> {
        let path = path.to_path_buf();
        let open = || {
            // The directory too may have gone with an empty repository's lock file.
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err("create the directory", dir))?;
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_err("open the lock file", &path))
        };
        let mut file = open()?;
        // A wait too long to represent is a wait without end.
        let deadline = Instant::now().checked_add(wait);
        loop {
            match file.try_lock() {
                // The holder may have removed the file (a repository that stayed empty is
                // removed with it): a lock on a file no longer at `path` locks nothing.
                Ok(()) if !is_at(&file, &path) => file = open()?,
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if deadline.is_none_or(|d| Instant::now() < d) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(Error::LockHeld {
                        repository: repository.to_owned(),
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
        Ok(Self { file })
    }
}

/// Whether `file` is the file at `path` (and not one unlinked since it was opened).
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(there)) => open.dev() == there.dev() && open.ino() == there.ino(),
        _ => false,
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let first = RepoLock::acquire(&path, "repo", "create", Duration::ZERO)
            .await
            .unwrap();
        let err = RepoLock::acquire(&path, "repo", "prune", Duration::from_millis(250))
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
        RepoLock::acquire(&path, "repo", "prune", Duration::ZERO)
            .await
            .unwrap();
    }
}
