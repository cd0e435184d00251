//! Generations: lines of a snapshot and the segments that follow it, and their objects.
//!
//! ```text
//! generations/<id>/generation.json            the line: where it starts, why, who writes it
//! generations/<id>/segments/<seq>.seg          its segments, seq from 1, 20 digits
//! <backup id>.json + data                      its snapshots: backups whose manifest names the
//!                                              generation and the last segment they include
//! ```
//!
//! A generation ends where the log no longer provably continues it (the log was restarted by
//! someone else, or the replicator found it changed after a stop): the next one starts with a
//! snapshot. A line is never appended to by another database: a copy restored elsewhere starts
//! a generation of its own, since its log can never continue this one's checksums.

use std::{collections::BTreeMap, os::unix::fs::MetadataExt, path::Path};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    segment::{self, SegmentHeader},
    wal::WalPosition,
};
use crate::{BackupRepository, Error, Result, sealed, store::ObjectMeta};

/// Where generations are.
pub(crate) const GENERATIONS_DIR: &str = "generations";
const GENERATION_FORMAT: u32 = 1;

/// The process and file that write a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInstance {
    /// The host's name.
    pub host: String,
    /// The database file.
    pub path: String,
    /// The file's device and inode: a file restored over the same path is another file.
    pub device: u64,
    /// The file's inode.
    pub inode: u64,
    /// The replicating process.
    pub pid: u32,
}

impl ReplicaInstance {
    pub(crate) fn of(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("inspect", path, e))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Ok(Self {
            host,
            path: std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string(),
            device: meta.dev(),
            inode: meta.ino(),
            pid: std::process::id(),
        })
    }
}

/// A generation's record, written once when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Generation {
    /// The record's format.
    pub format_version: u32,
    /// Its id: its start time then a random part, so ids sort by start.
    pub id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Why a new line was started.
    pub why: String,
    /// The database (as the repository's identity names it).
    pub database: String,
    /// Who writes it.
    pub instance: ReplicaInstance,
    /// The database's page size.
    pub page_size: u32,
    /// Whether the log's checksums use big-endian words.
    pub big_endian_checksums: bool,
    /// Where it starts in the log: its base snapshot holds everything before.
    pub start: WalPosition,
    /// The generation before it, if any.
    pub previous: Option<String>,
}

pub(crate) fn generation_key(id: &str) -> String {
    format!("{GENERATIONS_DIR}/{id}/generation.json")
}

pub(crate) fn segments_dir(id: &str) -> String {
    format!("{GENERATIONS_DIR}/{id}/segments")
}

pub(crate) fn segment_key(id: &str, seq: u64) -> String {
    format!("{}/{seq:020}.seg", segments_dir(id))
}

/// The sequence number in a segment's key.
pub(crate) fn segment_seq(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".seg")?.parse().ok()
}

/// A new generation id for a line starting at `at`.
pub(crate) fn new_id(at: DateTime<Utc>) -> String {
    let seed = format!(
        "{}-{}-{:?}",
        at.timestamp_nanos_opt().unwrap_or_default(),
        std::process::id(),
        std::thread::current().id()
    );
    let random = hex::encode(Sha256::digest(seed.as_bytes()));
    // Microseconds: two lines started within one second (a replicator killed and restarted
    // at once) must still sort by start, since the newest id is the line to continue and to
    // restore from.
    format!("{}-{}", at.format("%Y%m%dT%H%M%S%.6fZ"), &random[..8])
}

impl BackupRepository {
    /// The ids of the generations, oldest first.
    pub(crate) async fn generation_ids(&self) -> Result<Vec<String>> {
        let listing = self.store.list_dir(GENERATIONS_DIR).await?;
        let mut ids: Vec<String> = listing
            .dirs
            .iter()
            .filter_map(|d| d.rsplit('/').next().map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// A generation's record.
    pub(crate) async fn generation(&self, id: &str) -> Result<Option<Generation>> {
        let key = generation_key(id);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let record: Generation = sealed::open(&bytes).map_err(|reason| Error::Corrupt {
            object: self.store.describe(&key),
            reason,
        })?;
        if record.format_version > GENERATION_FORMAT {
            return Err(Error::UnsupportedFormat {
                object: self.store.describe(&key),
                found: u64::from(record.format_version),
                supported: GENERATION_FORMAT,
            });
        }
        Ok(Some(record))
    }

    /// Writes a new generation's record.
    pub(crate) async fn start_generation(&self, generation: &Generation) -> Result<()> {
        let mut record = generation.clone();
        record.format_version = GENERATION_FORMAT;
        let bytes = sealed::seal(&record).map_err(Error::Internal)?;
        self.store
            .put_once(&generation_key(&record.id), bytes)
            .await
            .map(|_| ())
    }

    /// A generation's segments by number.
    pub(crate) async fn segment_objects(
        &self,
        generation: &str,
    ) -> Result<BTreeMap<u64, ObjectMeta>> {
        Ok(self
            .store
            .list(&segments_dir(generation))
            .await?
            .into_iter()
            .filter_map(|o| segment_seq(&o.key).map(|seq| (seq, o)))
            .collect())
    }

    /// Reads a segment whole, every checksum checked.
    pub(crate) async fn read_segment(&self, key: &str) -> Result<(SegmentHeader, Vec<u8>)> {
        let bytes = self.store.get(key).await?.ok_or_else(|| Error::Corrupt {
            object: self.store.describe(key),
            reason: "it was removed while it was needed".to_owned(),
        })?;
        segment::decode(&bytes).map_err(|reason| Error::Corrupt {
            object: self.store.describe(key),
            reason,
        })
    }

    /// Reads a segment's header (the whole object is read: its seal covers the header only).
    pub(crate) async fn read_segment_header(&self, key: &str) -> Result<SegmentHeader> {
        let bytes = self.store.get(key).await?.ok_or_else(|| Error::Corrupt {
            object: self.store.describe(key),
            reason: "it was removed while it was needed".to_owned(),
        })?;
        segment::header(&bytes).map_err(|reason| Error::Corrupt {
            object: self.store.describe(key),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_number_and_time() {
        assert_eq!(segment_seq(&segment_key("g", 42)), Some(42));
        assert!(segment_key("g", 9) < segment_key("g", 10));
        let a = new_id(Utc::now());
        crate::store::check_key(&generation_key(&a)).unwrap();
        crate::store::check_key(&segment_key(&a, u64::MAX)).unwrap();
    }

    #[test]
    fn ids_of_lines_started_within_one_second_sort_by_start() {
        let second = DateTime::parse_from_rfc3339("2026-11-29T00:53:11Z")
            .unwrap()
            .with_timezone(&Utc);
        for step_ms in 1..200 {
            let earlier = new_id(second + chrono::Duration::milliseconds(step_ms));
            let later = new_id(second + chrono::Duration::milliseconds(step_ms + 1));
            assert!(earlier < later, "{earlier} !< {later}");
        }
    }
}
