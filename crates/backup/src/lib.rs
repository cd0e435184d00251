//! Verified, compressed, atomic backups of SQLite files and PostgreSQL databases.
//!
//! This crate knows nothing of the application whose data it saves: it works on any SQLite
//! file or PostgreSQL database, counts whatever tables it finds, and reads the schema's
//! migration version from a configurable table (`seaql_migrations` by default).
//!
//! # What a backup is
//!
//! A backup is a zstd-compressed snapshot (`<id>.sqlite.zst` or `<id>.pgdump.zst`) **and** its
//! manifest `<id>.json` ([`BackupManifest`]): format version, creation time, source (never a
//! password), raw and compressed sizes, the SHA-256 of the file, the row count of every table
//! *in the snapshot*, the migration version, the reason, and, once verified, the verification's
//! outcome. The data file is written under a temporary name, fsync'd and renamed; the manifest
//! is written last, the same way. Anything without a valid manifest is not a backup.
//!
//! - **SQLite**: the pages of the database are read inside one read transaction and
//!   compressed as they are read, while writers keep committing (see
//!   [`SqliteSnapshotMethod`]); `VACUUM INTO` is the fallback.
//! - **PostgreSQL**: `pg_dump --format=custom` in a snapshot exported by the transaction that
//!   counts the rows; a non-zero exit or an empty or foreign output is an error, never a backup.
//!
//! **Verified** means: the file has its recorded size and SHA-256, decompresses, restores
//! (SQLite: into a scratch file that passes `PRAGMA integrity_check` and
//! `foreign_key_check`; PostgreSQL: into a scratch database via `pg_restore`), and the restored
//! copy has exactly the manifest's tables, row counts and migration version.
//!
//! # Main types
//!
//! - [`BackupRepository`]: a backup directory; [`create`](BackupRepository::create),
//!   [`list`](BackupRepository::list), [`verify`](BackupRepository::verify),
//!   [`restore`](BackupRepository::restore), [`prune`](BackupRepository::prune),
//!   [`pre_migration`](BackupRepository::pre_migration),
//!   [`run_scheduled`](BackupRepository::run_scheduled). One lock file serialises every
//!   operation that writes, across processes.
//! - [`Source`]: the database, from its URL.
//! - [`RetentionPolicy`]: keep-last/daily/weekly/monthly with safety protections.
//! - [`monitor::assess`]: a [`monitor::HealthReport`] with Nagios status and Prometheus text.
//! - [`schedule::run_every`]: the loop of the scheduler, stoppable gracefully.
//!
//! Long operations report [`Progress`] through a callback; the crate never draws anything.
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
//! # Platform
//!
//! Unix only (the SQLite page stream and the in-use check rely on POSIX file locks).
//! PostgreSQL backups need `pg_dump` and `pg_restore` of at least the server's major version.

mod create;
mod data_file;
mod display;
mod durable;
mod error;
mod failure;
mod id;
mod inspect;
mod lock;
mod manifest;
pub mod monitor;
mod postgres;
mod progress;
mod prune;
mod repository;
mod restore;
mod retention;
mod run_log;
pub mod schedule;
mod sqlite;
mod stream;
mod verify;

pub use display::{error_chain, human_bytes};
pub use error::{Error, Result};
pub use failure::{RowCountMismatch, VerifyFailure};
pub use id::BackupId;
pub use inspect::holds_data;
pub use manifest::{
    BackupManifest, Compression, DatabaseKind, FORMAT_VERSION, Reason, SnapshotMethod,
    Verification, VerifyDepth,
};
pub use postgres::PgTools;
pub use progress::{Phase, Progress, ProgressFn};
pub use prune::PruneReport;
pub use repository::{BackupRepository, IgnoredFile, Listing, RepositoryBuilder};
pub use restore::{RestoreMode, RestoreOptions, RestorePlan, RestoreReport};
pub use retention::{PruneDecision, RetentionPolicy};
pub use run_log::{Operation, RUN_LOG_FILE, RunLog, RunRecord};
pub use schedule::{PreMigrationReport, ScheduledRun};
pub use source::Source;
pub use sqlite::snapshot::SqliteSnapshotMethod;
pub use verify::{VerifyOptions, VerifyReport};

mod source;
