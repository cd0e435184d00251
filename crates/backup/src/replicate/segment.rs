//! Segments: the WAL frames of consecutive committed transactions, shipped as one object.
//!
//! A segment object is a zstd *skippable frame* holding its sealed JSON header, followed by
//! the zstd-compressed frames exactly as they were in the log (`zstd -d` skips the header and
//! prints the raw frames). The header says where the frames start and end in the log (so each
//! segment provably continues the previous one), when each transaction was seen, and the
//! SHA-256 of the compressed frames, checked on every read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::wal::WalPosition;
use crate::sealed;

/// The segment format this build writes and reads.
const SEGMENT_FORMAT: u32 = 1;
/// The skippable frame's magic (any of 0x184D2A50..=0x184D2A5F; this one is ours).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5B;

/// One transaction of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentTransaction {
    /// How many frames it wrote.
    pub frames: u32,
    /// The database's size in pages after it.
    pub db_pages: u32,
    /// When the replicator first saw it committed (at most one poll after the commit).
    pub observed_at: DateTime<Utc>,
}

/// What a segment holds, and where it fits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// The segment format.
    pub format_version: u32,
    /// The generation (line of snapshots and segments) it belongs to.
    pub generation: String,
    /// Its number in the generation, from 1.
    pub seq: u64,
    /// The database's page size.
    pub page_size: u32,
    /// Whether the log's checksums use big-endian words (from its header's magic).
    pub big_endian_checksums: bool,
    /// Where its frames start in the log (a new log's start after a restart of the log).
    pub start: WalPosition,
    /// Where they end: the next segment starts here, or at the start of the next log.
    pub end: WalPosition,
    /// Its transactions, in order. Empty for a heartbeat (nothing committed since the last).
    pub transactions: Vec<SegmentTransaction>,
    /// Everything committed before this instant (less one poll) is in this segment or an
    /// earlier one: the replicator had read the log up to `end` then.
    pub synced_at: DateTime<Utc>,
    /// The size of the frames before compression.
    pub raw_bytes: u64,
    /// The size of the compressed frames.
    pub compressed_bytes: u64,
    /// SHA-256 of the compressed frames, lowercase hex.
    pub sha256: String,
}

/// Builds a segment object from its header (whose size and checksum fields are filled in here)
/// and its raw frames.
pub(crate) fn encode(
    mut header: SegmentHeader,
    frames: &[u8],
    level: i32,
) -> Result<Vec<u8>, String> {
    let compressed = if frames.is_empty() {
        Vec::new()
    } else {
        let mut encoder = zstd::bulk::Compressor::new(level).map_err(|e| e.to_string())?;
        encoder.include_checksum(true).map_err(|e| e.to_string())?;
        encoder.compress(frames).map_err(|e| e.to_string())?
    };
    header.format_version = SEGMENT_FORMAT;
    header.raw_bytes = frames.len() as u64;
    header.compressed_bytes = compressed.len() as u64;
    header.sha256 = hex::encode(Sha256::digest(&compressed));
    let json = sealed::seal(&header)?;
    let size = u32::try_from(json.len()).map_err(|_| "segment header too large".to_owned())?;
    let mut out = Vec::with_capacity(8 + json.len() + compressed.len());
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// Reads a segment's header alone, checking its seal.
pub(crate) fn header(object: &[u8]) -> Result<SegmentHeader, String> {
    split(object).map(|(header, _)| header)
}

/// Reads a whole segment: its header and its raw frames, every checksum checked.
pub(crate) fn decode(object: &[u8]) -> Result<(SegmentHeader, Vec<u8>), String> {
    let (header, compressed) = split(object)?;
    if compressed.len() as u64 != header.compressed_bytes {
        return Err(format!(
            "its frames are {} bytes, its header says {}",
            compressed.len(),
            header.compressed_bytes
        ));
    }
    let actual = hex::encode(Sha256::digest(compressed));
    if actual != header.sha256 {
        return Err(format!(
            "checksum mismatch: its frames' SHA-256 is {actual}, its header says {}",
            header.sha256
        ));
    }
    let frames = if compressed.is_empty() {
        Vec::new()
    } else {
        let capacity = usize::try_from(header.raw_bytes).map_err(|e| e.to_string())?;
        zstd::bulk::decompress(compressed, capacity)
            .map_err(|e| format!("does not decompress: {e}"))?
    };
    if frames.len() as u64 != header.raw_bytes {
        return Err(format!(
            "its frames decompress to {} bytes, its header says {}",
            frames.len(),
            header.raw_bytes
        ));
    }
    Ok((header, frames))
}

fn split(object: &[u8]) -> Result<(SegmentHeader, &[u8]), String> {
    let word = |at: usize| {
        object
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if word(0) != Some(SKIPPABLE_MAGIC) {
        return Err("not a segment (no header frame)".to_owned());
    }
    let size = word(4).ok_or("truncated")? as usize;
    let json = object
        .get(8..8 + size)
        .ok_or_else(|| "truncated header".to_owned())?;
    let header: SegmentHeader = sealed::open(json)?;
    if header.format_version > SEGMENT_FORMAT {
        return Err(format!(
            "segment format {} is newer than the {SEGMENT_FORMAT} this tool reads; upgrade it",
            header.format_version
        ));
    }
    Ok((header, &object[8 + size..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentHeader {
        let at = WalPosition {
            salt1: 1,
            salt2: 2,
            offset: 32,
            checksum1: 3,
            checksum2: 4,
        };
        SegmentHeader {
            format_version: 0,
            generation: "g".to_owned(),
            seq: 7,
            page_size: 4096,
            big_endian_checksums: false,
            start: at,
            end: WalPosition {
                offset: 32 + 4120,
                ..at
            },
            transactions: vec![SegmentTransaction {
                frames: 1,
                db_pages: 9,
                observed_at: Utc::now(),
            }],
            synced_at: Utc::now(),
            raw_bytes: 0,
            compressed_bytes: 0,
            sha256: String::new(),
        }
    }

    #[test]
    fn a_segment_round_trips_and_any_damage_is_caught() {
        let frames: Vec<u8> = (0..4120u32).map(|i| (i % 7) as u8).collect();
        let object = encode(sample(), &frames, 3).unwrap();
        let (header, back) = decode(&object).unwrap();
        assert_eq!(back, frames);
        assert_eq!(header.seq, 7);
        assert_eq!(header.raw_bytes, 4120);
        // zstd itself skips the header and gives the raw frames.
        assert_eq!(zstd::stream::decode_all(object.as_slice()).unwrap(), frames);
        for at in [20, object.len() - 3, object.len() / 2] {
            let mut damaged = object.clone();
            damaged[at] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {at}");
        }
        let heartbeat = encode(sample(), &[], 3).unwrap();
        assert!(decode(&heartbeat).unwrap().1.is_empty());
    }
}
