//! The replication loop: read the log, ship segments, checkpoint, snapshot, start generations.

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::Instant,
};

use chrono::{DateTime, Utc};
use sea_orm::sqlx::sqlite::SqliteConnection;
use tokio::{sync::watch, task::JoinHandle};

use super::{
    ReplicationStatus, ReplicatorOptions,
    database::Database,
    generation::{self, Generation, ReplicaInstance, segment_key},
    segment::{self, SegmentHeader, SegmentTransaction},
    wal::{self, HEADER_BYTES, WalHeader, WalPosition},
};
use crate::{
    BackupManifest, BackupRepository, Error, Result, Source, display::error_chain,
    manifest::ReplicaPoint, run_log::Operation, store::Put,
};

/// The position before any log: when a line starts on an empty log, the first log that
/// appears continues it (the pin keeps a second one from appearing unseen).
const NO_LOG: WalPosition = WalPosition {
    salt1: 0,
    salt2: 0,
    offset: 0,
    checksum1: 0,
    checksum2: 0,
};

/// The first read of the log in a poll (see [`Engine::read_log`]).
const FIRST_READ_BYTES: u64 = 256 << 10;

/// The zstd level of segments: fast, since they are shipped within a second.
const SEGMENT_LEVEL: i32 = 3;

/// A transaction read but not shipped.
struct Pending {
    frames: Vec<u8>,
    frame_count: u32,
    db_pages: u32,
    observed_at: DateTime<Utc>,
    end: WalPosition,
}

/// The generation being written.
struct Line {
    generation: Generation,
    next_seq: u64,
    /// Where the next segment starts (the end of the last shipped one).
    shipped: WalPosition,
    /// Where reading goes on (the end of the last transaction read).
    read: WalPosition,
    /// Transactions read, not shipped, all in the log `shipped` is in.
    pending: Vec<Pending>,
    pending_bytes: u64,
    /// The replicator checkpointed every frame of the log it reads: the next writer may
    /// restart the log, and that restart (salt-1 plus one) continues the line.
    restart_allowed: bool,
    /// The log's page size and checksum byte order (from its header).
    page_size: u32,
    big_endian: bool,
    last_snapshot: DateTime<Utc>,
    last_shipped: Instant,
    last_read_at: DateTime<Utc>,
}

/// A snapshot being taken on the pin's connection.
type SnapshotTask = JoinHandle<(SqliteConnection, Result<BackupManifest>)>;

struct Engine {
    repo: BackupRepository,
    options: ReplicatorOptions,
    db: Database,
    source: Source,
    instance: ReplicaInstance,
    status: watch::Sender<ReplicationStatus>,
    line: Option<Line>,
    /// Why the next generation starts, when the current line ended.
    next_why: String,
    snapshot: Option<(SnapshotTask, ReplicaPoint)>,
    /// A snapshot due at this point once the lock can be had.
    snapshot_wanted: Option<ReplicaPoint>,
    failures: u32,
    retry_at: Instant,
    snapshot_retry_at: Instant,
}

pub(super) async fn run(
    repo: BackupRepository,
    path: PathBuf,
    options: ReplicatorOptions,
    status: watch::Sender<ReplicationStatus>,
    shutdown: impl Future<Output = ()>,
) -> Result<ReplicationStatus> {
    let db = Database::open(&path).await?;
    let source = Source::sqlite(&path);
    let instance = ReplicaInstance::of(&path)?;
    match repo.identity().await? {
        Some(identity) => repo.admit(&identity, &source)?,
        None => repo.claim(&source).await?,
    }
    let mut engine = Engine {
        repo,
        options,
        db,
        source,
        instance,
        status,
        line: None,
        next_why: String::new(),
        snapshot: None,
        snapshot_wanted: None,
        failures: 0,
        retry_at: Instant::now(),
        snapshot_retry_at: Instant::now(),
    };
    let result = engine.run(shutdown).await;
    engine.finish().await;
    let Engine { db, status, .. } = engine;
    db.close().await;
    let last = status.borrow().clone();
    result.map(|()| last)
}

impl Engine {
    async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        self.db.pin().await?;
        self.resume_or_begin().await?;
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.options.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            self.step().await?;
        }
        self.drain().await;
        Ok(())
    }

    /// One round: collect a finished snapshot, read the log, ship what is due, checkpoint
    /// or snapshot when it is time. Failures of the store are retried; only failures that
    /// make replication impossible are returned.
    async fn step(&mut self) -> Result<()> {
        self.collect_snapshot().await?;
        if self.line.is_none() {
            if Instant::now() >= self.retry_at
                && let Err(e) = self.begin_line().await
            {
                self.failed("starting a generation", &e)?;
            }
            return Ok(());
        }
        if let Err(e) = self.read_log() {
            self.failed("reading the log", &e)?;
        }
        if Instant::now() >= self.retry_at {
            let shipped = self.ship_due().await;
            match shipped {
                Ok(()) => self.maybe_checkpoint().await?,
                Err(e) => self.failed("shipping a segment", &e)?,
            }
        }
        Ok(())
    }

    /// Records a failure and backs off; errors that no retry can fix end replication.
    fn failed(&mut self, what: &str, e: &Error) -> Result<()> {
        if matches!(
            e,
            Error::ForeignDatabase { .. }
                | Error::InvalidConfig(_)
                | Error::SourceMissing { .. }
                | Error::ObjectExists { .. }
        ) {
            return Err(Error::Internal(format!("{what}: {}", error_chain(e))));
        }
        self.failures = self.failures.saturating_add(1);
        let wait = self
            .options
            .poll
            .saturating_mul(1 << self.failures.min(16))
            .min(self.options.retry_max);
        self.retry_at = Instant::now() + wait;
        let text = format!("{what}: {}", error_chain(e));
        tracing::warn!(error = %text, retry_in_ms = wait.as_millis() as u64, "replication is behind; retrying");
        self.status.send_modify(|s| s.last_error = Some(text));
        Ok(())
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "replication caught up");
        }
        self.failures = 0;
        self.status.send_modify(|s| s.last_error = None);
    }

    /// Continues the newest generation if the log still holds its end; otherwise starts one.
    async fn resume_or_begin(&mut self) -> Result<()> {
        let ids = self.repo.generation_ids().await?;
        let Some(newest) = ids.last() else {
            self.next_why = "the first replication into this repository".to_owned();
            return self.begin_line().await;
        };
        let Some(record) = self.repo.generation(newest).await? else {
            self.next_why = format!("generation {newest} has no record");
            return self.begin_line().await;
        };
        let segments = self.repo.segment_objects(newest).await?;
        let (last_seq, end) = match segments.iter().next_back() {
            Some((seq, object)) => (*seq, self.repo.read_segment_header(&object.key).await?.end),
            None => (0, record.start),
        };
        let snapshots = self.snapshots_of(newest).await?;
        let continues = match self.db.wal()? {
            Some(file) if end != NO_LOG => wal::still_at(&file, &end)
                .map_err(|e| Error::io("read the log of", self.db.path(), e))?,
            _ => false,
        };
        if continues && !snapshots.is_empty() {
            let last_snapshot = snapshots
                .iter()
                .map(|m| m.created_at)
                .max()
                .unwrap_or(record.started_at);
            tracing::info!(generation = %record.id, seq = last_seq, "replication resumes its generation");
            let (page_size, big_endian) = (record.page_size, record.big_endian_checksums);
            self.status.send_modify(|s| {
                s.generation = Some(record.id.clone());
                s.last_seq = last_seq;
            });
            self.line = Some(Line {
                generation: record,
                next_seq: last_seq + 1,
                shipped: end,
                read: end,
                pending: Vec::new(),
                pending_bytes: 0,
                restart_allowed: false,
                page_size,
                big_endian,
                last_snapshot,
                last_shipped: Instant::now(),
                last_read_at: Utc::now(),
            });
            return Ok(());
        }
        self.next_why = if snapshots.is_empty() {
            format!("generation {newest} has no snapshot to restore from")
        } else {
            format!(
                "the log no longer continues generation {newest} after segment {last_seq} (it \
                 was checkpointed and restarted while nothing replicated it, or this is \
                 another copy of the database)"
            )
        };
        self.begin_line().await
    }

    async fn snapshots_of(&self, generation: &str) -> Result<Vec<BackupManifest>> {
        Ok(self
            .repo
            .list()
            .await?
            .backups
            .into_iter()
            .filter(|m| {
                m.replication
                    .as_ref()
                    .is_some_and(|r| r.generation == generation)
            })
            .collect())
    }

    /// Starts a generation: checkpoints every frame (writers stopped for that moment), pins
    /// the database file alone, records the generation and snapshots the file.
    async fn begin_line(&mut self) -> Result<()> {
        if self.db.pin_lent() {
            return Ok(());
        }
        // The bulk of the log is copied while writers go on; they wait only for the rest.
        self.db.advance_pin().await?;
        self.db.checkpoint().await?;
        self.db.stop_writers().await?;
        let checkpointed = async {
            self.db.unpin().await?;
            let full = self.db.checkpoint().await?;
            let end = self.log_end()?;
            let as_of = Utc::now();
            self.db.pin().await?;
            Ok::<_, Error>((full, end, as_of))
        }
        .await;
        self.db.resume_writers().await;
        let (full, (end, header), as_of) = checkpointed?;
        if !full {
            return Err(Error::Internal(
                "a reader kept the checkpoint from copying every frame; retrying".to_owned(),
            ));
        }
        let previous = self.repo.generation_ids().await?.last().cloned();
        let started_at = Utc::now();
        let generation = Generation {
            format_version: 0,
            id: generation::new_id(started_at),
            started_at,
            why: std::mem::take(&mut self.next_why),
            database: self.source.identity_name()?,
            instance: self.instance.clone(),
            page_size: header.map_or(0, |h| h.page_size),
            big_endian_checksums: header.is_some_and(|h| h.big_endian_checksums),
            start: end,
            previous,
        };
        self.repo.start_generation(&generation).await?;
        tracing::info!(generation = %generation.id, why = %generation.why, "replication started a generation");
        let (page_size, big_endian) = (generation.page_size, generation.big_endian_checksums);
        let point = ReplicaPoint {
            generation: generation.id.clone(),
            seq: 0,
            position: end,
            as_of,
        };
        self.status.send_modify(|s| {
            s.generation = Some(generation.id.clone());
            s.last_seq = 0;
            s.generations_started += 1;
        });
        self.line = Some(Line {
            generation,
            next_seq: 1,
            shipped: end,
            read: end,
            pending: Vec::new(),
            pending_bytes: 0,
            restart_allowed: true,
            page_size,
            big_endian,
            last_snapshot: started_at,
            last_shipped: Instant::now(),
            last_read_at: as_of,
        });
        self.snapshot_wanted = Some(point);
        self.start_snapshot();
        self.succeeded();
        Ok(())
    }

    /// The end of the log's committed frames (writers stopped), and its header.
    fn log_end(&self) -> Result<(WalPosition, Option<WalHeader>)> {
        let Some(file) = self.db.wal()? else {
            return Ok((NO_LOG, None));
        };
        let read = |offset: u64, len: usize| {
            wal::read_at(&file, offset, len).map_err(|e| Error::io("read", self.db.path(), e))
        };
        let Some(header) = WalHeader::parse(&read(0, HEADER_BYTES as usize)?) else {
            return Ok((NO_LOG, None));
        };
        let mut end = header.start();
        loop {
            let chunk = read(end.offset, 8 << 20)?;
            let found = wal::transactions(&header, &end, &chunk);
            match found.last() {
                Some(last) => end = last.end,
                None => return Ok((end, Some(header))),
            }
        }
    }

    /// Reads the transactions committed since the last read.
    fn read_log(&mut self) -> Result<()> {
        let Some(file) = self.db.wal()? else {
            return Ok(());
        };
        let path = self.db.path().to_path_buf();
        let read = |offset: u64, len: usize| {
            wal::read_at(&file, offset, len).map_err(|e| Error::io("read the log of", &path, e))
        };
        let Some(header) = WalHeader::parse(&read(0, HEADER_BYTES as usize)?) else {
            return Ok(());
        };
        // Everything committed before `now` is in the log's first `log_bytes` and read below;
        // what is appended meanwhile waits for the next poll, so that a busy writer cannot
        // keep this loop (and shipping) going.
        let now = Utc::now();
        let log_bytes = file
            .metadata()
            .map_err(|e| Error::io("read the log of", &path, e))?
            .len();
        let budget = self.options.pending_bytes;
        let segment_bytes = self.options.segment_bytes;
        let Some(line) = self.line.as_mut() else {
            return Ok(());
        };
        line.page_size = header.page_size;
        line.big_endian = header.big_endian_checksums;
        if line.read == NO_LOG {
            line.read = header.start();
            line.shipped = header.start();
        } else if !header.holds(&line.read) {
            if header.follows(&line.read) && line.restart_allowed && line.pending.is_empty() {
                // The restart the replicator's own checkpoint allowed: the line goes on at
                // the start of the new log.
                line.read = header.start();
                line.shipped = header.start();
                line.restart_allowed = false;
                self.status.send_modify(|s| s.log_restarts += 1);
            } else if header.follows(&line.read) && line.restart_allowed {
                // Ship what was read from the old log first.
                return Ok(());
            } else {
                let ended = line.generation.id.clone();
                let after = line.next_seq.saturating_sub(1);
                if !line.pending.is_empty() {
                    // What was read of the old log is shipped before the line ends.
                    return Ok(());
                }
                self.next_why = format!(
                    "the log was restarted by someone else after segment {after} of generation \
                     {ended} (salt {} after {})",
                    header.salt1, line.read.salt1
                );
                tracing::warn!(generation = %ended, why = %self.next_why, "the log does not continue the generation; starting a new one");
                self.line = None;
                return Ok(());
            }
        }
        loop {
            if line.pending_bytes >= budget || line.read.offset >= log_bytes {
                break;
            }
            // After a restart the file keeps the old log's frames past the new log's end:
            // a frame without this log's salts means nothing new, found without reading the
            // rest of the file (which every poll would otherwise do until the log outgrew it).
            let next = read(line.read.offset, wal::FRAME_HEADER_BYTES as usize)?;
            if !header.salts_match(&next) {
                break;
            }
            let room = budget - line.pending_bytes;
            // A modest first read (what a poll finds is usually small, and what follows it in
            // the file may be stale), larger ones only while a transaction has no end in it.
            let mut want = usize::try_from(segment_bytes.min(room).min(FIRST_READ_BYTES))
                .unwrap_or(usize::MAX)
                .max(header.frame_bytes() as usize);
            let (found, seen) = loop {
                let chunk = read(line.read.offset, want)?;
                // Stamped once read, never before: a transaction's stamp is never earlier
                // than its commit, so a restore to an instant holds nothing committed after.
                let seen = Utc::now();
                let found = wal::transactions(&header, &line.read, &chunk);
                // A transaction larger than the chunk (than a segment) has no commit frame in
                // it: read on until its end, or it would never be read nor anything after it.
                // Past the budget only when nothing else is held, so that it still goes out.
                let more = chunk.len() == want && (line.pending.is_empty() || (want as u64) < room);
                if found.is_empty() && more {
                    want = want.saturating_mul(2);
                    continue;
                }
                break (found, seen);
            };
            if found.is_empty() {
                break;
            }
            for txn in found {
                line.pending_bytes += txn.frames.len() as u64;
                let frame_count = u32::try_from(txn.frames.len() as u64 / header.frame_bytes())
                    .unwrap_or(u32::MAX);
                line.read = txn.end;
                line.restart_allowed = false;
                line.pending.push(Pending {
                    frames: txn.frames,
                    frame_count,
                    db_pages: txn.db_pages,
                    observed_at: seen,
                    end: txn.end,
                });
            }
        }
        line.last_read_at = now;
        let (count, oldest) = (
            line.pending.len(),
            line.pending.first().map(|p| p.observed_at),
        );
        self.status.send_modify(|s| {
            s.pending_transactions = count;
            s.oldest_pending = oldest;
        });
        Ok(())
    }

    /// Ships pending transactions when the oldest is half an interval old (or a segment's
    /// worth is waiting), and a heartbeat when nothing was committed for a while.
    async fn ship_due(&mut self) -> Result<()> {
        let Some(line) = self.line.as_ref() else {
            return Ok(());
        };
        let due = match line.pending.first() {
            Some(oldest) => {
                let age = (Utc::now() - oldest.observed_at)
                    .to_std()
                    .unwrap_or_default();
                age >= self.options.interval / 2 || line.pending_bytes >= self.options.segment_bytes
            }
            None => line.last_shipped.elapsed() >= self.options.heartbeat,
        };
        if due {
            self.ship(true).await?;
        }
        Ok(())
    }

    /// Ships every pending transaction (in as many segments as their size needs); with
    /// `heartbeat`, an empty segment when none is pending.
    async fn ship(&mut self, heartbeat: bool) -> Result<()> {
        loop {
            let Some(line) = self.line.as_mut() else {
                return Ok(());
            };
            if line.pending.is_empty() && !heartbeat {
                return Ok(());
            }
            let mut take = 0;
            let mut bytes = 0u64;
            for p in &line.pending {
                if take > 0 && bytes + p.frames.len() as u64 > self.options.segment_bytes {
                    break;
                }
                bytes += p.frames.len() as u64;
                take += 1;
            }
            let batch = &line.pending[..take];
            let end = batch.last().map_or(line.shipped, |p| p.end);
            let synced_at = if take == line.pending.len() {
                line.last_read_at
            } else {
                line.pending[take].observed_at
            };
            let header = SegmentHeader {
                format_version: 0,
                generation: line.generation.id.clone(),
                seq: line.next_seq,
                page_size: line.page_size,
                big_endian_checksums: line.big_endian,
                start: line.shipped,
                end,
                transactions: batch
                    .iter()
                    .map(|p| SegmentTransaction {
                        frames: p.frame_count,
                        db_pages: p.db_pages,
                        observed_at: p.observed_at,
                    })
                    .collect(),
                synced_at,
                raw_bytes: 0,
                compressed_bytes: 0,
                sha256: String::new(),
            };
            let frames: Vec<u8> = batch
                .iter()
                .flat_map(|p| p.frames.iter().copied())
                .collect();
            let object =
                segment::encode(header.clone(), &frames, SEGMENT_LEVEL).map_err(Error::Internal)?;
            let size = object.len() as u64;
            let key = segment_key(&line.generation.id, line.next_seq);
            let shipped = match self.repo.store.put_once(&key, object).await {
                Ok(Put::Created | Put::AlreadyThere) => take,
                Err(Error::ObjectExists { .. }) => self.adopt(&key, &header).await?,
                Err(e) => return Err(e),
            };
            let Some(line) = self.line.as_mut() else {
                return Ok(());
            };
            let shipped_end = if shipped == 0 {
                line.shipped
            } else {
                line.pending[shipped - 1].end
            };
            let freed: u64 = line
                .pending
                .drain(..shipped)
                .map(|p| p.frames.len() as u64)
                .sum();
            line.pending_bytes -= freed;
            line.shipped = shipped_end;
            line.next_seq += 1;
            line.last_shipped = Instant::now();
            let (seq, count, oldest) = (
                line.next_seq - 1,
                line.pending.len(),
                line.pending.first().map(|p| p.observed_at),
            );
            self.status.send_modify(|s| {
                s.last_seq = seq;
                s.synced_at = Some(synced_at);
                s.pending_transactions = count;
                s.oldest_pending = oldest;
                s.segments += 1;
                s.bytes_uploaded += size;
            });
            tracing::debug!(seq, transactions = shipped, bytes = size, "segment shipped");
            self.succeeded();
            let Some(line) = self.line.as_ref() else {
                return Ok(());
            };
            if line.pending.is_empty() {
                return Ok(());
            }
        }
    }

    /// The segment number was taken: by this replicator's predecessor, whose upload landed
    /// after it was killed, when it starts where ours does and ends at one of our
    /// transactions. Then its transactions count as shipped; anything else is a second
    /// replicator on the same line. Returns how many pending transactions it holds.
    async fn adopt(&mut self, key: &str, ours: &SegmentHeader) -> Result<usize> {
        let theirs = self.repo.read_segment_header(key).await?;
        let Some(line) = self.line.as_ref() else {
            return Ok(0);
        };
        if theirs.start == ours.start {
            if theirs.end == ours.start {
                return Ok(0);
            }
            if let Some(i) = line.pending.iter().position(|p| p.end == theirs.end) {
                tracing::info!(segment = %key, "a segment written before a restart already holds these transactions");
                return Ok(i + 1);
            }
        }
        Err(Error::ObjectExists {
            object: format!(
                "{} (written by another replicator of generation {}: only one may follow a \
                 database)",
                self.repo.store.describe(key),
                ours.generation
            ),
        })
    }

    /// Checkpoints the log once its size passes the threshold, and starts a periodic
    /// snapshot when one is due; both only when everything read is shipped.
    async fn maybe_checkpoint(&mut self) -> Result<()> {
        let Some(line) = self.line.as_ref() else {
            return Ok(());
        };
        if !line.pending.is_empty() || self.snapshot.is_some() || self.db.pin_lent() {
            return Ok(());
        }
        if self.snapshot_wanted.is_some() {
            if Instant::now() >= self.snapshot_retry_at {
                self.start_snapshot();
            }
            return Ok(());
        }
        let snapshot_due = (Utc::now() - line.last_snapshot)
            .to_std()
            .is_ok_and(|age| age >= self.options.snapshot_every);
        let log_bytes = match self.db.wal()? {
            Some(file) => file.metadata().map(|m| m.len()).unwrap_or(0),
            None => 0,
        };
        if !snapshot_due && log_bytes < self.options.checkpoint_bytes {
            return Ok(());
        }
        match self.checkpoint_cycle().await {
            Ok(Some(point)) if snapshot_due => {
                self.snapshot_wanted = Some(point);
                self.start_snapshot();
            }
            Ok(_) => {}
            Err(e) => self.failed("checkpointing", &e)?,
        }
        Ok(())
    }

    /// Checkpoints every frame of the log: the bulk while writers go on (the pin moved to
    /// the log's end), then, writers stopped, the last frames are read into memory, the rest
    /// copied and the pin taken again on the database file alone. Writers wait only for that
    /// local work, never for the store: the frames read under the lock are shipped once
    /// writers go on. Returns the point the database file is at when every frame was copied,
    /// once that point is shipped.
    ///
    /// Until they are shipped, the last frames are only in memory and in the old log (which
    /// the next writer may restart): a replicator killed in that moment finds, on its next
    /// start, a log that no longer continues its line and starts a new generation. Nothing
    /// is skipped either way.
    async fn checkpoint_cycle(&mut self) -> Result<Option<ReplicaPoint>> {
        self.db.advance_pin().await?;
        self.db.checkpoint().await?;
        self.db.stop_writers().await?;
        let result = async {
            self.read_log()?;
            if self
                .line
                .as_ref()
                .is_some_and(|l| l.pending_bytes >= self.options.pending_bytes)
            {
                // Frames may be left unread: copying them could let the log restart over them.
                return Ok((false, Utc::now()));
            }
            self.db.unpin().await?;
            let full = self.db.checkpoint().await?;
            let as_of = Utc::now();
            self.db.pin().await?;
            Ok::<_, Error>((full, as_of))
        }
        .await;
        self.db.resume_writers().await;
        let (full, as_of) = result?;
        let Some(line) = self.line.as_mut() else {
            return Ok(None);
        };
        if !full {
            return Ok(None);
        }
        line.restart_allowed = true;
        self.status.send_modify(|s| s.checkpoints += 1);
        tracing::debug!(generation = %line.generation.id, "log checkpointed");
        // Ship the last frames now rather than at the next due time: until then they are
        // only in memory. A failure leaves them pending (retried as any segment) and no
        // point to snapshot at; a due snapshot waits for the next checkpoint.
        if let Err(e) = self.ship(false).await {
            self.failed("shipping the last frames of a checkpointed log", &e)?;
            return Ok(None);
        }
        let Some(line) = self.line.as_ref() else {
            return Ok(None);
        };
        Ok(Some(ReplicaPoint {
            generation: line.generation.id.clone(),
            seq: line.next_seq - 1,
            position: line.shipped,
            as_of,
        }))
    }

    /// Starts the wanted snapshot on the pin's connection, if the repository's lock can be
    /// had now (another operation holding it makes the snapshot wait; the pin keeps the
    /// database file as it was meanwhile).
    fn start_snapshot(&mut self) {
        let Some(point) = self.snapshot_wanted.clone() else {
            return;
        };
        if self.snapshot.is_some() {
            return;
        }
        let conn = match self.db.lend_pin() {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take a snapshot now");
                return;
            }
        };
        let repo = self.repo.clone();
        let path = self.db.path().to_path_buf();
        let task_point = point.clone();
        let handle = tokio::spawn(async move {
            let mut conn = conn;
            let result = snapshot(&repo, &path, &mut conn, task_point).await;
            (conn, result)
        });
        self.snapshot = Some((handle, point));
    }

    /// Takes back the pin from a finished snapshot.
    async fn collect_snapshot(&mut self) -> Result<()> {
        let finished = self
            .snapshot
            .as_ref()
            .is_some_and(|(handle, _)| handle.is_finished());
        if !finished {
            return Ok(());
        }
        let Some((handle, point)) = self.snapshot.take() else {
            return Ok(());
        };
        let (conn, result) = handle
            .await
            .map_err(|e| Error::Internal(format!("the snapshot task failed: {e}")))?;
        self.db.return_pin(conn);
        match result {
            Ok(manifest) => {
                self.snapshot_wanted = None;
                if let Some(line) = self.line.as_mut()
                    && line.generation.id == point.generation
                {
                    line.last_snapshot = manifest.created_at;
                }
                let bytes = manifest.compressed_bytes;
                self.status.send_modify(|s| {
                    s.snapshots += 1;
                    s.bytes_uploaded += bytes;
                });
                tracing::info!(id = %manifest.id, generation = %point.generation, seq = point.seq, "replication snapshot taken");
                // The pin held the database file still for the snapshot; move it on so the
                // log can be checkpointed again.
                self.db.advance_pin().await?;
            }
            Err(e) => {
                // The pin still holds the file as of the point: try again later, without
                // holding up the segments.
                let text = format!("taking a snapshot: {}", error_chain(&e));
                tracing::warn!(error = %text, "replication snapshot failed; retrying");
                self.snapshot_retry_at = Instant::now() + self.options.retry_max;
                self.status.send_modify(|s| s.last_error = Some(text));
            }
        }
        Ok(())
    }

    /// At shutdown: what is read is shipped, for at most the grace period.
    async fn drain(&mut self) {
        let _ = self.read_log();
        let grace = self.options.shutdown_grace;
        let deadline = Instant::now() + grace;
        while self.line.as_ref().is_some_and(|l| !l.pending.is_empty()) && Instant::now() < deadline
        {
            match tokio::time::timeout(deadline - Instant::now(), self.ship(false)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = self.failed("shipping at shutdown", &e);
                    tokio::time::sleep(self.options.poll).await;
                }
                Err(_) => break,
            }
        }
        if let Some(line) = self.line.as_ref()
            && !line.pending.is_empty()
        {
            tracing::warn!(
                pending = line.pending.len(),
                "stopping with transactions unshipped; the log holds them for the next start"
            );
        }
    }

    async fn finish(&mut self) {
        if let Some((handle, _)) = self.snapshot.take() {
            // Let the snapshot end (its upload is abandoned by an abort).
            handle.abort();
            if let Ok((conn, _)) = handle.await {
                self.db.return_pin(conn);
            }
        }
    }
}

/// Takes a replication snapshot under the repository's lock.
async fn snapshot(
    repo: &BackupRepository,
    path: &Path,
    conn: &mut SqliteConnection,
    point: ReplicaPoint,
) -> Result<BackupManifest> {
    let lock = repo.lock(Operation::Create).await?;
    let started = Utc::now();
    let result = repo.create_replica_snapshot(&lock, path, conn, point).await;
    match &result {
        Ok(manifest) => {
            repo.record(Operation::Create, started, Some(manifest.id.clone()), None)
                .await;
        }
        Err(e) => {
            repo.record(Operation::Create, started, None, Some(error_chain(e)))
                .await;
        }
    }
    result
}
