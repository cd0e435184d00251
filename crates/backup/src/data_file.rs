//! A backup's data object checked against its manifest: its size, its SHA-256, and what its
//! decompression proved. Verification, restores and the backends' loaders all build on these.

use std::path::PathBuf;

use crate::{
    BackupManifest, Result, VerifyFailure,
    store::{ObjectReader, Store},
    stream,
};

/// A backup's data object, opened for reading after the checks that need no reading.
pub(crate) struct DataObject {
    /// The stream of its bytes.
    pub(crate) reader: ObjectReader,
    /// Its name, for errors.
    pub(crate) path: PathBuf,
    /// Its size.
    pub(crate) size: u64,
}

/// The checks that need no reading: the data object exists and has the recorded size.
pub(crate) async fn precheck(
    store: &Store,
    manifest: &BackupManifest,
) -> Result<Option<VerifyFailure>> {
    Ok(match store.head(&manifest.file).await? {
        None => Some(VerifyFailure::DataFileMissing),
        Some(meta) if meta.size != manifest.compressed_bytes => Some(VerifyFailure::SizeMismatch {
            expected: manifest.compressed_bytes,
            actual: meta.size,
        }),
        Some(_) => None,
    })
}

/// Opens the data object of `manifest` after [`precheck`], or says why it cannot be a good
/// backup without reading it.
pub(crate) async fn open(
    store: &Store,
    manifest: &BackupManifest,
) -> Result<std::result::Result<DataObject, VerifyFailure>> {
    if let Some(failure) = precheck(store, manifest).await? {
        return Ok(Err(failure));
    }
    match store.download(&manifest.file).await? {
        Some(reader) => Ok(Ok(DataObject {
            reader,
            path: PathBuf::from(store.describe(&manifest.file)),
            size: manifest.compressed_bytes,
        })),
        None => Ok(Err(VerifyFailure::DataFileMissing)),
    }
}

/// What the decompression pass itself proved wrong, checksum first: a changed object explains
/// a decoding error, not the other way round.
pub(crate) fn stream_failure(
    manifest: &BackupManifest,
    done: &stream::Decompressed,
) -> Option<VerifyFailure> {
    if done.sha256 != manifest.sha256 {
        Some(VerifyFailure::ChecksumMismatch {
            expected: manifest.sha256.clone(),
            actual: done.sha256.clone(),
        })
    } else if let Some(detail) = &done.decode_error {
        Some(VerifyFailure::Corrupt {
            detail: detail.clone(),
        })
    } else if done.raw_bytes != manifest.raw_bytes {
        Some(VerifyFailure::RawSizeMismatch {
            expected: manifest.raw_bytes,
            actual: done.raw_bytes,
        })
    } else {
        None
    }
}

/// Hashes a data object without decompressing it (the cheap check before a restore).
#[cfg(feature = "postgres")]
pub(crate) async fn checksum_only(
    store: &Store,
    manifest: &BackupManifest,
) -> Result<Option<VerifyFailure>> {
    let data = match open(store, manifest).await? {
        Ok(data) => data,
        Err(failure) => return Ok(Some(failure)),
    };
    let actual = tokio::task::spawn_blocking(move || stream::sha256_of(data.reader, &data.path))
        .await
        .map_err(|e| crate::Error::Internal(format!("a checksum worker failed: {e}")))??;
    Ok(
        (actual != manifest.sha256).then(|| VerifyFailure::ChecksumMismatch {
            expected: manifest.sha256.clone(),
            actual,
        }),
    )
}
