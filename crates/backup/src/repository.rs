//! The repository: where it lives, its settings, its lock, and what is in it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    BackupId, BackupManifest, Error, PgTools, Result, Source, SqliteSnapshotMethod, Verification,
    durable::{self, Sweep},
    identity::IDENTITY_KEY,
    lock::{LOCK_FILE, RepoLock},
    manifest::{DATA_SUFFIXES, MANIFEST_SUFFIX, manifest_key},
    run_log::{Operation, RunLog, RunRecord},
    scratch::{Leftover, ScratchRegistry},
    sealed,
    store::{RepositoryLocation, S3Settings, Store},
    stream::ZstdSettings,
};

/// The directory of verification records: `verifications/<id>/<verified_at>.json`.
pub(crate) const VERIFICATIONS_DIR: &str = "verifications";

/// A repository of backups: a local directory or a bucket prefix of an S3-compatible object
/// store, holding the backups of one database.
///
/// Opening it sends no request and takes no lock; every operation that writes (create,
/// verify, restore, prune) takes the repository's lock for its duration, so they never
/// overlap (across processes; on an object store, across the processes of one host). Reading
/// (list, monitor) needs no lock. The layout of the objects is described in the crate docs.
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
/// assert_eq!(repo.list().await?.backups.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BackupRepository {
    pub(crate) store: Store,
    pub(crate) location: RepositoryLocation,
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
    pub(crate) s3: S3Settings,
    pub(crate) create_if_missing: bool,
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
            s3: S3Settings::default(),
            create_if_missing: true,
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
/// assert!(repo.location().local_dir().unwrap().ends_with("doc-backups"));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RepositoryBuilder {
    location: RepositoryLocation,
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
    /// needs the database's size free). Default: a local repository's directory; for an
    /// object store, a directory of its own in the system's temporary directory.
    pub fn scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.scratch_dir = Some(dir.into());
        self
    }

    /// How long an operation waits for another one to release the repository's lock before
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

    /// Credentials and defaults for a repository in an S3-compatible store.
    pub fn s3_settings(mut self, settings: S3Settings) -> Self {
        self.config.s3 = settings;
        self
    }

    /// Whether [`RepositoryBuilder::open`] creates a local directory that does not exist.
    /// Default: true. Whoever only reads (lists, monitors, restores) should pass false, so
    /// that a mistyped location is an error instead of a new, empty repository.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.config.create_if_missing = create;
        self
    }

    /// Opens the repository: a local directory is created when missing (unless
    /// [`RepositoryBuilder::create_if_missing`] says not to), and removed again when the last
    /// handle on the repository goes without anything stored in it, so that a first run that
    /// fails leaves no empty repository; for an object store, the client is built (no request
    /// is sent).
    ///
    /// # Errors
    ///
    /// [`Error::RepositoryNotFound`] for a missing directory that is not to be created;
    /// [`Error::Io`] when the directory cannot be created or is not a directory;
    /// [`Error::InvalidConfig`] for a compression level out of range, or an `s3://` location
    /// in a build without the `s3` feature.
    pub fn open(self) -> Result<BackupRepository> {
        if !(1..=19).contains(&self.config.zstd.level) {
            return Err(Error::InvalidConfig(format!(
                "compression level {} is out of 1..=19",
                self.config.zstd.level
            )));
        }
        if let RepositoryLocation::Local(dir) = &self.location
            && !self.config.create_if_missing
            && !dir.is_dir()
        {
            return Err(Error::RepositoryNotFound {
                repository: self.location.to_string(),
            });
        }
        let store = Store::open(&self.location, &self.config.s3)?;
        Ok(BackupRepository {
            store,
            location: self.location,
            config: self.config,
        })
    }
}

/// What [`BackupRepository::list`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The backups (data with a valid manifest), newest first.
    pub backups: Vec<BackupManifest>,
    /// Objects that look like backups but are not, with why.
    pub ignored: Vec<IgnoredFile>,
}

/// An object of the repository that is not a backup.
#[derive(Debug, Clone, Serialize)]
pub struct IgnoredFile {
    /// The object (its path, or `s3://bucket/key`).
    pub object: String,
    /// Its key in the repository.
    pub key: String,
    /// Why it is not a backup.
    pub why: String,
}

impl BackupRepository {
    /// Opens (and creates when missing) a local repository with default settings; a directory
    /// it created is removed again if nothing is ever stored in it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be created or is not a directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::builder(RepositoryLocation::Local(dir.into())).open()
    }

    /// A builder for a repository at `location` (a path, or a [`RepositoryLocation`] parsed
    /// from a URL) with non-default settings.
    pub fn builder(location: impl Into<RepositoryLocation>) -> RepositoryBuilder {
        RepositoryBuilder {
            location: location.into(),
            config: RepositoryConfig::default(),
        }
    }

    /// Where the repository lives.
    pub fn location(&self) -> &RepositoryLocation {
        &self.location
    }

    /// The table the schema's migration version is read from.
    pub fn migration_table(&self) -> &str {
        &self.config.migration_table
    }

    /// The backups, newest first, and the objects that are not backups.
    ///
    /// A data object without a valid manifest (an interrupted backup, a manifest from a newer
    /// tool, a manifest that does not parse or whose seal does not match) is never listed as
    /// a backup. Uploads in progress are not objects yet, so they are not listed at all.
    ///
    /// # Errors
    ///
    /// When the repository cannot be listed (a missing directory, an unreachable store).
    pub async fn list(&self) -> Result<Listing> {
        let root = self.store.list_dir("").await?;
        let verifications = self.verification_keys().await?;
        let mut manifests = Vec::new();
        let mut data = Vec::new();
        for object in root.objects {
            let name = object.name().to_owned();
            if name == IDENTITY_KEY {
                continue;
            }
            if let Some(stem) = name.strip_suffix(MANIFEST_SUFFIX) {
                if let Ok(id) = BackupId::parse(stem) {
                    manifests.push((id, object.key));
                }
            } else if DATA_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                data.push(object.key);
            }
        }
        // Manifests are small: read them a few at a time (an object store answers in parallel).
        let read: Vec<(String, Result<BackupManifest>)> =
            futures::stream::iter(manifests.into_iter().map(|(id, key)| {
                let verification = verifications.get(&id).cloned();
                async move {
                    let manifest = self.read_manifest(&id, verification.as_deref()).await;
                    (key, manifest)
                }
            }))
            .buffer_unordered(8)
            .collect()
            .await;
        let mut backups = Vec::new();
        let mut ignored = Vec::new();
        for (key, manifest) in read {
            match manifest {
                Ok(manifest) => backups.push(manifest),
                Err(e) => ignored.push(IgnoredFile {
                    object: self.store.describe(&key),
                    key,
                    why: crate::error_chain(&e),
                }),
            }
        }
        for key in data {
            if !backups.iter().any(|m| m.file == key) {
                ignored.push(IgnoredFile {
                    object: self.store.describe(&key),
                    key,
                    why: "a data object without a valid manifest: not a backup".to_owned(),
                });
            }
        }
        backups.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        ignored.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Listing { backups, ignored })
    }

    /// The manifest of backup `id`, with its latest verification.
    ///
    /// # Errors
    ///
    /// [`Error::NoManifest`] when there is none; [`Error::InvalidManifest`] or
    /// [`Error::UnsupportedFormat`] when it cannot be read.
    pub async fn manifest(&self, id: &BackupId) -> Result<BackupManifest> {
        let verification = self
            .store
            .list(&format!("{VERIFICATIONS_DIR}/{id}"))
            .await?
            .into_iter()
            .map(|o| o.key)
            .max();
        self.read_manifest(id, verification.as_deref()).await
    }

    async fn read_manifest(
        &self,
        id: &BackupId,
        verification_key: Option<&str>,
    ) -> Result<BackupManifest> {
        let key = manifest_key(id);
        let Some(bytes) = self.store.get(&key).await? else {
            return Err(Error::NoManifest {
                id: id.to_string(),
                repository: self.location.to_string(),
            });
        };
        let mut manifest = BackupManifest::parse(&self.store.describe(&key), &key, &bytes)?;
        if let Some(record) = verification_key {
            manifest.verification = Some(self.read_verification(record).await?);
        }
        Ok(manifest)
    }

    /// The newest verification record of every backup.
    async fn verification_keys(&self) -> Result<BTreeMap<BackupId, String>> {
        let mut newest: BTreeMap<BackupId, String> = BTreeMap::new();
        for object in self.store.list(VERIFICATIONS_DIR).await? {
            let Some(id) = object
                .key
                .split('/')
                .nth(1)
                .and_then(|id| BackupId::parse(id).ok())
            else {
                continue;
            };
            let slot = newest.entry(id).or_default();
            if object.key > *slot {
                *slot = object.key;
            }
        }
        Ok(newest)
    }

    async fn read_verification(&self, key: &str) -> Result<Verification> {
        let bytes = self
            .store
            .get(key)
            .await?
            .ok_or_else(|| Error::InvalidManifest {
                object: self.store.describe(key),
                reason: "removed while it was being read".to_owned(),
            })?;
        sealed::open(&bytes).map_err(|reason| Error::InvalidManifest {
            object: self.store.describe(key),
            reason,
        })
    }

    /// Records the outcome of a verification of backup `id` (a new object; the newest wins).
    pub(crate) async fn save_verification(
        &self,
        id: &BackupId,
        verification: &Verification,
    ) -> Result<()> {
        let key = format!(
            "{VERIFICATIONS_DIR}/{id}/{}.json",
            verification.verified_at.format("%Y%m%dT%H%M%S%.6fZ")
        );
        let bytes = sealed::seal(verification).map_err(Error::Internal)?;
        self.store.put_once(&key, bytes).await.map(|_| ())
    }

    /// Deletes the verification records of backup `id`.
    pub(crate) async fn delete_verifications(&self, id: &BackupId) -> Result<()> {
        let records: Vec<String> = self
            .store
            .list(&format!("{VERIFICATIONS_DIR}/{id}"))
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        for key in records {
            self.store.delete(&key).await?;
        }
        Ok(())
    }

    /// How the latest run of each operation ended.
    ///
    /// # Errors
    ///
    /// When the run records cannot be listed or one cannot be read.
    pub async fn last_runs(&self) -> Result<RunLog> {
        RunLog::read(&self.store).await
    }

    /// Where scratch copies go: the configured directory, a local repository's directory, or
    /// a directory of this repository's own in the system's temporary directory.
    pub(crate) fn scratch_dir(&self) -> PathBuf {
        if let Some(dir) = &self.config.scratch_dir {
            return dir.clone();
        }
        match &self.store {
            Store::Local(store) => store.dir().to_path_buf(),
            #[cfg(feature = "s3")]
            Store::S3(_) => self.work_dir(),
        }
    }

    /// For a repository in an object store: the local directory of its lock file (and, by
    /// default, its scratch copies), named after the repository, in the configured scratch
    /// directory or else the system's temporary directory.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    fn work_dir(&self) -> PathBuf {
        let digest = hex::encode(Sha256::digest(self.location.to_string().as_bytes()));
        self.config
            .scratch_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("hotel-backup-{}", &digest[..16]))
    }

    /// The local directory of the repository's lock file and scratch claims: a local
    /// repository's own directory, or the work directory of one in an object store.
    pub(crate) fn control_dir(&self) -> PathBuf {
        match &self.store {
            Store::Local(store) => store.dir().to_path_buf(),
            #[cfg(feature = "s3")]
            Store::S3(_) => self.work_dir(),
        }
    }

    /// The registry of this repository's scratch state (see [`crate::scratch`]).
    pub(crate) fn scratch(&self) -> ScratchRegistry {
        ScratchRegistry::new(&self.control_dir())
    }

    /// The directories where interrupted runs may have left temporary files, and which of
    /// those files are ours.
    fn temp_dirs(&self) -> Vec<(PathBuf, Sweep)> {
        let mut dirs = vec![(self.control_dir(), Sweep::Everything)];
        if let Some(scratch) = &self.config.scratch_dir {
            dirs.push((scratch.clone(), Sweep::ScratchCopies));
        }
        dirs
    }

    /// Takes the repository's lock, then removes what interrupted runs left locally.
    pub(crate) async fn lock(&self, operation: Operation) -> Result<RepoLock> {
        self.lock_and_recover(&operation.to_string())
            .await
            .map(|(lock, _)| lock)
    }

    /// Takes the repository's lock for `operation`, then removes the temporary files and the
    /// claimed scratch files of runs that died; returns the lock and what was removed.
    async fn lock_and_recover(&self, operation: &str) -> Result<(RepoLock, Vec<Leftover>)> {
        let control = self.control_dir();
        if self.local_dir().is_none() {
            std::fs::create_dir_all(&control)
                .map_err(crate::error::io_err("create the directory", &control))?;
        }
        let lock = RepoLock::acquire(
            &control.join(LOCK_FILE),
            &self.location.to_string(),
            operation,
            self.config.lock_wait,
        )
        .await?;
        // Every writer of these holds the lock or a lock of its own (a temporary file's, a
        // claim's), so what is unlocked there was left by a run that died.
        let dirs = self.temp_dirs();
        let scratch = self.scratch();
        let removed = tokio::task::spawn_blocking(move || {
            for (dir, sweep) in dirs {
                durable::remove_stale_temp_files(&dir, sweep);
            }
            scratch.recover_files()
        })
        .await
        .map_err(|e| Error::Internal(format!("a cleanup worker failed: {e}")))?;
        Ok((lock, removed))
    }

    /// Drops the scratch databases that dead runs left on `server`'s server, through an
    /// administrative connection to it (the caller holds the lock).
    #[cfg(feature = "postgres")]
    pub(crate) async fn recover_databases(
        &self,
        admin: &mut crate::postgres::admin::Admin,
        server: &crate::postgres::PgUrl,
    ) -> Vec<Leftover> {
        self.scratch()
            .recover_databases(&server.server_key(), admin)
            .await
    }

    /// Creates database `name` on `server`'s server for `operation`, claimed in the scratch
    /// registry while it exists so that a run killed before dropping it leaves it to be found
    /// and removed. Gives `admin` back with the claim; when the database cannot be created,
    /// nothing of this run's is left and `admin` is closed.
    #[cfg(feature = "postgres")]
    pub(crate) async fn create_claimed_database(
        &self,
        mut admin: crate::postgres::admin::Admin,
        server: &crate::postgres::PgUrl,
        name: &str,
        operation: Operation,
    ) -> Result<(crate::postgres::admin::Admin, crate::scratch::ScratchClaim)> {
        let claim = self.scratch().claim(
            crate::scratch::ScratchItem::PostgresDatabase {
                server: server.server_key(),
                database: name.to_owned(),
            },
            &operation.to_string(),
        )?;
        if let Err(e) = admin.create(name).await {
            // Not created (or not by us): nothing of ours to remove.
            claim.release();
            admin.close().await;
            return Err(e);
        }
        Ok((admin, claim))
    }

    /// What interrupted runs left behind on this host: scratch files and databases claimed by
    /// a run that died (see the crate docs), and temporary files whose writer died. Changes
    /// nothing and takes no lock; the next create, verify, restore or prune removes them (a
    /// scratch database: the next run that connects to its server), as does
    /// [`BackupRepository::clean_leftovers`].
    pub fn leftovers(&self) -> Vec<Leftover> {
        let mut found = self.scratch().leftovers();
        for (dir, sweep) in self.temp_dirs() {
            for path in durable::stale_temp_files(&dir, sweep) {
                let started_at = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map_or_else(|_| Utc::now(), DateTime::<Utc>::from);
                found.push(Leftover {
                    what: format!("file {}", path.display()),
                    operation: "unknown (a temporary file)".to_owned(),
                    pid: 0,
                    started_at,
                });
            }
        }
        found
    }

    /// Removes what interrupted runs left behind (see [`BackupRepository::leftovers`]), under
    /// the repository's lock: files at once, scratch databases on the server of `server` (a
    /// PostgreSQL database URL whose credentials are used) if given. Every operation does this
    /// itself when it starts; call it after cancelling an operation, to clean up at once.
    /// Returns what was removed.
    ///
    /// # Errors
    ///
    /// [`Error::LockHeld`] while another operation runs; [`Error::Database`] when `server`
    /// cannot be reached.
    pub async fn clean_leftovers(&self, server: Option<&Source>) -> Result<Vec<Leftover>> {
        #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
        let (_lock, mut removed) = self.lock_and_recover("cleanup").await?;
        #[cfg(not(feature = "postgres"))]
        if let Some(Source::Postgres { .. }) = server {
            return Err(Error::postgres_not_compiled());
        }
        #[cfg(feature = "postgres")]
        if let Some(Source::Postgres { url }) = server {
            use crate::postgres::{PgUrl, admin::Admin};
            let server = PgUrl::parse(url)?;
            let mut admin = Admin::connect(&server, &self.config.pg_tools).await?;
            removed.extend(self.recover_databases(&mut admin, &server).await);
            admin.close().await;
        }
        Ok(removed)
    }

    /// Records how a run ended (the caller holds the lock). Failing to record is logged, not
    /// returned: it must not turn a successful backup into a failed one.
    pub(crate) async fn record(
        &self,
        operation: Operation,
        started_at: DateTime<Utc>,
        backup: Option<BackupId>,
        error: Option<String>,
    ) {
        RunLog::record(
            &self.store,
            RunRecord {
                operation,
                started_at,
                finished_at: Utc::now(),
                ok: error.is_none(),
                backup,
                error,
            },
        )
        .await;
    }

    /// The local directory of a local repository, for the disk check.
    pub(crate) fn local_dir(&self) -> Option<&Path> {
        match &self.store {
            Store::Local(store) => Some(store.dir()),
            #[cfg(feature = "s3")]
            Store::S3(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use crate::{
        BackupId, BackupRepository, Reason, RestoreOptions, RetentionPolicy, Source, VerifyOptions,
        monitor::{HealthPolicy, assess},
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
        assert_send(repo.list());
        assert_send(repo.manifest(&id));
        assert_send(assess(&repo, &HealthPolicy::default(), Utc::now()));
        assert_send(crate::holds_data(&source, &[]));
    }
}
