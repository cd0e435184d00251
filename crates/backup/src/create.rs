//! Taking a backup.

use std::{collections::HashSet, path::Path, time::Instant};

use chrono::Utc;
use sea_orm::sqlx::sqlite::SqliteConnection;

use crate::{
    BackupId, BackupManifest, BackupRepository, Compression, Error, Reason, Result, Source,
    display::error_chain,
    lock::RepoLock,
    manifest::{FORMAT_VERSION, ReplicaPoint, data_file_name, manifest_key},
    progress::ProgressFn,
    run_log::Operation,
    sqlite,
};

/// Where a backup's snapshot comes from.
enum Snapshot<'a, 'p> {
    /// Taken from the source the usual way, with progress reports.
    Take(&'a ProgressFn<'p>),
    /// The pages of a read transaction the caller holds on a SQLite source.
    Pinned(&'a mut SqliteConnection),
}

/// The tool version recorded in manifests.
pub(crate) const TOOL_VERSION: &str = concat!("backup ", env!("CARGO_PKG_VERSION"));

impl BackupRepository {
    /// Takes a backup of `source`.
    ///
    /// The data is streamed through zstd and SHA-256 into the repository (an upload that is
    /// not visible until complete), and only then is the sealed manifest written: if the
    /// process dies at any point, what is left is not a backup and is cleaned up by the next
    /// operation; earlier backups are never touched. The first backup records the database as
    /// the repository's own; a backup of another database is refused.
    ///
    /// # Errors
    ///
    /// [`Error::LockHeld`] while another operation runs; [`Error::ForeignDatabase`] when the
    /// repository belongs to another database; [`Error::SourceMissing`],
    /// [`Error::EmptySource`], [`Error::Database`] for the source; [`Error::DumpFailed`] /
    /// [`Error::ToolMissing`] for pg_dump; [`Error::DiskFull`] / [`Error::Io`] /
    /// [`Error::Store`] for the repository; [`Error::DatabaseGone`] when the repository's own
    /// database no longer exists. The outcome is recorded in the run log, except a held lock
    /// and an invalid request ([`Error::is_invalid_request`]: a wrong URL is not a failed
    /// backup).
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
                self.record(Operation::Create, started, Some(manifest.id.clone()), None)
                    .await;
            }
            Err(e) if e.is_invalid_request() => {}
            Err(e) => {
                self.record(Operation::Create, started, None, Some(error_chain(e)))
                    .await;
            }
        }
        result
    }

    pub(crate) async fn create_locked(
        &self,
        lock: &RepoLock,
        source: &Source,
        reason: Reason,
        progress: &ProgressFn<'_>,
    ) -> Result<BackupManifest> {
        self.create_from(lock, source, Snapshot::Take(progress), reason, None)
            .await
    }

    /// A replication snapshot: the pages of `conn`'s read transaction, which the caller holds
    /// where the database file alone is the database (see the replicator), taken as backup
    /// `reason` `replication` with its place in the generation.
    pub(crate) async fn create_replica_snapshot(
        &self,
        lock: &RepoLock,
        path: &Path,
        conn: &mut SqliteConnection,
        point: ReplicaPoint,
    ) -> Result<BackupManifest> {
        let source = Source::sqlite(path);
        self.create_from(
            lock,
            &source,
            Snapshot::Pinned(conn),
            Reason::Replication,
            Some(point),
        )
        .await
    }

    async fn create_from(
        &self,
        _lock: &RepoLock,
        source: &Source,
        snapshot: Snapshot<'_, '_>,
        reason: Reason,
        replication: Option<ReplicaPoint>,
    ) -> Result<BackupManifest> {
        let created_at = Utc::now();
        let timer = Instant::now();
        let identity = self.identity().await?;
        if let Some(identity) = &identity {
            self.admit(identity, source)?;
        }
        let id = self.free_id(created_at).await?;
        let file = data_file_name(&id, source.kind());
        let (writer, upload) = self.store.upload(&file).await?;
        let zstd = self.config.zstd;
        let table = self.config.migration_table.clone();
        let taken = match (source, snapshot) {
            (Source::Sqlite { path }, Snapshot::Take(progress)) => sqlite::snapshot::take(
                path,
                writer,
                &self.scratch_dir(),
                self.config.sqlite_method,
                zstd,
                &table,
                progress,
            )
            .await
            .map(|s| (s.compressed, s.tables, s.migration_version, s.method)),
            (Source::Sqlite { path }, Snapshot::Pinned(conn)) => {
                sqlite::snapshot::page_stream(conn, path, writer, zstd, &table, &|_| {})
                    .await
                    .map(|s| (s.compressed, s.tables, s.migration_version, s.method))
            }
            #[cfg(not(feature = "postgres"))]
            (Source::Postgres { .. }, Snapshot::Take(_)) => Err(Error::postgres_not_compiled()),
            #[cfg(feature = "postgres")]
            (Source::Postgres { url }, Snapshot::Take(progress)) => crate::postgres::dump::take(
                url,
                writer,
                &self.config.pg_tools,
                zstd,
                &table,
                progress,
            )
            .await
            .map(|d| (d.compressed, d.tables, d.migration_version, d.method)),
            (Source::Postgres { .. }, Snapshot::Pinned(_)) => Err(Error::Internal(
                "a pinned snapshot is of a SQLite database".to_owned(),
            )),
        };
        // The database is the repository's once a good snapshot of it exists, not before:
        // a wrong URL must not claim a repository.
        let claimed = match (&taken, &identity) {
            (Ok(_), None) => self.claim(source).await,
            _ => Ok(()),
        };
        // Once the repository knows the database, its absence is an operational failure: it
        // was there at the last backup.
        let taken = match (taken, &identity) {
            (Err(Error::SourceMissing { .. } | Error::DatabaseNotFound { .. }), Some(identity)) => {
                Err(Error::DatabaseGone {
                    database: identity.database.clone(),
                    repository: self.location.to_string(),
                })
            }
            (taken, _) => taken,
        };
        let (compressed, tables, migration_version, method) = match (taken, claimed) {
            (Ok(taken), Ok(())) => taken,
            (Err(e), _) | (Ok(_), Err(e)) => {
                upload.abort().await;
                return Err(e);
            }
        };
        upload.commit().await?;
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
            replication,
        };
        let written = match manifest.to_bytes() {
            Ok(bytes) => {
                self.store
                    .put_once(&manifest_key(&manifest.id), bytes)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // Without its manifest the data is not a backup; do not leave it behind.
            if let Err(cleanup) = self.store.delete(&manifest.file).await {
                tracing::warn!(object = %self.store.describe(&manifest.file), error = %error_chain(&cleanup), "cannot remove the data of a failed backup; prune removes it");
            }
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

    /// The id for a backup created at `at` that no object uses yet.
    async fn free_id(&self, at: chrono::DateTime<Utc>) -> Result<BackupId> {
        let taken: HashSet<String> = self
            .store
            .list_dir("")
            .await?
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        for n in 1..10_000 {
            let id = BackupId::for_time(at, n);
            let used = std::iter::once(manifest_key(&id))
                .chain(
                    [crate::DatabaseKind::Sqlite, crate::DatabaseKind::Postgres]
                        .map(|kind| data_file_name(&id, kind)),
                )
                .any(|name| taken.contains(&name));
            if !used {
                return Ok(id);
            }
        }
        Err(Error::Internal(
            "no free backup id in this second".to_owned(),
        ))
    }
}
