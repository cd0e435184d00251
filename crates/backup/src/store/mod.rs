//! The objects of a repository, wherever it lives: the generic operations every backup,
//! replication or WAL-archiving layer builds on.
//!
//! A [`Store`] is a local directory ([`local`]) or a bucket prefix of an S3-compatible object
//! store (`s3`, feature `s3`). Both give the same guarantees:
//!
//! - **Written once.** [`Store::put_once`] and [`Store::upload`] never replace an existing
//!   object: writing the same bytes again is accepted (idempotent retries), different bytes
//!   under an existing key are [`Error::ObjectExists`]. (Local: a temporary file, fsync'd, then
//!   `link(2)`, which fails if the name exists. S3: `If-None-Match: *`.)
//! - **Never half there.** An object appears whole or not at all (local: the link of a
//!   complete, fsync'd file; S3: a single PUT, or a multipart upload, which is invisible until
//!   completed).
//! - **Checksums on every read** are the layers' job, with two tools: a small document is
//!   sealed with its own SHA-256 ([`crate::sealed`]); any other object's SHA-256 is recorded in
//!   the sealed document that refers to it and checked as it is read.
//!
//! Keys are relative, `/`-separated, made of `[A-Za-z0-9._-]` parts. Listings are by
//! "directory": [`Store::list_dir`] one level, [`Store::list`] everything below.

pub(crate) mod local;
pub(crate) mod location;
#[cfg(feature = "s3")]
pub(crate) mod pipe;
#[cfg(feature = "s3")]
pub(crate) mod s3;

use std::io::{Read, Write};

use chrono::{DateTime, Utc};

use crate::{Error, Result};

pub use location::{RepositoryLocation, S3Location, S3Settings};

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectMeta {
    /// The key, relative to the repository.
    pub(crate) key: String,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// When it was written (the store's clock).
    pub(crate) modified: DateTime<Utc>,
}

impl ObjectMeta {
    /// The last part of the key.
    pub(crate) fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }
}

/// What [`Store::list_dir`] found directly under a directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirListing {
    /// The objects directly under it.
    pub(crate) objects: Vec<ObjectMeta>,
    /// The sub-directories (keys without the trailing `/`).
    pub(crate) dirs: Vec<String>,
}

/// How [`Store::put_once`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Put {
    /// The object was written.
    Created,
    /// An identical object was already there (a retry after an unknown outcome).
    AlreadyThere,
}

/// A repository's objects.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// A local directory.
    Local(local::LocalStore),
    /// An S3 bucket prefix.
    #[cfg(feature = "s3")]
    S3(s3::S3Store),
}

/// Checks that a key is relative, `/`-separated, and made of safe parts: what the layers build
/// is never a path out of the repository.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if valid {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "`{key}` is not a valid object key"
        )))
    }
}

/// A directory key with its trailing slash, or nothing for the root.
pub(crate) fn dir_prefix(dir: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    }
}

impl Store {
    /// Opens the store at `location` (local: creating the directory).
    pub(crate) fn open(location: &RepositoryLocation, settings: &S3Settings) -> Result<Self> {
        match location {
            RepositoryLocation::Local(dir) => Ok(Self::Local(local::LocalStore::open(dir)?)),
            #[cfg(feature = "s3")]
            RepositoryLocation::S3(s3) => Ok(Self::S3(s3::S3Store::open(s3, settings)?)),
            #[cfg(not(feature = "s3"))]
            RepositoryLocation::S3(_) => {
                let _ = settings;
                Err(Error::InvalidConfig(format!(
                    "{location}: this build has no S3 support (build the backup crate with its \
                     `s3` feature)"
                )))
            }
        }
    }

    /// The object's full name for people and errors: a path, or `s3://bucket/prefix/key`.
    pub(crate) fn describe(&self, key: &str) -> String {
        match self {
            Self::Local(store) => store.path(key).display().to_string(),
            #[cfg(feature = "s3")]
            Self::S3(store) => store.describe(key),
        }
    }

    /// Writes `bytes` under `key` unless an object is there already (see the module docs).
    pub(crate) async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<Put> {
        check_key(key)?;
        match self {
            Self::Local(store) => store.put_once(key, bytes).await,
            #[cfg(feature = "s3")]
            Self::S3(store) => store.put_once(key, bytes).await,
        }
    }

    /// The whole object, or `None` when there is none.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        match self {
            Self::Local(store) => store.get(key).await,
            #[cfg(feature = "s3")]
            Self::S3(store) => store.get(key).await,
        }
    }

    /// The object's size and time, or `None` when there is none.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        check_key(key)?;
        match self {
            Self::Local(store) => store.head(key).await,
            #[cfg(feature = "s3")]
            Self::S3(store) => store.head(key).await,
        }
    }

    /// Every object below the directory `dir` (`""`: the whole repository), sorted by key.
    pub(crate) async fn list(&self, dir: &str) -> Result<Vec<ObjectMeta>> {
        let mut objects = match self {
            Self::Local(store) => store.list(dir).await?,
            #[cfg(feature = "s3")]
            Self::S3(store) => store.list(dir).await?,
        };
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The objects and sub-directories directly under the directory `dir`, sorted by key.
    pub(crate) async fn list_dir(&self, dir: &str) -> Result<DirListing> {
        let mut listing = match self {
            Self::Local(store) => store.list_dir(dir).await?,
            #[cfg(feature = "s3")]
            Self::S3(store) => store.list_dir(dir).await?,
        };
        listing.objects.sort_by(|a, b| a.key.cmp(&b.key));
        listing.dirs.sort();
        Ok(listing)
    }

    /// Deletes the object; an absent one is not an error.
    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        match self {
            Self::Local(store) => store.delete(key).await,
            #[cfg(feature = "s3")]
            Self::S3(store) => store.delete(key).await,
        }
    }

    /// Starts writing the object `key` as a stream: blocking code writes into the
    /// [`ObjectWriter`] and closes it, then [`PendingUpload::commit`] makes the object appear.
    /// Dropping either before then leaves nothing behind.
    pub(crate) async fn upload(&self, key: &str) -> Result<(ObjectWriter, PendingUpload)> {
        check_key(key)?;
        match self {
            Self::Local(store) => store.upload(key).await,
            #[cfg(feature = "s3")]
            Self::S3(store) => store.upload(key).await,
        }
    }

    /// Opens the object for reading by blocking code. `None` when there is none.
    pub(crate) async fn download(&self, key: &str) -> Result<Option<ObjectReader>> {
        check_key(key)?;
        match self {
            Self::Local(store) => store.download(key).await,
            #[cfg(feature = "s3")]
            Self::S3(store) => store.download(key).await,
        }
    }

    /// Makes what was removed durable (local: fsyncs the directory; S3: nothing to do).
    pub(crate) async fn sync(&self) -> Result<()> {
        match self {
            Self::Local(store) => store.sync().await,
            #[cfg(feature = "s3")]
            Self::S3(_) => Ok(()),
        }
    }
}

/// The writing half of an upload, for blocking code (a compression pipeline).
pub(crate) struct ObjectWriter {
    pub(crate) inner: WriterKind,
    /// What the object is, for errors.
    pub(crate) describe: String,
}

pub(crate) enum WriterKind {
    Local(local::LocalWriter),
    #[cfg(feature = "s3")]
    S3(pipe::PipeWriter),
}

impl ObjectWriter {
    /// Flushes everything written; the upload can then be committed.
    pub(crate) fn close(self) -> Result<()> {
        match self.inner {
            WriterKind::Local(writer) => writer.close(),
            #[cfg(feature = "s3")]
            WriterKind::S3(writer) => writer.close(),
        }
    }

    /// The object, for error messages.
    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.inner {
            WriterKind::Local(writer) => writer.write(buf),
            #[cfg(feature = "s3")]
            WriterKind::S3(writer) => writer.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            WriterKind::Local(writer) => writer.flush(),
            #[cfg(feature = "s3")]
            WriterKind::S3(writer) => writer.flush(),
        }
    }
}

/// The committing half of an upload.
pub(crate) enum PendingUpload {
    Local(local::LocalPending),
    #[cfg(feature = "s3")]
    S3(pipe::PipeUpload),
}

impl PendingUpload {
    /// Makes the object appear, once its writer has been closed.
    ///
    /// # Errors
    ///
    /// [`Error::ObjectExists`] when another object took the key meanwhile; the store's errors.
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Self::Local(pending) => pending.commit().await,
            #[cfg(feature = "s3")]
            Self::S3(pending) => pending.commit().await,
        }
    }

    /// Gives up: nothing appears. (Dropping does the same, less promptly on S3.)
    pub(crate) async fn abort(self) {
        match self {
            Self::Local(pending) => drop(pending),
            #[cfg(feature = "s3")]
            Self::S3(pending) => pending.abort().await,
        }
    }
}

/// The reading half of a download, for blocking code.
pub(crate) enum ObjectReader {
    Local(std::fs::File),
    #[cfg(feature = "s3")]
    S3(pipe::PipeReader),
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Local(file) => file.read(buf),
            #[cfg(feature = "s3")]
            Self::S3(reader) => reader.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_repository() {
        for good in [
            "a.json",
            "runs/create/20261125T103000.000000Z-1.json",
            "x-1_2.zst",
        ] {
            check_key(good).unwrap();
        }
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b", "a b", "a\\b", "ä"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert_eq!(dir_prefix(""), "");
        assert_eq!(dir_prefix("runs/"), "runs/");
        assert_eq!(dir_prefix("runs"), "runs/");
    }
}

/// What every store must do, checked on each kind by its own tests.
#[cfg(test)]
pub(crate) mod contract {
    use std::io::{Read, Write};

    use super::{Put, Store};
    use crate::{Error, Result};

    /// Uploads `bytes` from a blocking thread, as a compression pipeline would; without
    /// `close`, the writer goes away as a failing pipeline's would.
    pub(crate) async fn upload(
        store: &Store,
        key: &str,
        bytes: Vec<u8>,
        close: bool,
    ) -> Result<()> {
        let (mut writer, pending) = store.upload(key).await?;
        let written = tokio::task::spawn_blocking(move || {
            for chunk in bytes.chunks(100_000) {
                writer
                    .write_all(chunk)
                    .map_err(|e| Error::Internal(e.to_string()))?;
            }
            if close { writer.close() } else { Ok(()) }
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        // After a failed write, the commit reports the upload's own error.
        drop(written);
        pending.commit().await
    }

    async fn download(store: &Store, key: &str) -> Vec<u8> {
        let mut reader = store.download(key).await.unwrap().unwrap();
        tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        })
        .await
        .unwrap()
    }

    /// Objects are written once (the same bytes again are fine), appear whole or not at all,
    /// are listed by directory, and go when deleted. `big` bytes are streamed.
    pub(crate) async fn check(store: &Store, big: usize) {
        assert_eq!(
            store.put_once("a/b.json", b"one".to_vec()).await.unwrap(),
            Put::Created
        );
        assert_eq!(
            store.put_once("a/b.json", b"one".to_vec()).await.unwrap(),
            Put::AlreadyThere
        );
        let err = store
            .put_once("a/b.json", b"two".to_vec())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ObjectExists { .. }), "{err}");
        assert_eq!(store.get("a/b.json").await.unwrap().unwrap(), b"one");
        assert_eq!(store.get("a/c.json").await.unwrap(), None);
        assert_eq!(store.head("a/c.json").await.unwrap(), None);
        assert!(store.download("a/c.json").await.unwrap().is_none());

        let data: Vec<u8> = (0..big as u32 / 4)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect();
        upload(store, "a/big.zst", data.clone(), true)
            .await
            .unwrap();
        assert!(download(store, "a/big.zst").await == data);
        assert_eq!(
            store.head("a/big.zst").await.unwrap().unwrap().size,
            data.len() as u64
        );
        assert!(matches!(
            upload(store, "a/big.zst", data.clone(), true).await,
            Err(Error::ObjectExists { .. })
        ));
        assert!(matches!(
            upload(store, "a/b.json", b"other".to_vec(), true).await,
            Err(Error::ObjectExists { .. })
        ));
        // A writer that goes away without closing: nothing appears, small or large.
        assert!(
            upload(store, "a/gone.zst", b"half".to_vec(), false)
                .await
                .is_err()
        );
        assert!(upload(store, "a/gone-big.zst", data, false).await.is_err());
        assert_eq!(store.head("a/gone.zst").await.unwrap(), None);
        assert_eq!(store.head("a/gone-big.zst").await.unwrap(), None);

        store.put_once("top.json", b"t".to_vec()).await.unwrap();
        let keys: Vec<String> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["a/b.json", "a/big.zst", "top.json"]);
        let top = store.list_dir("").await.unwrap();
        assert_eq!(top.dirs, ["a"]);
        assert_eq!(top.objects.len(), 1);
        assert_eq!(top.objects[0].name(), "top.json");
        assert_eq!(store.list_dir("a").await.unwrap().objects.len(), 2);
        assert!(store.list("nothing/here").await.unwrap().is_empty());

        for key in ["a/b.json", "a/big.zst", "top.json", "top.json"] {
            store.delete(key).await.unwrap();
        }
        assert!(store.list("").await.unwrap().is_empty());
    }
}
