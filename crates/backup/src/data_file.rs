//! A backup's data file checked against its manifest: its size, its SHA-256, and what its
//! decompression proved. Verification, restores and the backends' loaders all build on these.

use std::path::Path;

use crate::{BackupManifest, Error, Result, VerifyFailure, stream};

/// The checks that need no decompression: the data file exists and has the recorded size.
pub(crate) fn precheck(
    data_path: &Path,
    manifest: &BackupManifest,
) -> Result<Option<VerifyFailure>> {
    match std::fs::metadata(data_path) {
        Ok(meta) if meta.len() != manifest.compressed_bytes => {
            Ok(Some(VerifyFailure::SizeMismatch {
                expected: manifest.compressed_bytes,
                actual: meta.len(),
            }))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Some(VerifyFailure::DataFileMissing))
        }
        Err(e) => Err(Error::io("inspect", data_path, e)),
    }
}

/// What the decompression pass itself proved wrong, checksum first: a changed file explains a
/// decoding error, not the other way round.
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

/// Hashes a data file without decompressing it (the cheap check before a restore).
pub(crate) async fn checksum_only(
    data_path: &Path,
    manifest: &BackupManifest,
) -> Result<Option<VerifyFailure>> {
    if let Some(failure) = precheck(data_path, manifest)? {
        return Ok(Some(failure));
    }
    let path = data_path.to_path_buf();
    let actual = tokio::task::spawn_blocking(move || stream::sha256_of(&path))
        .await
        .map_err(|e| Error::Internal(format!("a checksum worker failed: {e}")))??;
    Ok(
        (actual != manifest.sha256).then(|| VerifyFailure::ChecksumMismatch {
            expected: manifest.sha256.clone(),
            actual,
        }),
    )
}
