//! Continuous replication of a SQLite database: every committed transaction shipped to the
//! repository within [`ReplicatorOptions::interval`], as checksummed, ordered segments on top
//! of periodic snapshots.
//!
//! The [`Replicator`] follows the database's write-ahead log. It holds a read transaction that
//! keeps the log from being checkpointed past what it has read, reads each newly committed
//! transaction's frames, and ships them in [segments](SegmentHeader) that continue each other
//! exactly (their positions and SQLite's own frame checksums chain). It checkpoints the log
//! itself once its frames are shipped, so nothing is ever lost to a checkpoint. When the log
//! no longer continues what was shipped (it was checkpointed and restarted while no replicator
//! held it), it starts a new [`Generation`] with a fresh snapshot: a gap is never skipped.
//!
//! # What the application must do
//!
//! - Use WAL mode (`db_connect::connect` does).
//! - Give writers a busy timeout of a few seconds (`db_connect` sets 5 s): while the
//!   replicator reads the last frames of a log into memory and copies what is left of it
//!   before letting it restart, writers wait (local work only: the bulk of the log is copied
//!   before, and the last frames are uploaded after, while writers go on).
//! - Preferably, disable its automatic checkpoints (`PRAGMA wal_autocheckpoint = 0`): they
//!   cannot pass the replicator's read transaction anyway, and when the replicator is stopped
//!   they would checkpoint and restart the log, so that the next start begins a new generation
//!   (a full snapshot) instead of resuming.
//! - Never run `wal_checkpoint(TRUNCATE)` or `RESTART` itself, nor switch the journal mode: they
//!   would wait for the replicator and time out.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use backup::{BackupRepository, replicate::{Replicator, ReplicatorOptions}};
//! use sea_orm::ConnectionTrait;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("app.sqlite");
//! let db = db_connect::connect(&format!("sqlite://{}", path.display())).await?;
//! db.execute_unprepared("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)").await?;
//!
//! let repo = BackupRepository::open(dir.path().join("backups"))?;
//! let replicator = Replicator::new(repo.clone(), &path, ReplicatorOptions::default());
//! let mut status = replicator.status();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(replicator.run(async { let _ = stopped.await; }));
//!
//! // Once the generation's base snapshot is taken, changes go out as segments.
//! while status.borrow().snapshots == 0 {
//!     status.changed().await?;
//! }
//! db.execute_unprepared("INSERT INTO notes (body) VALUES ('shipped within a second')").await?;
//! while status.borrow().segments == 0 {
//!     status.changed().await?;
//! }
//! stop.send(()).ok();
//! let last = running.await??;
//! assert!(last.last_error.is_none());
//! # Ok(())
//! # }
//! ```

mod database;
mod engine;
mod generation;
mod replay;
mod segment;
pub(crate) mod wal;

use std::{future::Future, path::PathBuf, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

pub(crate) use generation::generation_key;
pub use generation::{Generation, ReplicaInstance};
pub use replay::{Replayed, RestorableWindow, RestorePoint};
pub use segment::{SegmentHeader, SegmentTransaction};
pub use wal::WalPosition;

use crate::{BackupRepository, Result};

/// How the replicator works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatorOptions {
    /// The promise: a committed transaction is in the repository at most this long after
    /// it was committed, while the store answers. Segments are shipped when the oldest
    /// unshipped transaction is half this old. Default: 1 s.
    pub interval: Duration,
    /// How often the log is read. A transaction is stamped with the time the read that found
    /// it ended: never before its commit, and at most this long (plus the read) after it. The
    /// precision of point-in-time restores. Default: 50 ms.
    pub poll: Duration,
    /// When nothing was committed, an empty segment is shipped this often, so that monitors
    /// can tell an idle database from a stopped replicator. Default: 15 s.
    pub heartbeat: Duration,
    /// How often a new snapshot is taken, so that a restore replays at most this much of the
    /// log. Default: 24 h.
    pub snapshot_every: Duration,
    /// The log size past which the replicator checkpoints it (once its frames are shipped).
    /// Default: 4 MiB (SQLite's own default is 1000 pages).
    pub checkpoint_bytes: u64,
    /// The most log bytes in one segment (a transaction larger than this goes out alone, in
    /// a segment of its own size). Default: 16 MiB.
    pub segment_bytes: u64,
    /// The most unshipped log bytes kept in memory while the store does not answer; past it,
    /// frames stay in the log (still pinned) until the store is back. Default: 256 MiB.
    pub pending_bytes: u64,
    /// The longest wait between attempts while the store fails (the wait doubles from `poll`
    /// up to this). Default: 5 s.
    pub retry_max: Duration,
    /// How long a shutdown may spend shipping what is still unshipped. Default: 10 s.
    pub shutdown_grace: Duration,
}

impl Default for ReplicatorOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_secs(15),
            snapshot_every: Duration::from_secs(24 * 3600),
            checkpoint_bytes: 4 << 20,
            segment_bytes: 16 << 20,
            pending_bytes: 256 << 20,
            retry_max: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What the replicator is doing, as it reports it through [`Replicator::status`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplicationStatus {
    /// The generation being written.
    pub generation: Option<String>,
    /// The last segment shipped.
    pub last_seq: u64,
    /// When the log had been read up to the last shipped segment's end: everything committed
    /// before it (less one poll) is in the repository.
    pub synced_at: Option<DateTime<Utc>>,
    /// Transactions read but not shipped yet.
    pub pending_transactions: usize,
    /// When the oldest of them was seen.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// The latest failure, until the next success.
    pub last_error: Option<String>,
    /// Segments shipped since the start.
    pub segments: u64,
    /// Bytes uploaded since the start (segments and snapshots).
    pub bytes_uploaded: u64,
    /// Snapshots taken since the start.
    pub snapshots: u64,
    /// Generations started since the start.
    pub generations_started: u64,
    /// Checkpoints that copied every frame of the log, since the start.
    pub checkpoints: u64,
    /// Restarts of the log the line followed (each after such a checkpoint).
    pub log_restarts: u64,
}

/// Follows one SQLite database and ships every committed change to a repository.
#[derive(Debug)]
pub struct Replicator {
    repo: BackupRepository,
    database: PathBuf,
    options: ReplicatorOptions,
    status: watch::Sender<ReplicationStatus>,
}

impl Replicator {
    /// A replicator of the SQLite file `database` into `repo`.
    pub fn new(
        repo: BackupRepository,
        database: impl Into<PathBuf>,
        options: ReplicatorOptions,
    ) -> Self {
        Self {
            repo,
            database: database.into(),
            options,
            status: watch::Sender::new(ReplicationStatus::default()),
        }
    }

    /// Its status, updated as it works.
    pub fn status(&self) -> watch::Receiver<ReplicationStatus> {
        self.status.subscribe()
    }

    /// Replicates until `shutdown` completes, then ships what is unshipped (for at most
    /// [`ReplicatorOptions::shutdown_grace`]) and lets the database go.
    ///
    /// A store that fails is retried, without end and without losing anything (the log is
    /// held meanwhile); the failure shows in the status and in the repository's growing lag.
    ///
    /// # Errors
    ///
    /// When replication cannot go on: the database is missing or not in WAL mode
    /// ([`crate::Error::InvalidConfig`]), belongs to another repository
    /// ([`crate::Error::ForeignDatabase`]), or another replicator writes the same generation.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<ReplicationStatus> {
        engine::run(
            self.repo,
            self.database,
            self.options,
            self.status,
            shutdown,
        )
        .await
    }
}
