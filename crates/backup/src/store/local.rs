//! A repository in a local directory: keys are paths below it.
//!
//! An object is written into a temporary file beside its final name (`….tmp`, locked with
//! `flock` while it is written so that no cleanup removes it), fsync'd, then linked to its
//! final name with `link(2)`, which fails if the name exists; the directory is fsync'd after.
//! Temporary files of writers that died are removed by the next operation that takes the
//! repository's lock.
//!
//! A directory created by [`LocalStore::open`] is removed again when the last handle on it
//! goes while nothing was ever stored in it (see [`CreatedDir`]): a first run that fails (a
//! mistyped database URL, a usage error) leaves no empty repository behind.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use chrono::{DateTime, Utc};

use super::{DirListing, ObjectMeta, ObjectReader, ObjectWriter, PendingUpload, Put, WriterKind};
use crate::{
    Error, Result,
    durable::{self, TEMP_SUFFIX, TempFile},
    error::io_err,
    stream::CHUNK,
};

/// A directory of objects.
#[derive(Debug, Clone)]
pub(crate) struct LocalStore {
    dir: PathBuf,
    /// Set when [`open`](Self::open) created the directory; shared by every clone, and held
    /// only for its `Drop`.
    _created: Option<Arc<CreatedDir>>,
}

impl LocalStore {
    /// Opens `dir`, creating it when missing (and removing it again if nothing is ever stored
    /// in it: see [`CreatedDir`]).
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        // The outermost directory that does not exist yet: what this open creates.
        let created_root = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .last()
            .map(Path::to_path_buf);
        std::fs::create_dir_all(dir).map_err(io_err("create the backup directory", dir))?;
        if !dir.is_dir() {
            return Err(Error::Io {
                action: "use as the backup directory",
                path: dir.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            _created: created_root.map(|root| {
                Arc::new(CreatedDir {
                    root,
                    dir: dir.to_path_buf(),
                })
            }),
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `key`.
    pub(crate) fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    pub(crate) async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<Put> {
        let store = self.clone();
        let key = key.to_owned();
        blocking(move || {
            let target = store.path(&key);
            let (temp, file) = store.temp_for(&target)?;
            let mut writer = BufWriter::new(file);
            writer
                .write_all(&bytes)
                .map_err(io_err("write", temp.path()))?;
            let file = writer
                .into_inner()
                .map_err(|e| Error::io("write", temp.path(), e.into_error()))?;
            file.sync_all().map_err(io_err("fsync", temp.path()))?;
            drop(file);
            match store.link_into_place(temp, &target)? {
                true => Ok(Put::Created),
                false => {
                    let existing = std::fs::read(&target).map_err(io_err("read", &target))?;
                    if existing == bytes {
                        Ok(Put::AlreadyThere)
                    } else {
                        Err(Error::ObjectExists {
                            object: target.display().to_string(),
                        })
                    }
                }
            }
        })
        .await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path, e)),
        })
        .await
    }

    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key);
        let key = key.to_owned();
        blocking(move || match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectMeta {
                key,
                size: meta.len(),
                modified: modified(&meta),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("inspect", &path, e)),
        })
        .await
    }

    pub(crate) async fn list(&self, dir: &str) -> Result<Vec<ObjectMeta>> {
        let store = self.clone();
        let dir = dir.trim_matches('/').to_owned();
        blocking(move || {
            let mut found = Vec::new();
            let mut pending = vec![dir];
            while let Some(dir) = pending.pop() {
                let listing = store.read_dir(&dir)?;
                found.extend(listing.objects);
                pending.extend(listing.dirs);
            }
            Ok(found)
        })
        .await
    }

    pub(crate) async fn list_dir(&self, dir: &str) -> Result<DirListing> {
        let store = self.clone();
        let dir = dir.trim_matches('/').to_owned();
        blocking(move || store.read_dir(&dir)).await
    }

    /// The objects and directories directly in `dir` (relative). Hidden names (the lock file)
    /// and temporary files are not objects.
    fn read_dir(&self, dir: &str) -> Result<DirListing> {
        let path = if dir.is_empty() {
            self.dir.clone()
        } else {
            self.path(dir)
        };
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.is_empty() => {
                return Ok(DirListing::default());
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let mut listing = DirListing::default();
        for entry in entries {
            let entry = entry.map_err(io_err("read", &path))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') || name.ends_with(TEMP_SUFFIX) {
                continue;
            }
            let key = super::dir_prefix(dir) + &name;
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Removed while we looked.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("inspect", &entry.path(), e)),
            };
            if meta.is_dir() {
                listing.dirs.push(key);
            } else if meta.is_file() {
                listing.objects.push(ObjectMeta {
                    key,
                    size: meta.len(),
                    modified: modified(&meta),
                });
            }
        }
        Ok(listing)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        let root = self.dir.clone();
        blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io("remove", &path, e)),
            }
            // Directories left empty go too (best effort: another writer may be filling one).
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != root && d.starts_with(&root)) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn upload(&self, key: &str) -> Result<(ObjectWriter, PendingUpload)> {
        let store = self.clone();
        let target = self.path(key);
        blocking(move || {
            let (temp, file) = store.temp_for(&target)?;
            let closed = Arc::new(AtomicBool::new(false));
            let writer = ObjectWriter {
                inner: WriterKind::Local(LocalWriter {
                    file: BufWriter::with_capacity(CHUNK, file),
                    path: temp.path().to_path_buf(),
                    closed: Arc::clone(&closed),
                }),
                describe: target.display().to_string(),
            };
            Ok((
                writer,
                PendingUpload::Local(LocalPending {
                    store,
                    temp,
                    target,
                    closed,
                }),
            ))
        })
        .await
    }

    pub(crate) async fn download(&self, key: &str) -> Result<Option<ObjectReader>> {
        let path = self.path(key);
        blocking(move || match File::open(&path) {
            Ok(file) => Ok(Some(ObjectReader::Local(file))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("open", &path, e)),
        })
        .await
    }

    pub(crate) async fn sync(&self) -> Result<()> {
        let dir = self.dir.clone();
        blocking(move || durable::sync_dir(&dir)).await
    }

    /// A new temporary file beside `target`, its directory created (durably) when missing.
    fn temp_for(&self, target: &Path) -> Result<(TempFile, File)> {
        let parent = target.parent().unwrap_or(&self.dir);
        self.ensure_dir(parent)?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        TempFile::create_unique(parent, &name)
    }

    /// Creates `dir` below the repository if needed, and fsyncs every directory entry that
    /// creation added, so a crash cannot lose the path to an object written into it.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(io_err("create the directory", dir))?;
        let mut at = Some(dir);
        while let Some(d) = at.filter(|d| d.starts_with(&self.dir)) {
            durable::sync_dir(d)?;
            if d == self.dir {
                break;
            }
            at = d.parent();
        }
        Ok(())
    }

    /// Links the complete temporary file to `target`; false when `target` exists. The
    /// temporary name is removed either way and the directory fsync'd.
    fn link_into_place(&self, temp: TempFile, target: &Path) -> Result<bool> {
        match std::fs::hard_link(temp.path(), target) {
            Ok(()) => {
                drop(temp);
                durable::sync_parent(target)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("link into place", target, e)),
        }
    }
}

/// A repository directory that this process created. When the last handle on it goes and
/// nothing was ever stored in it (it holds only empty directories and an unheld lock file),
/// it is removed, with the parent directories the same open created.
///
/// The lock file is unlinked while it is held, and [`RepoLock`](crate::lock::RepoLock) makes
/// sure that whoever was waiting for it locks the file that is there, not the unlinked one.
#[derive(Debug)]
pub(crate) struct CreatedDir {
    /// The outermost directory the open created (`dir` or one of its parents).
    root: PathBuf,
    /// The repository directory.
    dir: PathBuf,
}

impl Drop for CreatedDir {
    fn drop(&mut self) {
        let lock_path = self.dir.join(crate::lock::LOCK_FILE);
        if !holds_nothing(&self.dir, &lock_path) {
            return;
        }
        // Held while the lock file is unlinked, so that no run is inside the repository.
        let lock = match File::options().read(true).write(true).open(&lock_path) {
            Ok(file) => match file.try_lock() {
                Ok(()) => Some(file),
                Err(_) => return,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => return,
        };
        if lock.is_some() && std::fs::remove_file(&lock_path).is_err() {
            return;
        }
        remove_empty_dirs(&self.dir);
        // `remove_dir` fails on a directory someone has put something in since: it stays.
        let mut at = Some(self.dir.as_path());
        while let Some(dir) = at.filter(|d| d.starts_with(&self.root)) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
            at = dir.parent();
        }
        drop(lock);
    }
}

/// Whether `dir` holds nothing but empty directories and `lock_path`.
fn holds_nothing(dir: &Path, lock_path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.into_iter().all(|entry| {
        let Ok(entry) = entry else { return false };
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => holds_nothing(&path, lock_path),
            Ok(kind) if kind.is_file() => path == lock_path,
            _ => false,
        }
    })
}

/// Removes the empty directories below `dir` (not `dir` itself), deepest first.
fn remove_empty_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_empty_dirs(&entry.path());
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// Writes into the temporary file of a local upload.
pub(crate) struct LocalWriter {
    file: BufWriter<File>,
    path: PathBuf,
    /// Set once everything is written and fsync'd: only then may the upload be committed.
    closed: Arc<AtomicBool>,
}

impl LocalWriter {
    pub(crate) fn close(self) -> Result<()> {
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::io("write", &self.path, e.into_error()))?;
        file.sync_all().map_err(io_err("fsync", &self.path))?;
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A local upload waiting to be linked into place.
pub(crate) struct LocalPending {
    store: LocalStore,
    temp: TempFile,
    target: PathBuf,
    closed: Arc<AtomicBool>,
}

impl LocalPending {
    pub(crate) async fn commit(self) -> Result<()> {
        blocking(move || {
            let Self {
                store,
                temp,
                target,
                closed,
            } = self;
            if !closed.load(Ordering::Acquire) {
                // The writer went away without closing: what it wrote is not the object.
                return Err(Error::Internal(format!(
                    "the upload of {} was abandoned",
                    target.display()
                )));
            }
            if store.link_into_place(temp, &target)? {
                Ok(())
            } else {
                Err(Error::ObjectExists {
                    object: target.display().to_string(),
                })
            }
        })
        .await
    }
}

fn modified(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| DateTime::<Utc>::from(SystemTime::UNIX_EPOCH))
}

/// Runs file work on the blocking pool: fsyncs must not stall the runtime of a server that
/// replicates in-process.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("a file worker failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::{Store, contract};

    #[tokio::test]
    async fn a_directory_created_for_nothing_goes_with_its_last_handle() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new");
        let repo = root.join("nested");

        // Locked and unlocked, nothing stored: removed, with the parent the open created.
        let store = LocalStore::open(&repo).unwrap();
        let lock_path = repo.join(crate::lock::LOCK_FILE);
        let lock = crate::lock::RepoLock::acquire(&lock_path, "r", "create", Duration::ZERO)
            .await
            .unwrap();
        let clone = store.clone();
        drop(store);
        assert!(repo.is_dir(), "a clone still holds it");
        drop(lock);
        drop(clone);
        assert!(!root.exists(), "left {}", root.display());

        // Something stored: kept.
        let store = LocalStore::open(&repo).unwrap();
        store.put_once("a/object", b"data".to_vec()).await.unwrap();
        drop(store);
        assert!(repo.join("a/object").is_file());

        // A directory that existed before is never removed, even empty.
        let existing = dir.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        drop(LocalStore::open(&existing).unwrap());
        assert!(existing.is_dir());
    }

    #[tokio::test]
    async fn a_lock_held_on_the_removed_lock_file_is_not_taken_for_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("new");
        let store = LocalStore::open(&repo).unwrap();
        let lock_path = repo.join(crate::lock::LOCK_FILE);
        let first = crate::lock::RepoLock::acquire(&lock_path, "r", "create", Duration::ZERO)
            .await
            .unwrap();
        // A second run waits for the lock while the first one fails and its empty repository
        // goes (lock file and all) as the first one lets go.
        let waiting = tokio::spawn({
            let lock_path = lock_path.clone();
            async move {
                crate::lock::RepoLock::acquire(&lock_path, "r", "create", Duration::from_secs(10))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(first);
        drop(store);
        let second = waiting.await.unwrap().unwrap();
        // The second holds the lock file that is there now: nobody else can take it.
        assert!(lock_path.is_file());
        assert!(matches!(
            crate::lock::RepoLock::acquire(&lock_path, "r", "prune", Duration::ZERO).await,
            Err(Error::LockHeld { .. })
        ));
        drop(second);
    }

    #[tokio::test]
    async fn a_directory_honours_the_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Local(LocalStore::open(dir.path()).unwrap());
        contract::check(&store, 3 << 20).await;
        // Directories left empty went with their objects, and no temporary file is left.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[tokio::test]
    async fn an_upload_in_progress_is_not_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Local(LocalStore::open(dir.path()).unwrap());
        let (mut writer, pending) = store.upload("x.zst").await.unwrap();
        writer.write_all(b"half").unwrap();
        assert!(store.list("").await.unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(writer);
        pending.abort().await;
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
