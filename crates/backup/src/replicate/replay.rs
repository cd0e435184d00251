//! Rebuilding a database at a point of its replicated history: the newest snapshot before the
//! point, then the segments after it, each checked to continue the one before (positions,
//! SQLite's frame checksums, consecutive numbers), applied up to the last transaction seen
//! at or before the point.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::{
    generation::segments_dir,
    segment::SegmentHeader,
    wal::{self, HEADER_BYTES, WalHeader, WalPosition},
};
use crate::{BackupManifest, BackupRepository, Error, Result, store::ObjectMeta};

/// The state a point-in-time restore rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "at")]
pub enum RestorePoint {
    /// Everything shipped.
    Latest,
    /// Every transaction seen committed at or before this instant, and none after.
    Time(DateTime<Utc>),
}

/// The part of a generation's history that can be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestorableWindow {
    /// The generation.
    pub generation: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Why it started.
    pub why: String,
    /// Who writes it (host and file).
    pub written_by: String,
    /// The earliest instant it can be restored to (its oldest snapshot's).
    pub from: DateTime<Utc>,
    /// The latest (its newest segment's; everything committed before, less one poll, is in).
    pub to: DateTime<Utc>,
    /// Its snapshots.
    pub snapshots: usize,
    /// Its segments, and the number of the last.
    pub segments: usize,
    /// The last segment's number.
    pub last_seq: u64,
}

/// What a replay will do.
#[derive(Debug, Clone)]
pub(crate) struct Replay {
    /// The snapshot it starts from.
    pub(crate) snapshot: BackupManifest,
    /// The segments after it, in order, with their keys.
    pub(crate) segments: Vec<(u64, String)>,
    /// Transactions seen after this are left out; `None`: everything.
    pub(crate) until: Option<DateTime<Utc>>,
}

/// What a replay applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// The generation.
    pub generation: String,
    /// The snapshot it started from.
    pub snapshot: crate::BackupId,
    /// The last segment applied (the snapshot's own when none was).
    pub last_seq: u64,
    /// Transactions applied on top of the snapshot.
    pub transactions: u64,
    /// When the last transaction applied was seen committed (the snapshot's time when none
    /// was): the restored database is the database as of then.
    pub as_of: DateTime<Utc>,
}

impl BackupRepository {
    /// The restorable window of every generation, oldest first.
    ///
    /// # Errors
    ///
    /// When the repository cannot be read, or a newest segment is damaged.
    pub async fn restorable_windows(&self) -> Result<Vec<RestorableWindow>> {
        let backups = self.list().await?.backups;
        self.windows_of(&backups).await
    }

    /// The restorable windows, given the repository's backups.
    pub(crate) async fn windows_of(
        &self,
        backups: &[BackupManifest],
    ) -> Result<Vec<RestorableWindow>> {
        let mut windows = Vec::new();
        for id in self.generation_ids().await? {
            let snapshots: Vec<&BackupManifest> = backups
                .iter()
                .filter(|m| m.replication.as_ref().is_some_and(|r| r.generation == id))
                .collect();
            let Some(oldest) = snapshots
                .iter()
                .filter_map(|m| m.replication.as_ref())
                .map(|r| r.as_of)
                .min()
            else {
                continue;
            };
            let Some(record) = self.generation(&id).await? else {
                continue;
            };
            let segments = self.segment_objects(&id).await?;
            let newest_snapshot = snapshots
                .iter()
                .filter_map(|m| m.replication.as_ref())
                .map(|r| r.as_of)
                .max()
                .unwrap_or(oldest);
            let (to, last_seq) = match segments.iter().next_back() {
                Some((seq, object)) => (
                    self.read_segment_header(&object.key)
                        .await?
                        .synced_at
                        .max(newest_snapshot),
                    *seq,
                ),
                None => (newest_snapshot, 0),
            };
            windows.push(RestorableWindow {
                generation: id,
                started_at: record.started_at,
                why: record.why,
                written_by: format!("{}:{}", record.instance.host, record.instance.path),
                from: oldest,
                to,
                snapshots: snapshots.len(),
                segments: segments.len(),
                last_seq,
            });
        }
        Ok(windows)
    }

    /// Works out which snapshot and segments rebuild `point`, in `generation` or else the
    /// generation that covers it (for [`RestorePoint::Latest`], the one with the newest data).
    pub(crate) async fn plan_replay(
        &self,
        point: RestorePoint,
        generation: Option<&str>,
    ) -> Result<Replay> {
        let windows = self.restorable_windows().await?;
        let nothing = |why: String| Error::InvalidConfig(why);
        let window = match (generation, point) {
            (Some(id), _) => windows.iter().find(|w| w.generation == id).ok_or_else(|| {
                nothing(format!(
                    "no restorable generation `{id}` in {}",
                    self.location
                ))
            })?,
            (None, RestorePoint::Latest) => windows
                .iter()
                .max_by_key(|w| (w.to, w.generation.clone()))
                .ok_or_else(|| {
                    nothing(format!("{} holds no replicated generation", self.location))
                })?,
            (None, RestorePoint::Time(at)) => windows
                .iter()
                .filter(|w| w.from <= at)
                .max_by_key(|w| (w.from, w.generation.clone()))
                .ok_or_else(|| {
                    nothing(format!(
                        "nothing in {} can be restored to {at}: the restorable windows are {}",
                        self.location,
                        describe(&windows)
                    ))
                })?,
        };
        if let RestorePoint::Time(at) = point {
            if at < window.from {
                return Err(nothing(format!(
                    "generation {} can be restored from {} on, not to {at}",
                    window.generation, window.from
                )));
            }
            // Between the end of one line and the start of the next, the transactions are in
            // the next line's snapshot but not one by one: no state of that time is known.
            if at > window.to
                && let Some(next) = windows.iter().find(|w| w.from > window.to)
            {
                return Err(nothing(format!(
                    "no replicated history covers {at}: generation {} ends at {} and generation \
                     {} starts at {} ({}); restore to a time in one of them",
                    window.generation, window.to, next.generation, next.from, next.why
                )));
            }
        }
        let backups = self.list().await?.backups;
        let snapshot = backups
            .into_iter()
            .filter(|m| {
                m.replication.as_ref().is_some_and(|r| {
                    r.generation == window.generation
                        && match point {
                            RestorePoint::Latest => true,
                            RestorePoint::Time(at) => r.as_of <= at,
                        }
                })
            })
            .max_by_key(|m| m.replication.as_ref().map(|r| r.seq))
            .ok_or_else(|| nothing(format!("generation {} has no snapshot", window.generation)))?;
        let from_seq = snapshot.replication.as_ref().map_or(0, |r| r.seq);
        let segments: BTreeMap<u64, ObjectMeta> = self
            .segment_objects(&window.generation)
            .await?
            .into_iter()
            .filter(|(seq, _)| *seq > from_seq)
            .collect();
        for (expected, seq) in (from_seq + 1..).zip(segments.keys()) {
            if *seq != expected {
                return Err(Error::Corrupt {
                    object: self.store.describe(&segments_dir(&window.generation)),
                    reason: format!(
                        "segment {expected} is missing (the next is {seq}): the line has a gap \
                         after {}; restore to a time before it",
                        expected - 1
                    ),
                });
            }
        }
        Ok(Replay {
            snapshot,
            segments: segments.into_iter().map(|(seq, o)| (seq, o.key)).collect(),
            until: match point {
                RestorePoint::Latest => None,
                RestorePoint::Time(at) => Some(at),
            },
        })
    }

    /// Starts fetching the replay's segments in the background, in order, a few ahead of
    /// [`BackupRepository::apply_replay`] (so that they download while the snapshot is
    /// decompressed). At most [`FETCH_AHEAD`] are held, downloading or waiting.
    pub(crate) fn fetch_segments(&self, replay: &Replay) -> FetchedSegments {
        let (tx, rx) = tokio::sync::mpsc::channel(FETCH_AHEAD);
        let repo = self.clone();
        let segments = replay.segments.clone();
        let task = tokio::spawn(async move {
            let mut fetched = futures::stream::iter(segments.into_iter().map(|(seq, key)| {
                let repo = &repo;
                async move { repo.read_segment(&key).await.map(|s| (seq, key, s)) }
            }))
            .buffered(FETCH_AHEAD);
            while let Some(segment) = fetched.next().await {
                let failed = segment.is_err();
                // The receiver is gone when the replay stopped early (a point reached, an
                // error): nothing more is needed.
                if tx.send(segment).await.is_err() || failed {
                    break;
                }
            }
        });
        FetchedSegments { rx, task }
    }

    /// Applies the replay's segments (as `segments`, from
    /// [`BackupRepository::fetch_segments`], hands them over) to the decompressed snapshot at
    /// `file`, checking that each continues the one before. A damaged or discontinuous segment
    /// is an error: nothing after it is applied, and the caller keeps the target as it was.
    /// The file is not fsync'd: the caller does that (once, beside its checks) before it puts
    /// the file in place.
    pub(crate) async fn apply_replay(
        &self,
        replay: &Replay,
        mut segments: FetchedSegments,
        file: &Path,
    ) -> Result<Replayed> {
        let point = replay.snapshot.replication.as_ref().ok_or_else(|| {
            Error::Internal(format!(
                "backup {} is not a replication snapshot",
                replay.snapshot.id
            ))
        })?;
        let mut at = point.position;
        let mut done = Replayed {
            generation: point.generation.clone(),
            snapshot: replay.snapshot.id.clone(),
            last_seq: point.seq,
            transactions: 0,
            as_of: point.as_of,
        };
        let path: PathBuf = file.to_path_buf();
        let target = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let target = std::sync::Arc::new(target);
        let mut expected = replay.segments.iter();
        // The point was reached before the last segment.
        let mut reached = false;
        while let Some(fetched) = segments.rx.recv().await {
            let (seq, key, (header, frames)) = fetched?;
            if expected.next().map(|(s, _)| *s) != Some(seq) {
                return Err(Error::Internal(format!(
                    "segment {seq} was fetched out of order"
                )));
            }
            let corrupt = |reason: String| Error::Corrupt {
                object: self.store.describe(&key),
                reason,
            };
            if header.seq != seq || header.generation != point.generation {
                return Err(corrupt(format!(
                    "it says it is segment {} of generation {}",
                    header.seq, header.generation
                )));
            }
            let new_log = header.start.offset == HEADER_BYTES
                && (at.offset == 0 || header.start.salt1 == at.salt1.wrapping_add(1));
            if header.start != at && !new_log {
                return Err(corrupt(format!(
                    "it starts at {:?}, where segment {} ended at {at:?}: the line has a gap",
                    header.start,
                    seq - 1
                )));
            }
            let keep = match replay.until {
                None => header.transactions.len(),
                Some(until) => header
                    .transactions
                    .iter()
                    .take_while(|t| t.observed_at <= until)
                    .count(),
            };
            if keep == 0 && !header.transactions.is_empty() {
                reached = true;
                break;
            }
            let frame_bytes = wal::FRAME_HEADER_BYTES as usize + header.page_size as usize;
            let kept_frames: usize = header.transactions[..keep]
                .iter()
                .map(|t| t.frames as usize)
                .sum();
            let mut slice = frames;
            if slice.len() < kept_frames * frame_bytes {
                return Err(corrupt("fewer frames than its transactions".to_owned()));
            }
            slice.truncate(kept_frames * frame_bytes);
            let file = std::sync::Arc::clone(&target);
            let log = pseudo_header(&header);
            let start = header.start;
            let page_size = u64::from(header.page_size);
            let applied =
                tokio::task::spawn_blocking(move || apply(&file, &log, &start, &slice, page_size))
                    .await
                    .map_err(|e| Error::Internal(format!("a replay worker failed: {e}")))?;
            let end = applied.map_err(corrupt)?;
            if keep == header.transactions.len() && end != header.end {
                return Err(corrupt(format!(
                    "its frames end at {end:?}, its header says {:?}",
                    header.end
                )));
            }
            at = end;
            done.last_seq = seq;
            done.transactions += keep as u64;
            if let Some(last) = header.transactions[..keep].last() {
                done.as_of = last.observed_at;
            }
            if keep < header.transactions.len() {
                reached = true;
                break;
            }
            if keep == 0 {
                // A heartbeat: nothing committed between its start and its sync time.
                done.as_of = match replay.until {
                    Some(until) => header.synced_at.min(until),
                    None => header.synced_at,
                };
            }
        }
        if !reached && let Some((seq, _)) = expected.next() {
            // The fetcher ended without an error for the next segment: never skip it.
            return Err(Error::Internal(format!("segment {seq} was never fetched")));
        }
        Ok(done)
    }
}

/// Segments fetched at most this many ahead of the one being applied.
const FETCH_AHEAD: usize = 8;

/// One fetched segment: its sequence number, its object's key, its header and its frames.
type FetchedSegment = (u64, String, (SegmentHeader, Vec<u8>));

/// Segments being fetched for a replay, in order (see [`BackupRepository::fetch_segments`]).
pub(crate) struct FetchedSegments {
    rx: tokio::sync::mpsc::Receiver<Result<FetchedSegment>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FetchedSegments {
    fn drop(&mut self) {
        // A replay that ends early (its point reached, a failure) fetches nothing more.
        self.task.abort();
    }
}

/// The log header a segment's frames were in, enough to check them.
fn pseudo_header(segment: &SegmentHeader) -> WalHeader {
    WalHeader {
        big_endian_checksums: segment.big_endian_checksums,
        page_size: segment.page_size,
        salt1: segment.start.salt1,
        salt2: segment.start.salt2,
        checksum: (segment.start.checksum1, segment.start.checksum2),
        bytes: [0; HEADER_BYTES as usize],
    }
}

/// Writes each frame's page into the database file, and sets its size at each commit.
fn apply(
    file: &File,
    log: &WalHeader,
    start: &WalPosition,
    frames: &[u8],
    page_size: u64,
) -> std::result::Result<WalPosition, String> {
    if frames.is_empty() {
        return Ok(*start);
    }
    wal::apply_frames(
        log,
        start,
        frames,
        |page, data| file.write_all_at(data, (u64::from(page) - 1) * page_size),
        |pages| file.set_len(u64::from(pages) * page_size),
    )
}

fn describe(windows: &[RestorableWindow]) -> String {
    if windows.is_empty() {
        return "none".to_owned();
    }
    windows
        .iter()
        .map(|w| format!("{} to {} (generation {})", w.from, w.to, w.generation))
        .collect::<Vec<_>>()
        .join(", ")
}
