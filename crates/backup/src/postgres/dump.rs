//! `pg_dump` into a compressed backup file.
//!
//! A REPEATABLE READ transaction exports its snapshot; `pg_dump --snapshot` dumps exactly that
//! snapshot while the same transaction counts the rows, so the manifest's counts are those of
//! the dump even while writers keep writing. pg_dump's own compression is off: zstd does the
//! job faster and better.

use std::{
    collections::BTreeMap,
    io::{self, Read},
    process::{ChildStdout, Stdio},
};

use sea_orm::sqlx;

use super::{PgTools, PgUrl, contents, spawn};
use crate::{
    Error, Result, SnapshotMethod,
    progress::{Phase, ProgressFn, run_blocking},
    store::ObjectWriter,
    stream::{self, Compressed, ZstdSettings},
};

/// A compressed dump (uploaded, not yet committed), with what was counted in its snapshot.
#[derive(Debug)]
pub(crate) struct Dump {
    pub(crate) compressed: Compressed,
    pub(crate) tables: BTreeMap<String, u64>,
    pub(crate) migration_version: Option<String>,
    pub(crate) method: SnapshotMethod,
}

/// The first bytes of every custom-format dump.
const MAGIC: &[u8; 5] = b"PGDMP";

/// Dumps the database at `url` into the object being uploaded through `out` (closed, not
/// committed: the caller commits it once the dump is known to be good).
pub(crate) async fn take(
    url: &str,
    out: ObjectWriter,
    tools: &PgTools,
    zstd: ZstdSettings,
    migration_table: &str,
    progress: &ProgressFn<'_>,
) -> Result<Dump> {
    let url = PgUrl::parse(url)?;
    let context = || format!("reading the snapshot of {}", url.public());
    let mut conn = url.connect().await?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| Error::db(context(), e))?;

    let mut cmd = url.command(&tools.pg_dump);
    cmd.args(["--format=custom", "--compress=0"])
        .arg(format!("--snapshot={snapshot}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let estimate = u64::try_from(size).ok();
    let dump = run_blocking(Phase::Dump, progress, move |tx| {
        let (mut child, stderr) = spawn(cmd, "pg_dump")?;
        let Some(stdout) = child.stdout.take() else {
            return Err(Error::Internal("pg_dump has no stdout".to_owned()));
        };
        let mut checked = MagicCheck::new(stdout);
        let compressed = stream::compress(&mut checked, out, zstd, estimate, &tx);
        if compressed.is_err() {
            // Writing failed (a full disk, say): stop pg_dump rather than let it block.
            let _ = child.kill();
        }
        let status = child
            .wait()
            .map_err(|e| Error::Internal(format!("pg_dump: {e}")))?;
        let stderr = stderr.finish();
        // A failure to write is the cause; pg_dump's death by our kill is its consequence.
        let compressed = compressed?;
        if !status.success() {
            return Err(Error::DumpFailed {
                tool: "pg_dump".to_owned(),
                status: status.to_string(),
                stderr,
            });
        }
        if compressed.raw_bytes == 0 {
            return Err(Error::DumpFailed {
                tool: "pg_dump".to_owned(),
                status: "empty output".to_owned(),
                stderr,
            });
        }
        if !checked.valid() {
            return Err(Error::DumpFailed {
                tool: "pg_dump".to_owned(),
                status: "its output is not a custom-format dump".to_owned(),
                stderr,
            });
        }
        Ok(compressed)
    });
    let count = async {
        contents(&mut conn, migration_table)
            .await
            .map_err(|e| Error::db(context(), e))
    };
    let (dumped, counted) = tokio::join!(dump, count);
    // The exporting transaction must outlive pg_dump's import of its snapshot: it ends here.
    let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
    let _ = sqlx::Connection::close(conn).await;
    let compressed = dumped??;
    let (tables, migration_version) = counted?;
    Ok(Dump {
        compressed,
        tables,
        migration_version,
        method: SnapshotMethod::PgDumpCustom,
    })
}

/// Passes pg_dump's output through, remembering whether it began with the dump magic.
struct MagicCheck {
    inner: ChildStdout,
    head: Vec<u8>,
}

impl MagicCheck {
    fn new(inner: ChildStdout) -> Self {
        Self {
            inner,
            head: Vec::with_capacity(MAGIC.len()),
        }
    }

    fn valid(&self) -> bool {
        self.head == MAGIC
    }
}

impl Read for MagicCheck {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.head.len() < MAGIC.len() {
            let take = (MAGIC.len() - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }
}
