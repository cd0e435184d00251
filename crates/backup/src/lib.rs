//! Verified, compressed, atomic backups of SQLite files and PostgreSQL databases, in a local
//! directory or an S3-compatible object store.
//!
//! This crate knows nothing of the application whose data it saves: it works on any SQLite
//! file or PostgreSQL database, counts whatever tables it finds, and reads the schema's
//! migration version from a configurable table (`seaql_migrations` by default).
//!
//! # Repositories
//!
//! A [`BackupRepository`] lives at a [`RepositoryLocation`]: a local directory, or a bucket
//! and prefix of an S3-compatible object store (`s3://bucket/prefix?endpoint=…&region=…`,
//! feature `s3`; credentials in [`S3Settings`]). Every operation works the same on both,
//! because they all go through one set of object operations with the same guarantees:
//!
//! - **Objects are written once.** Nothing is ever overwritten in place: writing an existing
//!   key with other bytes fails (local: `link(2)` of a complete, fsync'd temporary file; S3:
//!   `If-None-Match: *`). Verification results and run outcomes are new objects, not edits.
//! - **A listing never shows a half-written backup.** An object appears whole or not at all
//!   (a temporary file is not an object; an S3 upload is invisible until complete), and a
//!   backup is only a backup once its manifest, written last, is there.
//! - **Checksums are verified on every read.** Small documents (manifests, the identity,
//!   verification and run records) are *sealed*: their first field, `sealed_sha256`, is the
//!   SHA-256 of the document's own bytes (with those 64 digits zeroed), so any change makes
//!   them unreadable. Every other object's SHA-256 is in the sealed document that refers to
//!   it, and is checked while the object is read.
//! - **A repository holds one database.** `repository.json` records it at the first backup:
//!   the canonical path of a SQLite file, or `postgres://host:port/database`. A backup of
//!   another database is refused ([`Error::ForeignDatabase`]).
//!
//! The objects of a repository (keys relative to the directory or the bucket prefix):
//!
//! ```text
//! repository.json                          the database it belongs to (sealed, written once)
//! <id>.json                                a backup's manifest (sealed, written once, last)
//! <id>.sqlite.zst | <id>.pgdump.zst        its data (written once; SHA-256 in the manifest)
//! verifications/<id>/<verified_at>.json    each verification's outcome (sealed; newest wins)
//! runs/<operation>/<finished_at>-….json    how each run ended (sealed; the last few kept)
//! generations/<gen>/generation.json        a line of continuous replication (sealed)
//! generations/<gen>/segments/<seq>.seg     its segments: sealed header + zstd WAL frames
//! wal/<name>.zst                           PostgreSQL's archived WAL: sealed header + zstd
//! wal/cluster.json                         the cluster whose WAL it is (sealed, written once)
//! base/<id>/base.tar.zst                   a PostgreSQL base backup (pg_basebackup's tar)
//! base/<id>/manifest.json                  its manifest (sealed, written last)
//! .lock                                    local directories only: the flock of writers
//! .scratch/<operation>-<pid>-….json        local: claims on the scratch state of running ops
//! ```
//!
//! (For a repository in an object store, `.lock` and `.scratch/` live in a local work
//! directory of this host: see [`RepositoryBuilder::scratch_dir`].)
//!
//! Ids are UTC seconds (`20261125T103000Z`, `-2`… within a second), so keys sort in time
//! order. Manifests of format 1, written before seals, are still read (their data is still
//! checked against its SHA-256).
//!
//! # What a backup is
//!
//! A backup is a zstd-compressed snapshot (`<id>.sqlite.zst` or `<id>.pgdump.zst`) **and** its
//! manifest `<id>.json` ([`BackupManifest`]): format version, creation time, source (never a
//! password), raw and compressed sizes, the SHA-256 of the data, the row count of every table
//! *in the snapshot*, the migration version and the reason.
//!
//! - **SQLite**: the pages of the database are read inside one read transaction and
//!   compressed as they are read, while writers keep committing (see
//!   [`SqliteSnapshotMethod`]); `VACUUM INTO` is the fallback.
//! - **PostgreSQL**: `pg_dump --format=custom` in a snapshot exported by the transaction that
//!   counts the rows; a non-zero exit or an empty or foreign output is an error, never a backup.
//!
//! **Verified** means: the data has its recorded size and SHA-256, decompresses, restores
//! (SQLite: into a scratch file that passes `PRAGMA integrity_check` and
//! `foreign_key_check`; PostgreSQL: into a scratch database via `pg_restore`), and the restored
//! copy has exactly the manifest's tables, row counts and migration version.
//!
//! # Main types
//!
//! - [`BackupRepository`]: a repository; [`create`](BackupRepository::create),
//!   [`list`](BackupRepository::list), [`verify`](BackupRepository::verify),
//!   [`restore`](BackupRepository::restore), [`prune`](BackupRepository::prune),
//!   [`pre_migration`](BackupRepository::pre_migration),
//!   [`run_scheduled`](BackupRepository::run_scheduled). One lock serialises every operation
//!   that writes, across processes.
//! - [`Source`]: the database, from its URL.
//! - [`RetentionPolicy`]: keep-last/daily/weekly/monthly with safety protections.
//! - [`monitor::assess`]: a [`monitor::HealthReport`] with Nagios status and Prometheus text;
//!   [`monitor::assess_with_server`] adds the archiver of the PostgreSQL server whose WAL the
//!   repository archives.
//! - [`schedule::run_every`]: the loop of the scheduler, stoppable gracefully.
//! - [`replicate::Replicator`]: continuous replication of a SQLite database (every committed
//!   transaction shipped within a second), and [`BackupRepository::restore_to_point`] to
//!   rebuild it as of the latest shipped state or any instant since its oldest snapshot.
//!
//! - PostgreSQL point-in-time recovery: [`BackupRepository::wal_push`] and
//!   [`BackupRepository::wal_fetch`] (`archive_command` / `restore_command`),
//!   [`BackupRepository::base_backup`] (`pg_basebackup` streamed into the repository),
//!   [`BackupRepository::restore_pitr`] (a data directory recovering to a [`RecoveryTarget`]),
//!   [`BackupRepository::verify_base_backup`], [`BackupRepository::pitr_health`] (also part
//!   of the monitor's report) and [`BackupRepository::prune_pitr`].
//!
//! Long operations report [`Progress`] through a callback; the crate never draws anything.
//!
//! # Features
//!
//! - `postgres` (default): PostgreSQL databases (`pg_dump` backups, their restores and
//!   verifications, point-in-time recovery), through sqlx's PostgreSQL driver. SQLite is
//!   always supported; a SQLite-only user takes `default-features = false` and compiles no
//!   PostgreSQL driver. Without it a PostgreSQL source is refused with
//!   [`Error::InvalidConfig`], and the point-in-time recovery API is absent.
//! - `s3`: repositories in S3-compatible object stores, through the `object_store` crate
//!   (which brings an HTTP client and TLS). Without it, repositories are local directories
//!   and an `s3://` location is refused with [`Error::InvalidConfig`]. Its tests run against
//!   a `moto_server` each test starts (`cargo test -p backup --features s3`).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use backup::{BackupRepository, Reason, RestoreOptions, Source, VerifyOptions};
//! use sea_orm::ConnectionTrait;
//!
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}/app.sqlite", dir.path().display());
//! let db = db_connect::connect(&url).await?;
//! db.execute_unprepared("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)").await?;
//! db.execute_unprepared("INSERT INTO notes (body) VALUES ('keep me')").await?;
//!
//! let repo = BackupRepository::open(dir.path().join("backups"))?;
//! let backup = repo.create(&Source::from_url(&url)?, Reason::Manual, &|_| {}).await?;
//! assert!(repo.verify(&backup.id, &VerifyOptions::default(), &|_| {}).await?.ok);
//!
//! // Restore into another file (restoring over a database in use is refused).
//! let copy = Source::sqlite(dir.path().join("restored.sqlite"));
//! let report = repo.restore(&backup.id, &copy, &RestoreOptions::default(), &|_| {}).await?;
//! assert_eq!(report.tables["notes"], 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Interrupted operations
//!
//! An operation killed (SIGKILL, power loss) or cancelled (its future dropped) never blocks the
//! next one and leaves nothing for good. What lives in the repository is written under
//! temporary names that a listing ignores. Every other piece of scratch state — a
//! verification's scratch copy or database, a restore's copy beside its target or its new
//! PostgreSQL database — is *claimed* before it is created: a claim file under `.scratch/`,
//! locked (`flock`) by its owner. The kernel releases the lock when the owner dies, so a claim
//! whose lock is free is a leftover: the next operation holding the repository's lock removes
//! leftover files, the next one connected to a leftover database's server drops it, and
//! [`BackupRepository::clean_leftovers`] does both at once. [`BackupRepository::leftovers`]
//! lists them without changing anything, and the monitor reports them.
//!
//! # Platform
//!
//! Unix only (the SQLite page stream and the in-use check rely on POSIX file locks; the in-use
//! check also reads `/proc` on Linux).
//! PostgreSQL backups need `pg_dump` and `pg_restore` of at least the server's major version.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod create;
mod data_file;
mod display;
mod durable;
mod error;
mod failure;
mod id;
mod identity;
mod inspect;
mod lock;
mod manifest;
pub mod monitor;
mod pg_tools;
#[cfg(feature = "postgres")]
mod postgres;
mod progress;
mod prune;
pub mod replicate;
mod repository;
mod restore;
mod retention;
mod run_log;
pub mod schedule;
mod scratch;
mod sealed;
mod source;
mod sqlite;
mod store;
mod stream;
mod verify;

pub use display::{error_chain, human_bytes};
pub use error::{Error, Result};
pub use failure::{RowCountMismatch, VerifyFailure};
pub use id::BackupId;
pub use identity::RepositoryIdentity;
pub use inspect::holds_data;
pub use manifest::{
    BackupManifest, Compression, DatabaseKind, FORMAT_VERSION, Reason, ReplicaPoint,
    SnapshotMethod, Verification, VerifyDepth,
};
pub use monitor::PitrHealthPolicy;
pub use pg_tools::PgTools;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::base_backup::{BaseBackupManifest, BaseBackupOptions, DatabaseCounts, Lsn};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::pitr_health::{ArchiverStats, PitrHealth};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::pitr_prune::PitrPruneReport;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::pitr_restore::{
    PitrRestoreOptions, PitrRestoreReport, RecoveredServer, RecoveryTarget,
};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::pitr_verify::{BaseVerifyOptions, BaseVerifyReport};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::wal::{
    ArchivedWal, ArchivedWalHeader, WalFetch, WalFileKind, WalPushOutcome, WalPushReport,
};
pub use progress::{Phase, Progress, ProgressFn};
pub use prune::{GenerationPrune, PruneReport};
pub use replicate::WalPosition;
pub use repository::{BackupRepository, IgnoredFile, Listing, RepositoryBuilder};
pub use restore::{RestoreMode, RestoreOptions, RestorePlan, RestoreReport};
pub use retention::{PruneDecision, RetentionPolicy};
pub use run_log::{Operation, RunLog, RunRecord};
pub use schedule::{PreMigrationReport, ScheduledRun};
pub use scratch::Leftover;
pub use source::Source;
pub use sqlite::snapshot::SqliteSnapshotMethod;
pub use store::{RepositoryLocation, S3Location, S3Settings};
pub use verify::{VerifyOptions, VerifyReport};
