//! The backup directory: its configuration, its lock, and what is in it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    BackupId, BackupManifest, Error, PgTools, Result, SqliteSnapshotMethod,
    durable::TEMP_SUFFIX,
    error::io_err,
    lock::{LOCK_FILE, RepoLock},
    run_log::{Operation, RUN_LOG_FILE, RunLog, RunRecord},
    stream::ZstdSettings,
};

/// A directory of backups: data files, their manifests, a lock file and the run log.
///
/// Opening it takes no lock; every operation that writes (create, verify, restore, prune)
/// takes the directory's lock for its duration, so they never overlap, across processes.
/// Reading (list, monitor) needs no lock.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use backup::{BackupRepository, Reason, Source, VerifyOptions};
/// use sea_orm::ConnectionTrait;
///
/// let dir = tempfile::tempdir()?;
/// let url = format!("sqlite://{}/app.sqlite", dir.path().display());
/// let db = db_connect::connect(&url).await?;
/// db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2);").await?;
///
/// let repo = BackupRepository::open(dir.path().join("backups"))?;
/// let source = Source::from_url(&url)?;
/// let manifest = repo.create(&source, Reason::Manual, &|_| {}).await?;
/// assert_eq!(manifest.tables["t"], 2);
///
/// let report = repo.verify(&manifest.id, &VerifyOptions::default(), &|_| {}).await?;
/// assert!(report.ok);
/// assert_eq!(repo.list()?.backups.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BackupRepository {
    pub(crate) dir: PathBuf,
    pub(crate) config: RepositoryConfig,
}

/// Settings of a [`BackupRepository`]; see [`RepositoryBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct RepositoryConfig {
    pub(crate) migration_table: String,
    pub(crate) zstd: ZstdSettings,
    pub(crate) sqlite_method: SqliteSnapshotMethod,
    pub(crate) scratch_dir: Option<PathBuf>,
    pub(crate) lock_wait: Duration,
    pub(crate) pg_tools: PgTools,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(1))
            .unwrap_or(1);
        Self {
            migration_table: "seaql_migrations".to_owned(),
            zstd: ZstdSettings {
                level: 3,
                workers: cores.min(8),
            },
            sqlite_method: SqliteSnapshotMethod::default(),
            scratch_dir: None,
            lock_wait: Duration::ZERO,
            pg_tools: PgTools::default(),
        }
    }
}

/// Builds a [`BackupRepository`] with non-default settings.
///
/// ```
/// use std::time::Duration;
/// let repo = backup::BackupRepository::builder(std::env::temp_dir().join("doc-backups"))
///     .migration_table("schema_migrations")
///     .compression_level(5)
///     .lock_wait(Duration::from_secs(30))
///     .open()
///     .unwrap();
/// assert!(repo.dir().ends_with("doc-backups"));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RepositoryBuilder {
    dir: PathBuf,
    config: RepositoryConfig,
}

impl RepositoryBuilder {
    /// The table whose newest `version` is the schema's migration version. Default:
    /// `seaql_migrations` (sea-orm's).
    pub fn migration_table(mut self, table: impl Into<String>) -> Self {
        self.config.migration_table = table.into();
        self
    }

    /// The zstd level of new backups (1–19). Default: 3.
    pub fn compression_level(mut self, level: i32) -> Self {
        self.config.zstd.level = level;
        self
    }

    /// zstd worker threads (1 = compress on the reading thread). Default: the number of
    /// cores, at most 8.
    pub fn compression_workers(mut self, workers: u32) -> Self {
        self.config.zstd.workers = workers.max(1);
        self
    }

    /// How SQLite snapshots are taken. Default: [`SqliteSnapshotMethod::PageStream`].
    pub fn sqlite_snapshot_method(mut self, method: SqliteSnapshotMethod) -> Self {
        self.config.sqlite_method = method;
        self
    }

    /// Where verification decompresses SQLite backups and `VACUUM INTO` writes its copy (it
    /// needs the database's size free). Default: the backup directory.
    pub fn scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.scratch_dir = Some(dir.into());
        self
    }

    /// How long an operation waits for another one to release the directory's lock before
    /// failing with [`Error::LockHeld`]. Default: not at all.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.config.lock_wait = wait;
        self
    }

    /// The PostgreSQL client programs and maintenance database.
    pub fn pg_tools(mut self, tools: PgTools) -> Self {
        self.config.pg_tools = tools;
        self
    }

    /// Opens the directory, creating it when missing.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when it cannot be created or is not a directory;
    /// [`Error::InvalidConfig`] for a compression level out of range.
    pub fn open(self) -> Result<BackupRepository> {
        if !(1..=19).contains(&self.config.zstd.level) {
            return Err(Error::InvalidConfig(format!(
                "compression level {} is out of 1..=19",
                self.config.zstd.level
            )));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(io_err("create the backup directory", &self.dir))?;
        if !self.dir.is_dir() {
            return Err(Error::Io {
                action: "use as the backup directory",
                path: self.dir,
                source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
            });
        }
        Ok(BackupRepository {
            dir: self.dir,
            config: self.config,
        })
    }
}

/// What [`BackupRepository::list`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The backups (files with a valid manifest), newest first.
    pub backups: Vec<BackupManifest>,
    /// Files that look like backup files but are not backups, with why.
    pub ignored: Vec<IgnoredFile>,
}

/// A file in the backup directory that is not a backup.
#[derive(Debug, Clone, Serialize)]
pub struct IgnoredFile {
    /// The file.
    pub path: PathBuf,
    /// Why it is not a backup.
    pub why: String,
}

impl BackupRepository {
    /// Opens (and creates when missing) the backup directory with default settings.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be created or is not a directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::builder(dir).open()
    }

    /// A builder for non-default settings.
    pub fn builder(dir: impl Into<PathBuf>) -> RepositoryBuilder {
        RepositoryBuilder {
            dir: dir.into(),
            config: RepositoryConfig::default(),
        }
    }

    /// The backup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The table the schema's migration version is read from.
    pub fn migration_table(&self) -> &str {
        &self.config.migration_table
    }

    /// The backups, newest first, and the files that are not backups.
    ///
    /// A data file without a valid manifest (an interrupted backup, a manifest from a newer
    /// tool, a manifest that does not parse) is never listed as a backup.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Listing> {
        let mut backups = Vec::new();
        let mut ignored = Vec::new();
        let mut data_files = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(io_err("read", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("read", &self.dir))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name == LOCK_FILE || name == RUN_LOG_FILE {
                continue;
            }
            if name.ends_with(TEMP_SUFFIX) {
                ignored.push(IgnoredFile {
                    path,
                    why: "an interrupted write (removed by the next create, verify or prune)"
                        .to_owned(),
                });
            } else if let Some(stem) = name.strip_suffix(".json") {
                if BackupId::parse(stem).is_err() {
                    continue;
                }
                match BackupManifest::read(&path) {
                    Ok(manifest) => backups.push(manifest),
                    Err(e) => ignored.push(IgnoredFile {
                        path,
                        why: e.to_string(),
                    }),
                }
            } else if name.ends_with(".sqlite.zst") || name.ends_with(".pgdump.zst") {
                data_files.push((name.to_owned(), path));
            }
        }
        for (name, path) in data_files {
            if !backups.iter().any(|m| m.file == name) {
                ignored.push(IgnoredFile {
                    path,
                    why: "a data file without a valid manifest: not a backup".to_owned(),
                });
            }
        }
        backups.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        ignored.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Listing { backups, ignored })
    }

    /// The manifest of backup `id`.
    ///
    /// # Errors
    ///
    /// [`Error::NoManifest`] when there is none; [`Error::InvalidManifest`] or
    /// [`Error::UnsupportedFormat`] when it cannot be read.
    pub fn manifest(&self, id: &BackupId) -> Result<BackupManifest> {
        let path = self.dir.join(format!("{id}.json"));
        if !path.exists() {
            return Err(Error::NoManifest {
                id: id.to_string(),
                dir: self.dir.clone(),
            });
        }
        BackupManifest::read(&path)
    }

    /// How the latest run of each operation ended.
    ///
    /// # Errors
    ///
    /// When `last-run.json` exists but cannot be read.
    pub fn last_runs(&self) -> Result<RunLog> {
        RunLog::read(&self.dir)
    }

    /// The data file of a backup.
    pub(crate) fn data_path(&self, manifest: &BackupManifest) -> PathBuf {
        self.dir.join(&manifest.file)
    }

    /// Where scratch copies go.
    pub(crate) fn scratch_dir(&self) -> &Path {
        self.config.scratch_dir.as_deref().unwrap_or(&self.dir)
    }

    pub(crate) async fn lock(&self, operation: Operation) -> Result<RepoLock> {
        RepoLock::acquire(&self.dir, &operation.to_string(), self.config.lock_wait).await
    }

    /// Records how a run ended (the caller holds the lock).
    pub(crate) fn record(
        &self,
        operation: Operation,
        started_at: DateTime<Utc>,
        backup: Option<BackupId>,
        error: Option<String>,
    ) {
        RunLog::record(
            &self.dir,
            RunRecord {
                operation,
                started_at,
                finished_at: Utc::now(),
                ok: error.is_none(),
                backup,
                error,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use crate::{
        BackupId, BackupRepository, Reason, RestoreOptions, RetentionPolicy, Source, VerifyOptions,
    };

    fn assert_send<T: Send>(_: T) {}

    /// A server spawns these on its runtime: they must be `Send`.
    #[test]
    fn operations_can_be_spawned() {
        let dir = tempfile::tempdir().unwrap();
        let repo = BackupRepository::open(dir.path()).unwrap();
        let source = Source::sqlite(dir.path().join("db.sqlite"));
        let id = BackupId::parse("20261125T103000Z").unwrap();
        let verify = VerifyOptions::default();
        assert_send(repo.create(&source, Reason::Manual, &|_| {}));
        assert_send(repo.verify(&id, &verify, &|_| {}));
        assert_send(repo.verify_all(&verify, &|_| {}));
        assert_send(repo.restore(&id, &source, &RestoreOptions::default(), &|_| {}));
        assert_send(repo.prune(&RetentionPolicy::default(), Utc::now(), true));
        assert_send(repo.pre_migration(&source, &verify, &|_| {}));
        assert_send(repo.run_scheduled(&source, &verify, &RetentionPolicy::default(), &|_| {}));
        assert_send(crate::holds_data(&source, &[]));
    }
}
