//! The replicator's hold on the database: the read transaction that keeps the log from being
//! lost (the *pin*), a connection that can stop writers for a moment, and checkpoints.
//!
//! Why a pin works (SQLite's `wal.c`): a checkpoint copies frames into the database file only
//! up to the oldest reader's snapshot, and only after taking an exclusive lock on read mark 0,
//! which a reader of the file alone holds shared; and a writer restarts the log (overwriting
//! it from the start) only when every frame has been copied and no reader holds a mark above
//! 0. So while the pin is held, no frame the replicator has not read can be overwritten, and
//! at most one restart can happen — the one the replicator allowed by checkpointing
//! everything itself. That is how the replicator controls checkpointing: the application's
//! own automatic checkpoints cannot go past the pin, and its writers only wait while the
//! replicator copies the last frames of a log (see [`Database::stop_writers`]).

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
};

use sea_orm::sqlx::{self, Connection, sqlite::SqliteConnection};

use crate::{
    Error, Result,
    sqlite::{live_file, open_source, side_files},
};

/// Three connections to the database: two that take turns holding the pin (so the pin can
/// move forward without a moment unpinned), and one that stops writers.
pub(crate) struct Database {
    path: PathBuf,
    wal_path: PathBuf,
    pins: [Option<SqliteConnection>; 2],
    active: usize,
    pinned: bool,
    writer: SqliteConnection,
    writers_stopped: bool,
}

impl Database {
    /// Opens the database (which must exist and be in WAL mode) without changing anything.
    pub(crate) async fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::SourceMissing {
                path: path.to_path_buf(),
            });
        }
        let mut first = open_source(path).await?;
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut first)
            .await
            .map_err(|e| Error::db(format!("reading the journal mode of {}", path.display()), e))?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(Error::InvalidConfig(format!(
                "{} is in journal mode `{journal}`: continuous replication follows the \
                 write-ahead log, so the database must be in WAL mode (PRAGMA journal_mode=WAL)",
                path.display()
            )));
        }
        let second = open_source(path).await?;
        let writer = open_source(path).await?;
        let [wal_path, ..] = side_files(path);
        Ok(Self {
            path: path.to_path_buf(),
            wal_path,
            pins: [Some(first), Some(second)],
            active: 0,
            pinned: false,
            writer,
            writers_stopped: false,
        })
    }

    fn context(&self, what: &str) -> String {
        format!("{what} on {}", self.path.display())
    }

    fn pin_connection(&mut self, which: usize) -> Result<&mut SqliteConnection> {
        self.pins[which]
            .as_mut()
            .ok_or_else(|| Error::Internal("the pin is lent to a snapshot".to_owned()))
    }

    async fn begin_read(&mut self, which: usize) -> Result<()> {
        let context = self.context("starting the replicator's read transaction");
        let conn = self.pin_connection(which)?;
        sqlx::query("BEGIN")
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::db(context.clone(), e))?;
        // The first read takes the snapshot (and its read mark).
        sqlx::query("SELECT count(*) FROM sqlite_schema")
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::db(context, e))?;
        Ok(())
    }

    async fn end_read(&mut self, which: usize) -> Result<()> {
        let context = self.context("ending the replicator's read transaction");
        let conn = self.pin_connection(which)?;
        sqlx::query("ROLLBACK")
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(|e| Error::db(context, e))
    }

    /// Holds the pin (at the log's current end). Does nothing when held.
    pub(crate) async fn pin(&mut self) -> Result<()> {
        if !self.pinned {
            self.begin_read(self.active).await?;
            self.pinned = true;
        }
        Ok(())
    }

    /// Lets go of the pin.
    pub(crate) async fn unpin(&mut self) -> Result<()> {
        if self.pinned {
            self.end_read(self.active).await?;
            self.pinned = false;
        }
        Ok(())
    }

    /// Moves the pin to the log's current end without a moment unpinned: the other
    /// connection pins first, then the old pin is let go.
    pub(crate) async fn advance_pin(&mut self) -> Result<()> {
        let other = 1 - self.active;
        self.begin_read(other).await?;
        if self.pinned {
            self.end_read(self.active).await?;
        }
        self.active = other;
        self.pinned = true;
        Ok(())
    }

    /// A passive checkpoint (it never waits and never stops anyone), on the connection not
    /// holding the pin: copies frames up to the oldest reader's snapshot into the database
    /// file. Returns whether every frame of the log is now copied.
    pub(crate) async fn checkpoint(&mut self) -> Result<bool> {
        let context = self.context("checkpointing");
        let idle = if self.pinned {
            1 - self.active
        } else {
            self.active
        };
        let conn = self.pin_connection(idle)?;
        let (_busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(conn)
            .await
            .map_err(|e| Error::db(context, e))?;
        Ok(log >= 0 && log == done)
    }

    /// Stops the application's writers (`BEGIN IMMEDIATE`: they wait on their busy timeout),
    /// after the writer in progress, if any, commits.
    pub(crate) async fn stop_writers(&mut self) -> Result<()> {
        if !self.writers_stopped {
            let context = self.context("stopping writers for a checkpoint");
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut self.writer)
                .await
                .map_err(|e| Error::db(context, e))?;
            self.writers_stopped = true;
        }
        Ok(())
    }

    /// Lets writers go on.
    pub(crate) async fn resume_writers(&mut self) {
        if self.writers_stopped {
            match sqlx::query("ROLLBACK").execute(&mut self.writer).await {
                Ok(_) => self.writers_stopped = false,
                Err(e) => {
                    // Close the connection: that ends its transaction for sure.
                    tracing::error!(database = %self.path.display(), error = %e, "cannot end the replicator's write lock; reconnecting");
                    if let Ok(fresh) = open_source(&self.path).await {
                        let old = std::mem::replace(&mut self.writer, fresh);
                        let _ = old.close().await;
                        self.writers_stopped = false;
                    }
                }
            }
        }
    }

    /// Lends the connection holding the pin (to read a snapshot in its transaction).
    pub(crate) fn lend_pin(&mut self) -> Result<SqliteConnection> {
        if !self.pinned {
            return Err(Error::Internal("the pin is not held".to_owned()));
        }
        self.pins[self.active]
            .take()
            .ok_or_else(|| Error::Internal("the pin is lent already".to_owned()))
    }

    /// Takes the pin's connection back, its transaction still open.
    pub(crate) fn return_pin(&mut self, conn: SqliteConnection) {
        self.pins[self.active] = Some(conn);
    }

    /// Whether the pin is lent to a snapshot.
    pub(crate) fn pin_lent(&self) -> bool {
        self.pins[self.active].is_none()
    }

    /// The log file, when it exists (a descriptor shared with the rest of the process: see
    /// [`live_file`]).
    pub(crate) fn wal(&self) -> Result<Option<Arc<File>>> {
        match live_file::shared(&self.wal_path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("open", &self.wal_path, e)),
        }
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Ends everything: writers resumed, the pin let go, connections closed.
    pub(crate) async fn close(mut self) {
        self.resume_writers().await;
        let _ = self.unpin().await;
        for conn in self.pins.into_iter().flatten() {
            let _ = conn.close().await;
        }
        let _ = self.writer.close().await;
    }
}
