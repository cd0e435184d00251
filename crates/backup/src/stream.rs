//! The byte pipelines: snapshot bytes → zstd → SHA-256 → object, and back.
//!
//! Buffers are fixed-size, so memory does not grow with the database.

use std::{
    io::{self, BufReader, Read, Write},
    path::Path,
};

use sha2::{Digest, Sha256};

use crate::{
    Error, Result,
    error::io_err,
    progress::ProgressTx,
    store::{ObjectReader, ObjectWriter},
};

/// The size of the chunks read from a snapshot or a backup file.
pub(crate) const CHUNK: usize = 1 << 20;

/// zstd settings for new backups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ZstdSettings {
    pub(crate) level: i32,
    pub(crate) workers: u32,
}

/// What a compression pass produced.
#[derive(Debug, Clone)]
pub(crate) struct Compressed {
    pub(crate) raw_bytes: u64,
    pub(crate) compressed_bytes: u64,
    pub(crate) sha256: String,
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Compresses everything `source` yields into the object being uploaded, hashing the
/// compressed bytes as they are written, then closes it (fsync'd, for a local repository); the
/// caller commits the upload. `total` (if known) is only for progress.
///
/// Errors from `source` are returned as they are (the caller knows what it was reading).
pub(crate) fn compress(
    source: &mut dyn Read,
    out: ObjectWriter,
    settings: ZstdSettings,
    total: Option<u64>,
    progress: &ProgressTx,
) -> Result<Compressed> {
    let out_path = std::path::PathBuf::from(out.describe());
    let out_path = out_path.as_path();
    let sink = HashingWriter {
        inner: out,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut encoder = zstd::stream::write::Encoder::new(sink, settings.level).map_err(|e| {
        Error::Internal(format!(
            "cannot start zstd at level {}: {e}",
            settings.level
        ))
    })?;
    // A frame checksum lets the decoder itself notice damage, independently of SHA-256.
    encoder
        .include_checksum(true)
        .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
    if settings.workers > 1 {
        encoder
            .multithread(settings.workers)
            .map_err(|e| Error::Internal(format!("zstd workers: {e}")))?;
    }
    let mut buf = vec![0u8; CHUNK];
    let mut raw_bytes = 0u64;
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(source_error(e)),
        };
        encoder
            .write_all(&buf[..n])
            .map_err(|e| Error::io("write", out_path, e))?;
        raw_bytes += n as u64;
        progress.report(raw_bytes, total);
    }
    let sink = encoder.finish().map_err(io_err("write", out_path))?;
    let HashingWriter {
        inner,
        hasher,
        bytes,
    } = sink;
    inner.close()?;
    Ok(Compressed {
        raw_bytes,
        compressed_bytes: bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Errors of the snapshot source travel as `io::Error` through `Read`; the ones this crate
/// made are unwrapped again.
fn source_error(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(err)) => *err,
            Some(Err(other)) => Error::Internal(other.to_string()),
            None => Error::Internal("snapshot source failed".to_owned()),
        }
    } else {
        Error::Io {
            action: "read the snapshot of",
            path: "the database".into(),
            source: e,
        }
    }
}

/// What reading a backup file back produced.
#[derive(Debug)]
pub(crate) struct Decompressed {
    /// SHA-256 of the whole data file, read to its end even when decoding failed.
    pub(crate) sha256: String,
    /// Bytes the decoder produced.
    pub(crate) raw_bytes: u64,
    /// The decoder's error, if the data did not decode.
    pub(crate) decode_error: Option<String>,
}

/// Decompresses the backup read from `source` (the object `path`, of `total` bytes) into
/// `sink`, hashing the compressed bytes on the way.
///
/// A decode failure is reported in the result, not as an error, so the caller can tell a
/// changed object (checksum mismatch) from one that was written bad. Errors from `sink` other
/// than a broken pipe are returned as errors.
pub(crate) fn decompress(
    source: ObjectReader,
    path: &Path,
    total: Option<u64>,
    sink: &mut dyn Write,
    sink_path: &Path,
    progress: &ProgressTx,
) -> Result<Decompressed> {
    let mut reader = HashingReader {
        inner: source,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut raw_bytes = 0u64;
    let mut decode_error = None;
    {
        let mut decoder = match zstd::stream::read::Decoder::new(&mut reader) {
            Ok(decoder) => decoder,
            Err(e) => return Err(Error::Internal(format!("cannot start zstd: {e}"))),
        };
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    decode_error = Some(e.to_string());
                    break;
                }
            };
            if let Err(e) = sink.write_all(&buf[..n]) {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    // The consumer (pg_restore) gave up; its own error says why.
                    decode_error = Some("the restore tool stopped reading".to_owned());
                    break;
                }
                return Err(Error::io("write", sink_path, e));
            }
            raw_bytes += n as u64;
            progress.report(decoder.get_ref().get_ref().bytes, total);
        }
    }
    // Hash whatever the decoder did not consume, so the checksum covers the whole file.
    io::copy(
        &mut BufReader::with_capacity(CHUNK, &mut reader),
        &mut io::sink(),
    )
    .map_err(io_err("read", path))?;
    sink.flush().map_err(io_err("write", sink_path))?;
    Ok(Decompressed {
        sha256: hex::encode(reader.hasher.finalize()),
        raw_bytes,
        decode_error,
    })
}

/// SHA-256 of an object read to its end, lowercase hex.
#[cfg(feature = "postgres")]
pub(crate) fn sha256_of(mut file: ObjectReader, path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, local::LocalStore};

    fn settings() -> ZstdSettings {
        ZstdSettings {
            level: 3,
            workers: 2,
        }
    }

    async fn round_trip(data: Vec<u8>, damage: bool) -> (Compressed, Decompressed, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Local(LocalStore::open(dir.path()).unwrap());
        let (writer, pending) = store.upload("a.zst").await.unwrap();
        let input = data.clone();
        let done = tokio::task::spawn_blocking(move || {
            compress(
                &mut input.as_slice(),
                writer,
                settings(),
                None,
                &ProgressTx::none(),
            )
        })
        .await
        .unwrap()
        .unwrap();
        pending.commit().await.unwrap();
        let path = dir.path().join("a.zst");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(done.compressed_bytes, on_disk.len() as u64);
        assert_eq!(done.sha256, hex::encode(Sha256::digest(&on_disk)));
        if damage {
            let mut bytes = on_disk;
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
        }
        let reader = store.download("a.zst").await.unwrap().unwrap();
        let back = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let back = decompress(
                reader,
                &path,
                None,
                &mut out,
                Path::new("mem"),
                &ProgressTx::none(),
            )
            .unwrap();
            (back, out)
        })
        .await
        .unwrap();
        (done, back.0, back.1)
    }

    #[tokio::test]
    async fn compress_then_decompress_gives_back_the_bytes_and_the_same_hash() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let (done, back, out) = round_trip(data.clone(), false).await;
        assert_eq!(done.raw_bytes, data.len() as u64);
        assert!(done.compressed_bytes < done.raw_bytes / 10);
        assert_eq!(out, data);
        assert_eq!(back.sha256, done.sha256);
        assert!(back.decode_error.is_none());
    }

    #[tokio::test]
    async fn a_flipped_byte_changes_the_hash_and_fails_decoding() {
        let data: Vec<u8> = (0..500_000u32)
            .flat_map(|i| (i * 7).to_le_bytes())
            .collect();
        let (done, back, out) = round_trip(data.clone(), true).await;
        assert_ne!(back.sha256, done.sha256);
        assert!(
            back.decode_error.is_some() || out != data,
            "a flipped byte must not decode to the original"
        );
    }
}
