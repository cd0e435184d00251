//! Files that are either complete on disk or absent: write under a temporary name, fsync,
//! rename (or link), fsync the directory.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{Error, Result, error::io_err};

/// The suffix of every temporary file this crate writes. Whatever carries it is an
/// interrupted write, never a backup, and is removed by the next operation holding the lock.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// A file being written under a temporary name; removed on drop unless persisted.
///
/// While it exists, the file carries an exclusive `flock` (held by a handle of its own), which
/// tells the cleanup of interrupted runs ([`remove_stale_temp_files`]) that its writer is
/// alive: only files whose writer died are removed.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    persisted: bool,
    _in_use: File,
}

impl TempFile {
    /// Creates `path` (which must end in [`TEMP_SUFFIX`]), failing if it exists.
    pub(crate) fn create(path: PathBuf) -> Result<(Self, File)> {
        debug_assert!(path.to_string_lossy().ends_with(TEMP_SUFFIX));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        let in_use = File::open(&path).map_err(io_err("open", &path))?;
        if let Err(e) = in_use.try_lock() {
            let _ = std::fs::remove_file(&path);
            return Err(Error::Internal(format!(
                "cannot lock the new temporary file {}: {e}",
                path.display()
            )));
        }
        Ok((
            Self {
                path,
                persisted: false,
                _in_use: in_use,
            },
            file,
        ))
    }

    /// Creates `<dir>/<name>.<pid>-<n>.tmp`, a name no other writer uses.
    pub(crate) fn create_unique(dir: &Path, name: &str) -> Result<(Self, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self::create(dir.join(format!("{name}.{}-{n}{TEMP_SUFFIX}", std::process::id())))
    }

    /// The temporary path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the (already fsync'd and closed) file to `target` and fsyncs the directory.
    pub(crate) fn persist(mut self, target: &Path) -> Result<()> {
        std::fs::rename(&self.path, target).map_err(io_err("rename into place", target))?;
        self.persisted = true;
        sync_parent(target)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            remove_if_exists(&self.path);
        }
    }
}

/// Removes a file, ignoring its absence; other failures are logged (the next run retries).
pub(crate) fn remove_if_exists(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove a file"),
    }
}

/// Writes `bytes` to `dir/name` atomically and durably. A temporary file left by an
/// interrupted earlier write is replaced.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(name);
    let temp_path = dir.join(format!("{name}{TEMP_SUFFIX}"));
    remove_if_exists(&temp_path);
    let (temp, mut file) = TempFile::create(temp_path)?;
    file.write_all(bytes)
        .map_err(io_err("write", temp.path()))?;
    file.sync_all().map_err(io_err("fsync", temp.path()))?;
    drop(file);
    temp.persist(&target)
}

/// Which temporary files a cleanup may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Every temporary file below a directory that is ours alone (a local repository).
    Everything,
    /// Only the scratch copies this crate names (`.verify-…`, `….vacuum….tmp`) directly in a
    /// directory that may be shared with other programs.
    ScratchCopies,
}

/// Removes the temporary files of interrupted runs in `dir`: those whose writer no longer
/// holds their lock. Returns how many went. Best effort: what cannot be removed is left for
/// the next run.
pub(crate) fn remove_stale_temp_files(dir: &Path, sweep: Sweep) -> usize {
    let ours = |name: &str| match sweep {
        Sweep::Everything => true,
        Sweep::ScratchCopies => name.starts_with(".verify-") || name.contains(".vacuum."),
    };
    let mut removed = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if sweep == Sweep::Everything {
                    pending.push(path);
                }
                continue;
            }
            if !path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(TEMP_SUFFIX) && ours(n))
            {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            // A live writer holds the lock: its file is not stale.
            if file.try_lock().is_ok() {
                tracing::info!(path = %path.display(), "removing a temporary file left by an interrupted run");
                remove_if_exists(&path);
                removed += 1;
            }
        }
    }
    removed
}

/// Fsyncs the directory holding `path`, so a rename or removal in it survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

/// Fsyncs a directory.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync the directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unpersisted_temp_file_disappears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tmp");
        let (temp, mut file) = TempFile::create(path.clone()).unwrap();
        file.write_all(b"partial").unwrap();
        assert!(path.exists());
        drop(temp);
        assert!(!path.exists());
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "a.json", b"one").unwrap();
        write_atomically(dir.path(), "a.json", b"two").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn a_leftover_temp_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json.tmp"), b"old and longer").unwrap();
        write_atomically(dir.path(), "b.json", b"x").unwrap();
        assert_eq!(std::fs::read(dir.path().join("b.json")).unwrap(), b"x");
        assert!(!dir.path().join("b.json.tmp").exists());
    }

    #[test]
    fn only_the_temp_files_of_dead_writers_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("dead.json.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("kept.json"), b"x").unwrap();
        std::fs::write(dir.path().join(".verify-1.sqlite.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("someone-elses.tmp"), b"x").unwrap();
        let (alive, _) = TempFile::create_unique(dir.path(), "alive.json").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path(), Sweep::ScratchCopies), 1);
        assert!(dir.path().join("someone-elses.tmp").exists());
        assert!(dir.path().join("sub").join("dead.json.tmp").exists());
        assert_eq!(remove_stale_temp_files(dir.path(), Sweep::Everything), 2);
        assert!(alive.path().exists(), "a live writer's file stays");
        assert!(dir.path().join("kept.json").exists());
        assert!(!dir.path().join("sub").join("dead.json.tmp").exists());
    }

    #[test]
    fn a_temp_file_is_never_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.tmp");
        let (_first, _) = TempFile::create(path.clone()).unwrap();
        assert!(TempFile::create(path).is_err());
    }
}
