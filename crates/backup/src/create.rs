//! Taking a backup.

use std::time::Instant;

use chrono::Utc;

use crate::{
    BackupId, BackupManifest, BackupRepository, Compression, Error, Reason, Result, Source,
    display::error_chain,
    lock::RepoLock,
    manifest::{FORMAT_VERSION, data_file_name},
    postgres,
    progress::ProgressFn,
    run_log::Operation,
    sqlite,
};

/// The tool version recorded in manifests.
pub(crate) const TOOL_VERSION: &str = concat!("backup ", env!("CARGO_PKG_VERSION"));

impl BackupRepository {
    /// Takes a backup of `source`.
    ///
    /// The data file is streamed through zstd and SHA-256 into `<id>.<kind>.zst.tmp`, fsync'd,
    /// renamed into place, and only then is the manifest written (atomically as well). If the
    /// process dies at any point, what is left is not a backup and is cleaned up by the next
    /// operation; earlier backups are never touched.
    ///
    /// # Errors
    ///
    /// [`Error::LockHeld`] while another operation runs; [`Error::SourceMissing`],
    /// [`Error::EmptySource`], [`Error::Database`] for the source; [`Error::DumpFailed`] /
    /// [`Error::ToolMissing`] for pg_dump; [`Error::DiskFull`] / [`Error::Io`] for the
    /// backup directory. The outcome is recorded in the run log (except a held lock).
    pub async fn create(
        &self,
        source: &Source,
        reason: Reason,
        progress: &ProgressFn<'_>,
    ) -> Result<BackupManifest> {
        let lock = self.lock(Operation::Create).await?;
        let started = Utc::now();
        let result = self.create_locked(&lock, source, reason, progress).await;
        match &result {
            Ok(manifest) => {
                self.record(Operation::Create, started, Some(manifest.id.clone()), None);
            }
            Err(e) => self.record(Operation::Create, started, None, Some(error_chain(e))),
        }
        result
    }

    pub(crate) async fn create_locked(
        &self,
        _lock: &RepoLock,
        source: &Source,
        reason: Reason,
        progress: &ProgressFn<'_>,
    ) -> Result<BackupManifest> {
        let created_at = Utc::now();
        let timer = Instant::now();
        let id = self.free_id(created_at, source)?;
        let file = data_file_name(&id, source.kind());
        let temp_path = self.dir.join(format!("{file}.tmp"));
        let zstd = self.config.zstd;
        let table = self.config.migration_table.clone();
        let (temp, compressed, tables, migration_version, method) = match source {
            Source::Sqlite { path } => {
                let s = sqlite::snapshot::take(
                    path,
                    temp_path,
                    self.scratch_dir(),
                    self.config.sqlite_method,
                    zstd,
                    &table,
                    progress,
                )
                .await?;
                (
                    s.temp,
                    s.compressed,
                    s.tables,
                    s.migration_version,
                    s.method,
                )
            }
            Source::Postgres { url } => {
                let d = postgres::dump::take(
                    url,
                    temp_path,
                    &self.config.pg_tools,
                    zstd,
                    &table,
                    progress,
                )
                .await?;
                (
                    d.temp,
                    d.compressed,
                    d.tables,
                    d.migration_version,
                    d.method,
                )
            }
        };
        let data_path = self.dir.join(&file);
        temp.persist(&data_path)?;
        let manifest = BackupManifest {
            format_version: FORMAT_VERSION,
            id,
            created_at,
            database: source.kind(),
            source: source.display_name(),
            file,
            snapshot_method: method,
            compression: Compression {
                algorithm: "zstd".to_owned(),
                level: zstd.level,
            },
            raw_bytes: compressed.raw_bytes,
            compressed_bytes: compressed.compressed_bytes,
            sha256: compressed.sha256,
            tables,
            migration_version,
            tool_version: TOOL_VERSION.to_owned(),
            reason,
            duration_ms: u64::try_from(timer.elapsed().as_millis()).unwrap_or(u64::MAX),
            verification: None,
        };
        if let Err(e) = manifest.write(&self.dir) {
            // Without its manifest the data file is not a backup; do not leave it behind.
            crate::durable::remove_if_exists(&data_path);
            return Err(e);
        }
        tracing::info!(
            id = %manifest.id,
            source = %manifest.source,
            reason = %reason,
            raw_bytes = manifest.raw_bytes,
            compressed_bytes = manifest.compressed_bytes,
            duration_ms = manifest.duration_ms,
            "backup created"
        );
        Ok(manifest)
    }

    /// The id for a backup created at `at` that no file uses yet.
    fn free_id(&self, at: chrono::DateTime<Utc>, source: &Source) -> Result<BackupId> {
        for n in 1..10_000 {
            let id = BackupId::for_time(at, n);
            let taken = [
                format!("{id}.json"),
                data_file_name(&id, source.kind()),
                data_file_name(&id, crate::DatabaseKind::Sqlite),
                data_file_name(&id, crate::DatabaseKind::Postgres),
            ]
            .iter()
            .any(|name| self.dir.join(name).exists());
            if !taken {
                return Ok(id);
            }
        }
        Err(Error::Internal(
            "no free backup id in this second".to_owned(),
        ))
    }
}
