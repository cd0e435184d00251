//! Turning a SQLite backup back into a database file: decompress beside its destination,
//! check it, and (for a restore) swap it into place.

use std::{
    collections::BTreeMap,
    io::BufWriter,
    path::{Path, PathBuf},
};

use super::{check::check_copy, side_files};
use crate::{
    BackupManifest, Result, VerifyDepth, VerifyFailure,
    data_file::{self, stream_failure},
    durable::{self, TempFile},
    error::io_err,
    progress::{Phase, ProgressFn, run_blocking},
    scratch::ScratchClaim,
    store::Store,
    stream::{self, CHUNK},
};

/// A decompressed copy in its temporary file, and whether it passed the checks.
#[derive(Debug)]
pub(crate) struct Materialized {
    pub(crate) temp: TempFile,
    pub(crate) outcome: std::result::Result<BTreeMap<String, u64>, VerifyFailure>,
}

/// Checks the data object's size, then decompresses it into the new file `dest` (claimed by
/// `claim`, which goes once the file does) while hashing it, then checks the copy.
pub(crate) async fn materialize(
    store: &Store,
    dest: PathBuf,
    claim: ScratchClaim,
    manifest: &BackupManifest,
    depth: VerifyDepth,
    migration_table: &str,
    progress: &ProgressFn<'_>,
) -> Result<Materialized> {
    let decompressed = decompress(store, dest, claim, manifest, true, progress).await?;
    if decompressed.outcome.is_err() {
        return Ok(decompressed);
    }
    let temp = decompressed.temp;
    progress(crate::Progress {
        phase: Phase::Check,
        done: 0,
        total: None,
    });
    let checked = check_copy(temp.path(), Some(manifest), depth, migration_table).await;
    let outcome = match checked.failure {
        Some(failure) => Err(failure),
        None => Ok(checked.tables),
    };
    Ok(Materialized { temp, outcome })
}

/// Checks the data object's size, then decompresses it into the new file `dest` (claimed by
/// `claim`, which goes once the file does), checking its SHA-256, decoding and raw size (not
/// its content: the caller checks that, perhaps after changing it). The outcome's tables are
/// empty. With `durable`, the file is fsync'd once written; a caller that changes it further
/// fsyncs it itself once, when it is done, before it is put in place.
pub(crate) async fn decompress(
    store: &Store,
    dest: PathBuf,
    claim: ScratchClaim,
    manifest: &BackupManifest,
    durable: bool,
    progress: &ProgressFn<'_>,
) -> Result<Materialized> {
    let (temp, file) = TempFile::create_claimed(dest, claim)?;
    let data = match data_file::open(store, manifest).await? {
        Ok(data) => data,
        Err(failure) => {
            return Ok(Materialized {
                temp,
                outcome: Err(failure),
            });
        }
    };
    let dest_path = temp.path().to_path_buf();
    let decompressed = run_blocking(Phase::Decompress, progress, move |tx| {
        let mut sink = BufWriter::with_capacity(CHUNK, file);
        let done = stream::decompress(
            data.reader,
            &data.path,
            Some(data.size),
            &mut sink,
            &dest_path,
            &tx,
        )?;
        let file = sink
            .into_inner()
            .map_err(|e| crate::Error::io("write", &dest_path, e.into_error()))?;
        if durable {
            file.sync_all().map_err(io_err("fsync", &dest_path))?;
        }
        Ok::<_, crate::Error>(done)
    })
    .await??;
    let outcome = match stream_failure(manifest, &decompressed) {
        Some(failure) => Err(failure),
        None => Ok(BTreeMap::new()),
    };
    Ok(Materialized { temp, outcome })
}

/// Replaces `target` with the checked copy in `temp`.
///
/// The old database's `-wal`, `-shm` and `-journal` files are removed *before* the rename:
/// left beside the new file, SQLite would replay the old WAL into it. A crash between the two
/// steps leaves the old database without its uncheckpointed WAL, which the safety backup holds.
/// Returns the side files that were removed.
pub(crate) fn swap_into_place(temp: TempFile, target: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for side in side_files(target) {
        match std::fs::remove_file(&side) {
            Ok(()) => removed.push(side),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::Error::io("remove", &side, e)),
        }
    }
    if !removed.is_empty() {
        // The removals must be on disk before the rename is: the reverse order after a crash
        // is the old WAL beside the new database.
        durable::sync_parent(target)?;
    }
    // The copy was fsync'd when written; persist() syncs the directory after the rename.
    temp.persist(target)?;
    Ok(removed)
}
