//! Files that are either complete on disk or absent: write under a temporary name, fsync,
//! rename, fsync the directory.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use crate::{Result, error::io_err};

/// The suffix of every temporary file this crate writes. Whatever carries it is an
/// interrupted write, never a backup, and is removed by the next operation holding the lock.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// A file being written under a temporary name; removed on drop unless persisted.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    persisted: bool,
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
        Ok((
            Self {
                path,
                persisted: false,
            },
            file,
        ))
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
    fn a_temp_file_is_never_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.tmp");
        let (_first, _) = TempFile::create(path.clone()).unwrap();
        assert!(TempFile::create(path).is_err());
    }
}
