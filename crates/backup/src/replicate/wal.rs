//! Reading a SQLite write-ahead log: its header, its frames, the checksums that chain them,
//! and the committed transactions after a known position.
//!
//! The format (sqlite.org/fileformat.html, "WAL file format"): a 32-byte header (magic, version,
//! page size, checkpoint sequence, salt-1, salt-2, checksum-1, checksum-2), then frames of a
//! 24-byte header (page number, database size in pages after commit — non-zero only on a
//! commit frame —, salt-1, salt-2, checksum-1, checksum-2) and one page. Each frame's checksum
//! continues the previous one's (the header's for the first frame), so a frame is valid only
//! if its salts match the header's and its checksum continues the chain: a torn write, a frame
//! left from before the log restarted, or any changed byte ends the valid log there.

use std::{fs::File, io, os::unix::fs::FileExt};

use serde::{Deserialize, Serialize};

/// The WAL header's size.
pub(crate) const HEADER_BYTES: u64 = 32;
/// A frame header's size.
pub(crate) const FRAME_HEADER_BYTES: u64 = 24;
const MAGIC_LITTLE: u32 = 0x377f_0682;
const MAGIC_BIG: u32 = 0x377f_0683;

/// A point in the write-ahead log: just after the last frame of a committed transaction (or
/// just after the header, before any frame). The salts say which incarnation of the log; the
/// checksums are the chain's value there, so the next frame can be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalPosition {
    /// The log's salt-1 (incremented by one each time SQLite restarts the log).
    pub salt1: u32,
    /// The log's salt-2 (random at each restart).
    pub salt2: u32,
    /// Byte offset in the log file.
    pub offset: u64,
    /// The checksum chain's first word at this point.
    pub checksum1: u32,
    /// The checksum chain's second word.
    pub checksum2: u32,
}

/// A parsed WAL header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalHeader {
    pub(crate) big_endian_checksums: bool,
    pub(crate) page_size: u32,
    pub(crate) salt1: u32,
    pub(crate) salt2: u32,
    pub(crate) checksum: (u32, u32),
    pub(crate) bytes: [u8; HEADER_BYTES as usize],
}

impl WalHeader {
    /// Parses and checks a header; `None` when it is not a valid one (an empty or
    /// half-written log).
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; HEADER_BYTES as usize] =
            bytes.get(..HEADER_BYTES as usize)?.try_into().ok()?;
        let be = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let big_endian_checksums = match be(0) {
            MAGIC_LITTLE => false,
            MAGIC_BIG => true,
            _ => return None,
        };
        let page_size = be(8);
        if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
            return None;
        }
        let checksum = checksum(big_endian_checksums, &bytes[..24], (0, 0));
        if checksum != (be(24), be(28)) {
            return None;
        }
        Some(Self {
            big_endian_checksums,
            page_size,
            salt1: be(16),
            salt2: be(20),
            checksum,
            bytes,
        })
    }

    /// The position just after this header.
    pub(crate) fn start(&self) -> WalPosition {
        WalPosition {
            salt1: self.salt1,
            salt2: self.salt2,
            offset: HEADER_BYTES,
            checksum1: self.checksum.0,
            checksum2: self.checksum.1,
        }
    }

    /// Whether `frame_header` (a frame's first [`FRAME_HEADER_BYTES`] or more) carries this
    /// log's salts: a frame of this log may start there (one without them cannot, and
    /// neither can anything after it). [`transactions`] checks the rest.
    pub(crate) fn salts_match(&self, frame_header: &[u8]) -> bool {
        let word = |i: usize| {
            frame_header
                .get(i..i + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
        };
        word(8) == Some(self.salt1) && word(12) == Some(self.salt2)
    }

    /// A frame's size in the log.
    pub(crate) fn frame_bytes(&self) -> u64 {
        FRAME_HEADER_BYTES + u64::from(self.page_size)
    }

    /// Whether a log with this header is the one `position` was in.
    pub(crate) fn holds(&self, position: &WalPosition) -> bool {
        self.salt1 == position.salt1 && self.salt2 == position.salt2
    }

    /// Whether this log is the one SQLite started right after the log of `position`: one
    /// restart, salt-1 incremented by one.
    pub(crate) fn follows(&self, position: &WalPosition) -> bool {
        self.salt1 == position.salt1.wrapping_add(1)
    }
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing `seed`.
pub(crate) fn checksum(big_endian: bool, data: &[u8], seed: (u32, u32)) -> (u32, u32) {
    let (mut s1, mut s2) = seed;
    for pair in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let b = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        s1 = s1.wrapping_add(word(&pair[..4])).wrapping_add(s2);
        s2 = s2.wrapping_add(word(&pair[4..])).wrapping_add(s1);
    }
    (s1, s2)
}

/// One committed transaction read from the log: its frames, exactly as they are in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transaction {
    /// The frames (headers and pages).
    pub(crate) frames: Vec<u8>,
    /// The database's size in pages after it (from its commit frame).
    pub(crate) db_pages: u32,
    /// The position after it.
    pub(crate) end: WalPosition,
}

/// Checks frames that continue `from` and splits them into transactions; stops at the first
/// frame that is not valid, and leaves out frames after the last commit (a transaction still
/// being written). `frames` starts at `from.offset`.
pub(crate) fn transactions(
    header: &WalHeader,
    from: &WalPosition,
    frames: &[u8],
) -> Vec<Transaction> {
    let frame_bytes = header.frame_bytes() as usize;
    let mut done = Vec::new();
    let mut chain = (from.checksum1, from.checksum2);
    let mut start = 0usize;
    let mut at = 0usize;
    while at + frame_bytes <= frames.len() {
        let frame = &frames[at..at + frame_bytes];
        let be =
            |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
        if be(8) != header.salt1 || be(12) != header.salt2 || be(0) == 0 {
            break;
        }
        let next = checksum(
            header.big_endian_checksums,
            &frame[FRAME_HEADER_BYTES as usize..],
            checksum(header.big_endian_checksums, &frame[..8], chain),
        );
        if next != (be(16), be(20)) {
            break;
        }
        chain = next;
        at += frame_bytes;
        let db_pages = be(4);
        if db_pages != 0 {
            done.push(Transaction {
                frames: frames[start..at].to_vec(),
                db_pages,
                end: WalPosition {
                    salt1: header.salt1,
                    salt2: header.salt2,
                    offset: from.offset + at as u64,
                    checksum1: chain.0,
                    checksum2: chain.1,
                },
            });
            start = at;
        }
    }
    done
}

/// Checks a sequence of frames against the chain from `from` (as [`transactions`] does) and
/// calls `page` for each frame's page, with the database size at each commit; returns the
/// position after the last commit, or where and why the chain broke.
pub(crate) fn apply_frames(
    header: &WalHeader,
    from: &WalPosition,
    frames: &[u8],
    mut page: impl FnMut(u32, &[u8]) -> io::Result<()>,
    mut commit: impl FnMut(u32) -> io::Result<()>,
) -> Result<WalPosition, String> {
    let frame_bytes = header.frame_bytes() as usize;
    if !frames.len().is_multiple_of(frame_bytes) {
        return Err(format!(
            "{} bytes are not whole frames of {frame_bytes}",
            frames.len()
        ));
    }
    let mut chain = (from.checksum1, from.checksum2);
    let mut end = *from;
    for (i, frame) in frames.chunks_exact(frame_bytes).enumerate() {
        let be = |at: usize| {
            u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
        };
        if be(8) != header.salt1 || be(12) != header.salt2 {
            return Err(format!("frame {i} belongs to another log (salts differ)"));
        }
        let next = checksum(
            header.big_endian_checksums,
            &frame[FRAME_HEADER_BYTES as usize..],
            checksum(header.big_endian_checksums, &frame[..8], chain),
        );
        if next != (be(16), be(20)) {
            return Err(format!("frame {i} does not continue the checksum chain"));
        }
        chain = next;
        page(be(0), &frame[FRAME_HEADER_BYTES as usize..]).map_err(|e| e.to_string())?;
        if be(4) != 0 {
            commit(be(4)).map_err(|e| e.to_string())?;
            end = WalPosition {
                salt1: header.salt1,
                salt2: header.salt2,
                offset: from.offset + ((i + 1) * frame_bytes) as u64,
                checksum1: chain.0,
                checksum2: chain.1,
            };
        }
    }
    if end.offset != from.offset + frames.len() as u64 {
        return Err("the last frames are not followed by a commit".to_owned());
    }
    Ok(end)
}

/// Reads up to `len` bytes of `file` at `offset` (fewer at its end).
pub(crate) fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Whether the log still holds `position`: same salts, and the frame ending there (or the
/// header, at the start) carries the recorded checksum.
pub(crate) fn still_at(file: &File, position: &WalPosition) -> io::Result<bool> {
    let Some(header) = WalHeader::parse(&read_at(file, 0, HEADER_BYTES as usize)?) else {
        return Ok(false);
    };
    if !header.holds(position) {
        return Ok(false);
    }
    if position.offset == HEADER_BYTES {
        return Ok(header.checksum == (position.checksum1, position.checksum2));
    }
    let frame_bytes = header.frame_bytes();
    if position.offset < HEADER_BYTES + frame_bytes
        || !(position.offset - HEADER_BYTES).is_multiple_of(frame_bytes)
    {
        return Ok(false);
    }
    let frame_header = read_at(
        file,
        position.offset - frame_bytes,
        FRAME_HEADER_BYTES as usize,
    )?;
    if frame_header.len() < FRAME_HEADER_BYTES as usize {
        return Ok(false);
    }
    let be = |at: usize| {
        u32::from_be_bytes([
            frame_header[at],
            frame_header[at + 1],
            frame_header[at + 2],
            frame_header[at + 3],
        ])
    };
    Ok(be(8) == position.salt1
        && be(12) == position.salt2
        && (be(16), be(20)) == (position.checksum1, position.checksum2))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A WAL written by hand the way SQLite writes one: header, then `commits` transactions of
    /// `pages` frames each (page numbers 1..=pages), little- or big-endian checksums.
    pub(crate) fn wal(big: bool, salts: (u32, u32), commits: usize, pages: u32) -> Vec<u8> {
        let page_size = 512u32;
        let mut out = Vec::new();
        out.extend_from_slice(&(if big { MAGIC_BIG } else { MAGIC_LITTLE }).to_be_bytes());
        out.extend_from_slice(&3_007_000u32.to_be_bytes());
        out.extend_from_slice(&page_size.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&salts.0.to_be_bytes());
        out.extend_from_slice(&salts.1.to_be_bytes());
        let mut chain = checksum(big, &out, (0, 0));
        out.extend_from_slice(&chain.0.to_be_bytes());
        out.extend_from_slice(&chain.1.to_be_bytes());
        for c in 0..commits {
            for p in 1..=pages {
                let mut frame = Vec::new();
                frame.extend_from_slice(&p.to_be_bytes());
                let commit = if p == pages { pages + c as u32 } else { 0 };
                frame.extend_from_slice(&commit.to_be_bytes());
                frame.extend_from_slice(&salts.0.to_be_bytes());
                frame.extend_from_slice(&salts.1.to_be_bytes());
                let data: Vec<u8> = (0..page_size)
                    .map(|i| (i as u8) ^ (c as u8) ^ (p as u8))
                    .collect();
                chain = checksum(big, &data, checksum(big, &frame[..8], chain));
                frame.extend_from_slice(&chain.0.to_be_bytes());
                frame.extend_from_slice(&chain.1.to_be_bytes());
                frame.extend_from_slice(&data);
                out.extend_from_slice(&frame);
            }
        }
        out
    }

    #[test]
    fn transactions_are_read_up_to_the_last_commit_and_the_chain_is_checked() {
        for big in [false, true] {
            let log = wal(big, (7, 99), 3, 2);
            let header = WalHeader::parse(&log).unwrap();
            assert_eq!(header.page_size, 512);
            let start = header.start();
            let all = transactions(&header, &start, &log[32..]);
            assert_eq!(all.len(), 3);
            assert_eq!(all[2].end.offset, log.len() as u64);
            assert_eq!(all[1].db_pages, 3);
            // From the middle: the rest.
            let rest = transactions(&header, &all[0].end, &log[all[0].end.offset as usize..]);
            assert_eq!(rest.len(), 2);
            assert_eq!(rest[1].end, all[2].end);
            // A half-written last transaction is left out; a changed byte ends the valid log.
            let frame = header.frame_bytes() as usize;
            assert_eq!(
                transactions(&header, &start, &log[32..log.len() - frame]).len(),
                2
            );
            let mut damaged = log.clone();
            damaged[32 + frame + 100] ^= 1;
            assert_eq!(transactions(&header, &start, &damaged[32..]).len(), 0);
            // Frames of another incarnation of the log are not frames of this one, and their
            // salts alone say so (past the end of the file too).
            let other = WalHeader::parse(&wal(big, (8, 5), 1, 2)).unwrap();
            assert!(transactions(&other, &other.start(), &log[32..]).is_empty());
            assert!(header.salts_match(&log[32 + frame..]));
            assert!(!other.salts_match(&log[32 + frame..]));
            assert!(!header.salts_match(&log[32 + frame..32 + frame + 15]));
            assert!(other.follows(&start));
            // Applying checks the same chain and reports each page.
            let mut pages = Vec::new();
            let end = apply_frames(
                &header,
                &start,
                &log[32..],
                |n, _| {
                    pages.push(n);
                    Ok(())
                },
                |_| Ok(()),
            )
            .unwrap();
            assert_eq!(end, all[2].end);
            assert_eq!(pages, [1, 2, 1, 2, 1, 2]);
            assert!(
                apply_frames(&header, &start, &damaged[32..], |_, _| Ok(()), |_| Ok(())).is_err()
            );
        }
    }

    #[test]
    fn a_position_is_recognised_only_in_its_own_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-wal");
        let log = wal(false, (1, 2), 2, 3);
        std::fs::write(&path, &log).unwrap();
        let header = WalHeader::parse(&log).unwrap();
        let txns = transactions(&header, &header.start(), &log[32..]);
        let file = File::open(&path).unwrap();
        assert!(still_at(&file, &header.start()).unwrap());
        assert!(still_at(&file, &txns[0].end).unwrap());
        assert!(still_at(&file, &txns[1].end).unwrap());
        std::fs::write(&path, wal(false, (2, 7), 2, 3)).unwrap();
        let file = File::open(&path).unwrap();
        assert!(!still_at(&file, &txns[0].end).unwrap());
        std::fs::write(&path, b"").unwrap();
        let file = File::open(&path).unwrap();
        assert!(!still_at(&file, &txns[0].end).unwrap());
    }
}
