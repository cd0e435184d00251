//! Consistent snapshots of a SQLite database that writers keep writing to.
//!
//! **Page stream** (the default). In WAL mode, a reader that starts while the WAL is empty
//! reads the database file alone ("read mark 0"), and while it stays open no checkpoint may
//! copy anything into the file: writers keep committing, into the WAL. So the snapshot
//! connection checkpoints the WAL (`TRUNCATE`), opens a read transaction, and checks that the
//! WAL was still empty once the transaction had begun (otherwise a writer slipped in: it
//! retries). From then on the database file's first `page_count × page_size` bytes *are* the
//! snapshot; they are read straight from the file and compressed as they are read, while the
//! same transaction counts the rows. Writers wait only for the checkpoint, never for the copy.
//! In rollback-journal mode the read transaction's shared lock keeps the file still (writers
//! do wait then, as they would for any reader).
//!
//! **VACUUM INTO** (the simple method, and the fallback when a quiet moment for the
//! checkpoint cannot be found): SQLite writes a compacted copy to a temporary file, which is
//! then counted and compressed.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, Read},
    os::unix::fs::FileExt,
    path::Path,
    sync::Arc,
    time::Duration,
};

use sea_orm::sqlx::{self, sqlite::SqliteConnection};

use super::{live_file, migration_version, open_copy, open_source, row_counts, side_files};
use crate::{
    Error, Result, SnapshotMethod,
    durable::TempFile,
    error::io_err,
    progress::{Phase, ProgressFn, run_blocking},
    store::ObjectWriter,
    stream::{self, Compressed, ZstdSettings},
};

/// Which snapshot method to use for SQLite sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SqliteSnapshotMethod {
    /// Stream the pages inside one read transaction, compressing as they are read; falls back
    /// to `VACUUM INTO` when writers never leave a moment to empty the WAL.
    #[default]
    PageStream,
    /// `VACUUM INTO` a temporary file, then compress it.
    VacuumInto,
}

/// A compressed snapshot (uploaded, not yet committed), with what was counted in it.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) compressed: Compressed,
    pub(crate) tables: BTreeMap<String, u64>,
    pub(crate) migration_version: Option<String>,
    pub(crate) method: SnapshotMethod,
}

/// How many times the page stream looks for an empty WAL before falling back.
const ATTEMPTS: u32 = 6;

/// How long one `TRUNCATE` checkpoint may wait for readers. New writers wait while it does,
/// so it is kept short; a long-running reader makes the page stream give up and fall back to
/// `VACUUM INTO`, which blocks no writer.
const CHECKPOINT_WAIT_MS: u32 = 100;

/// Snapshots `path` into the object being uploaded through `out` (closed, not committed: the
/// caller commits it); `scratch` is a directory for the `VACUUM INTO` copy.
pub(crate) async fn take(
    path: &Path,
    out: ObjectWriter,
    scratch: &Path,
    method: SqliteSnapshotMethod,
    zstd: ZstdSettings,
    migration_table: &str,
    progress: &ProgressFn<'_>,
) -> Result<Snapshot> {
    if !path.is_file() {
        return Err(Error::SourceMissing {
            path: path.to_path_buf(),
        });
    }
    let mut conn = open_source(path).await?;
    let quiet = match method {
        SqliteSnapshotMethod::PageStream => {
            let quiet = begin_quiet_read(&mut conn, path).await?;
            if !quiet {
                tracing::warn!(
                    database = %path.display(),
                    "writers left no moment to empty the WAL; falling back to VACUUM INTO"
                );
            }
            quiet
        }
        SqliteSnapshotMethod::VacuumInto => false,
    };
    let result = if quiet {
        let taken = page_stream(&mut conn, path, out, zstd, migration_table, progress).await;
        end_read(&mut conn).await;
        taken
    } else {
        vacuum_into(
            &mut conn,
            path,
            out,
            scratch,
            zstd,
            migration_table,
            progress,
        )
        .await
    };
    let _ = sea_orm::sqlx::Connection::close(conn).await;
    result
}

/// Opens a read transaction that reads the database file alone (see the module docs).
/// Returns false when no such moment was found.
async fn begin_quiet_read(conn: &mut SqliteConnection, path: &Path) -> Result<bool> {
    let context = || format!("starting a snapshot of {}", path.display());
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let wal = journal.eq_ignore_ascii_case("wal");
    let [wal_path, ..] = side_files(path);
    for attempt in 0..ATTEMPTS {
        if wal {
            // Busy (a reader still needs old WAL frames) is not an error: the check below
            // decides. A passive checkpoint first does the copying without blocking anyone, so
            // the truncating one only has the end to do.
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut *conn)
                .await
                .map_err(|e| Error::db(context(), e))?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}"
            )))
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::db(context(), e))?;
            let truncated = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {}",
                super::BUSY_TIMEOUT.as_millis()
            )))
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::db(context(), e))?;
            truncated.map_err(|e| Error::db(context(), e))?;
        }
        sqlx::query("BEGIN")
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::db(context(), e))?;
        // The first read starts the transaction's snapshot.
        sqlx::query("SELECT count(*) FROM sqlite_schema")
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::db(context(), e))?;
        if !wal {
            return Ok(true);
        }
        let wal_len = match std::fs::metadata(&wal_path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io("inspect", &wal_path, e)),
        };
        // An empty WAL after the snapshot began means it was empty when it began: a WAL
        // in use by this reader cannot be truncated under it.
        if wal_len == 0 {
            return Ok(true);
        }
        end_read(conn).await;
        tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
    }
    Ok(false)
}

async fn end_read(conn: &mut SqliteConnection) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
        tracing::warn!(error = %e, "cannot end the snapshot's read transaction");
    }
}

/// Streams the pages of the database as `conn`'s open read transaction sees them, which must
/// read the database file alone (an empty log, or every frame checkpointed and no checkpoint
/// possible while it reads), counting the rows in the same transaction.
pub(crate) async fn page_stream(
    conn: &mut SqliteConnection,
    path: &Path,
    out: ObjectWriter,
    zstd: ZstdSettings,
    migration_table: &str,
    progress: &ProgressFn<'_>,
) -> Result<Snapshot> {
    let context = || format!("reading the snapshot of {}", path.display());
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let page_count: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let total = u64::try_from(page_size.saturating_mul(page_count)).unwrap_or(0);
    if total == 0 {
        return Err(Error::EmptySource {
            database: path.display().to_string(),
        });
    }
    let file = live_file::shared(path).map_err(io_err("open", path))?;
    let source_path = path.to_path_buf();
    let compress = run_blocking(Phase::Snapshot, progress, move |tx| {
        let mut pages = PageReader::new(file, total);
        let compressed = stream::compress(&mut pages, out, zstd, Some(total), &tx)?;
        pages.check_header(&source_path, page_size, page_count)?;
        Ok::<_, Error>(compressed)
    });
    let count = async {
        let tables = row_counts(conn)
            .await
            .map_err(|e| Error::db(context(), e))?;
        let version = migration_version(conn, migration_table)
            .await
            .map_err(|e| Error::db(context(), e))?;
        Ok::<_, Error>((tables, version))
    };
    let (compressed, counted) = tokio::join!(compress, count);
    let compressed = compressed??;
    let (tables, migration_version) = counted?;
    Ok(Snapshot {
        compressed,
        tables,
        migration_version,
        method: SnapshotMethod::SqlitePageStream,
    })
}

/// Reads the first `end` bytes of the database file, keeping its 100-byte header.
struct PageReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
    header: Vec<u8>,
}

impl PageReader {
    fn new(file: Arc<File>, end: u64) -> Self {
        Self {
            file,
            pos: 0,
            end,
            header: Vec::with_capacity(100),
        }
    }

    /// Checks that the copied header describes the database the transaction saw: a guard
    /// against ever recording a torn copy as a backup.
    fn check_header(&self, path: &Path, page_size: i64, page_count: i64) -> Result<()> {
        let h = &self.header;
        let torn = |why: &str| {
            Err(Error::Internal(format!(
                "the snapshot of {} is inconsistent ({why}); nothing was recorded, retry",
                path.display()
            )))
        };
        if h.len() < 100 || &h[..16] != b"SQLite format 3\0" {
            return torn("no SQLite header");
        }
        let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let size = match u16::from_be_bytes([h[16], h[17]]) {
            1 => 65_536,
            n => i64::from(n),
        };
        if size != page_size {
            return torn("page size differs");
        }
        // The in-header page count is valid when the change counter matches "version valid
        // for" (SQLite ≥ 3.7.0 always writes both).
        if be32(24) == be32(92) && i64::from(be32(28)) != page_count {
            return torn("page count differs");
        }
        Ok(())
    }
}

impl Read for PageReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.end - self.pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                Error::Internal(format!(
                    "the database file ended at byte {} before its last page",
                    self.pos
                )),
            ));
        }
        if self.header.len() < 100 {
            let take = (100 - self.header.len()).min(n);
            self.header.extend_from_slice(&buf[..take]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

async fn vacuum_into(
    conn: &mut SqliteConnection,
    path: &Path,
    out: ObjectWriter,
    scratch: &Path,
    zstd: ZstdSettings,
    migration_table: &str,
    progress: &ProgressFn<'_>,
) -> Result<Snapshot> {
    let context = || format!("VACUUM INTO from {}", path.display());
    let copy_name = path
        .file_name()
        .map(|n| format!(".{}.vacuum", n.to_string_lossy()))
        .unwrap_or_else(|| ".snapshot.vacuum".to_owned());
    // VACUUM INTO accepts an empty file; creating it first claims the name and arms the
    // guard that removes it.
    let copy = TempFile::create_unique(scratch, &copy_name).map(|(guard, _)| guard)?;
    let copy_path = copy.path().to_path_buf();
    let target = copy_path.to_string_lossy().replace('\'', "''");
    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{target}'")))
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if super::is_disk_full(&e) {
                Error::DiskFull {
                    path: copy_path.clone(),
                    source: io::Error::from(io::ErrorKind::StorageFull),
                }
            } else {
                Error::db(context(), e)
            }
        })?;
    let mut copy_conn = open_copy(&copy_path)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let tables = row_counts(&mut copy_conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let migration_version = migration_version(&mut copy_conn, migration_table)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let _ = sea_orm::sqlx::Connection::close(copy_conn).await;

    let read_path = copy_path.clone();
    let compressed = run_blocking(Phase::Snapshot, progress, move |tx| {
        let mut source = File::open(&read_path).map_err(io_err("open", &read_path))?;
        let total = source.metadata().map(|m| m.len()).ok();
        stream::compress(&mut source, out, zstd, total, &tx)
    })
    .await??;
    drop(copy);
    Ok(Snapshot {
        compressed,
        tables,
        migration_version,
        method: SnapshotMethod::SqliteVacuumInto,
    })
}
