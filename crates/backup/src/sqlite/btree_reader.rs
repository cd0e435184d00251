//! A reader of SQLite's b-tree pages of our own, for the check's scans: the rows of a table in
//! rowid order and the entries of an index in key order, read from the file directly.
//!
//! The check's digests ([`super::index_scan`]) need every row's indexed columns and every
//! index entry once, in b-tree order. Read through SQLite (an aggregate fed by a `SELECT`,
//! [`super::row_feed`]) most of that CPU went to SQLite's virtual machine decoding each record
//! and handing each value through its C API. This reader walks the pages itself and decodes
//! only the fields asked for, as [`ValueRef`]s borrowed from its buffers, so the visitors of
//! the digests keep their code.
//!
//! It is a fast path, never a judge: it reads what a *sound* file holds exactly as SQLite
//! reads it, and on anything it does not fully understand it returns [`Unreadable`], after
//! which the caller runs the same scan through SQLite, whose verdict then stands. What it
//! checks is only what it needs not to misread: the file header (page size, reserved bytes,
//! UTF-8, no WAL content beside it, no hot journal, the header's page count agreeing with the
//! file's), each page's type, cell count and cell pointers, every varint and record header
//! against the bytes that hold it, overflow chains, page numbers in the file, a depth limit
//! (SQLite's own: 20) and at most as many pages visited per walk as the file has. The b-tree's
//! deeper invariants (keys in order across pages, free blocks, fragment counts) are
//! `quick_check(<table>)`'s, which runs on every table beside the scans.
//!
//! Pages are read with `pread` (`FileExt::read_exact_at`) into reused buffers rather than
//! through a memory map: the workspace forbids `unsafe` code, which a mapping needs, and a
//! mapped file truncated by another process is a `SIGBUS` rather than an error. One system
//! call per page visited costs little beside decoding the page's records.
//!
//! The file format is <https://www.sqlite.org/fileformat2.html>: §1.3 the header, §1.6 the
//! b-tree pages and the local part of a payload, §2.1 records.
//!
//! Why reading raw is sound: a scan read here is only used when every page and record it met
//! parsed without doubt, and then it hands the visitors the values SQLite's scan would (the
//! tests compare both, value for value and in order, on every kind of value and page size).
//! What SQLite would judge differently on a damaged file (a key out of order across pages, a
//! free block, a page in two b-trees) is judged by `quick_check(<table>)` and the page
//! accounting, which stay SQLite's; the damage tests require SQLite's verdict on thousands of
//! flipped bytes. What it does not read as SQL does is kept away by the planner
//! ([`super::index_scan`]): a generated column (positions in the record are not the `cid`s),
//! an indexed rowid alias (stored as NULL); a REAL column's integral value stored as an
//! integer is handed over as a real, as SQL reads it (`index_scan::as_read`); and the walk
//! itself makes a record shorter than the columns asked for (a column added with a default
//! later) [`Unreadable`].
//!
//! Measured (2026-11-30 00:46 UTC, the large hotel database, 478 MB, 1M bookings, on a shared
//! two-core machine at load 2–2.6; `scripts/check_pieces.sh` five times each, interleaved with
//! the build before, medians): index entry scans 1.03 → 0.71 CPU-seconds (0.69×), row scans
//! 0.64 → 0.36 (0.56×), the whole check 2.47 → 1.87 (0.76×). Not the several times hoped for:
//! with SQLite's virtual machine gone, what remains is about half the visitors' own work
//! (hashing each tuple, comparing each entry with the previous one) and half this reader, a
//! good part of whose time is the kernel serving `pread` (`tests::reader_alone`). See
//! docs/PERFORMANCE.md, "The check's scans read by a b-tree reader of our own".

use std::{fs::File, os::unix::fs::FileExt, path::Path};

use rusqlite::types::ValueRef;

use super::side_files;

/// The file, or a page of it, is not one this reader can read exactly as SQLite would: the
/// caller falls back to SQLite. Never a verdict on the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not readable by the raw b-tree reader: {0}")]
pub(crate) struct Unreadable(pub(crate) &'static str);

/// Shorthand for this module's results.
type Raw<T> = Result<T, Unreadable>;

/// SQLite's own limit on a b-tree's depth (`BTCURSOR_MAX_DEPTH`).
const MAX_DEPTH: usize = 20;

/// A database file opened for the raw scans, its header read and found readable.
#[derive(Debug)]
pub(crate) struct RawFile {
    file: File,
    /// Bytes per page.
    page_size: usize,
    /// Bytes per page b-trees use (the page size less the reserved bytes at each page's end).
    usable: usize,
    /// Pages in the file.
    pages: u32,
}

/// Where a field of a record is: its serial type and the offset of its body in the payload.
#[derive(Debug, Clone, Copy, Default)]
struct Field {
    serial: u64,
    start: usize,
}

/// A decoded record: the fields asked for, over the payload's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    payload: &'a [u8],
    fields: &'a [Field],
}

impl<'a> Record<'a> {
    /// The number of fields decoded.
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// Field `i` as SQLite hands it to a statement, or `None` past the fields decoded. A NaN
    /// real is NULL, as SQLite reads it.
    #[inline]
    pub(crate) fn value(&self, i: usize) -> Option<ValueRef<'a>> {
        let field = self.fields.get(i)?;
        let body = self.payload.get(field.start..)?;
        let int = |n: usize| -> Option<i64> {
            let bytes = body.get(..n)?;
            // Big-endian two's complement of n bytes, sign-extended.
            let first = i64::from(*bytes.first()? as i8);
            Some(
                bytes[1..]
                    .iter()
                    .fold(first, |acc, &b| (acc << 8) | i64::from(b)),
            )
        };
        Some(match field.serial {
            0 => ValueRef::Null,
            1 => ValueRef::Integer(int(1)?),
            2 => ValueRef::Integer(int(2)?),
            3 => ValueRef::Integer(int(3)?),
            4 => ValueRef::Integer(int(4)?),
            5 => ValueRef::Integer(int(6)?),
            6 => ValueRef::Integer(int(8)?),
            7 => {
                let bits: [u8; 8] = body.get(..8)?.try_into().ok()?;
                let real = f64::from_be_bytes(bits);
                if real.is_nan() {
                    ValueRef::Null
                } else {
                    ValueRef::Real(real)
                }
            }
            8 => ValueRef::Integer(0),
            9 => ValueRef::Integer(1),
            serial if serial >= 12 => {
                let len = usize::try_from((serial - 12) / 2).ok()?;
                let bytes = body.get(..len)?;
                if serial % 2 == 0 {
                    ValueRef::Blob(bytes)
                } else {
                    ValueRef::Text(bytes)
                }
            }
            _ => return None,
        })
    }

    /// The integer of field `i` if it is stored as one (serial types 1–6, 8, 9): how SQLite
    /// reads an index entry's rowid, refusing any other type as corrupt.
    pub(crate) fn integer(&self, i: usize) -> Option<i64> {
        match self.fields.get(i)?.serial {
            1..=6 | 8 | 9 => match self.value(i)? {
                ValueRef::Integer(v) => Some(v),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The size of the body of a field of serial type `serial`, if it is a valid type.
#[inline]
fn body_size(serial: u64) -> Option<u64> {
    Some(match serial {
        0 | 8 | 9 => 0,
        1..=4 => serial,
        5 => 6,
        6 | 7 => 8,
        10 | 11 => return None,
        _ => (serial - 12) / 2,
    })
}

/// A varint at `at` of `bytes`: its value and the offset past it.
#[inline]
fn varint(bytes: &[u8], at: usize) -> Raw<(u64, usize)> {
    // Most varints of a record header are one byte: serial types of small values.
    match bytes.get(at) {
        Some(&byte) if byte < 0x80 => Ok((u64::from(byte), at + 1)),
        _ => varint_long(bytes, at),
    }
}

/// [`varint`] of more than one byte.
fn varint_long(bytes: &[u8], at: usize) -> Raw<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *bytes
            .get(at + i)
            .ok_or(Unreadable("a varint runs off its page"))?;
        if i == 8 {
            return Ok(((value << 8) | u64::from(byte), at + 9));
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Ok((value, at + i + 1));
        }
    }
    Err(Unreadable("a varint runs off its page"))
}

/// A big-endian 16-bit number at `at` of `bytes`.
fn u16_at(bytes: &[u8], at: usize) -> Raw<usize> {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => Ok(usize::from(u16::from_be_bytes([a, b]))),
        _ => Err(Unreadable("a page's header runs off the page")),
    }
}

/// A big-endian 32-bit number at `at` of `bytes`.
fn u32_at(bytes: &[u8], at: usize) -> Raw<u32> {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(Unreadable("a page number runs off the page")),
    }
}

/// Decodes the record header of `payload` into `fields`: exactly `want` fields (the record
/// must have at least that many), or with `want == None` all of them, the bodies then filling
/// the payload exactly.
fn decode(payload: &[u8], want: Option<usize>, fields: &mut Vec<Field>) -> Raw<()> {
    fields.clear();
    let (header, mut at) = varint(payload, 0)?;
    let header = usize::try_from(header)
        .ok()
        .filter(|&h| h >= at && h <= payload.len())
        .ok_or(Unreadable("a record header larger than its payload"))?;
    let head = &payload[..header];
    let mut start = header;
    while at < header {
        if want.is_some_and(|w| fields.len() >= w) {
            return Ok(());
        }
        let (serial, next) = varint(head, at)?;
        at = next;
        let size = body_size(serial).ok_or(Unreadable("a record with serial type 10 or 11"))?;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .filter(|&end| end <= payload.len())
            .ok_or(Unreadable("a record's fields past its payload"))?;
        fields.push(Field { serial, start });
        start = end;
    }
    match want {
        Some(w) if fields.len() < w => Err(Unreadable("a record with fewer fields than needed")),
        None if start != payload.len() => Err(Unreadable("a record's fields short of its payload")),
        _ => Ok(()),
    }
}

/// The kind of b-tree a walk reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    Table,
    Index,
}

impl RawFile {
    /// Opens the database at `path` for the raw scans, if its header is one this reader
    /// reads exactly as SQLite would and the file alone is the database.
    ///
    /// # Errors
    /// [`Unreadable`] for anything else (the caller then reads through SQLite): a file that
    /// cannot be opened or is not a database, a page size or reserved space SQLite would not
    /// accept, text not in UTF-8, a `-wal` file with content beside it, a `-journal` file
    /// with content (a hot journal SQLite would roll back), a length not a whole number of
    /// pages, or a page count in the header that is valid and disagrees with the length.
    pub(crate) fn open(path: &Path) -> Raw<Self> {
        let [wal, _, journal] = side_files(path);
        let has_content = |side: &Path| std::fs::metadata(side).is_ok_and(|m| m.len() > 0);
        if has_content(&journal) {
            return Err(Unreadable("a journal beside the file"));
        }
        let file = File::open(path).map_err(|_| Unreadable("the file cannot be opened"))?;
        let len = file
            .metadata()
            .map_err(|_| Unreadable("the file's length cannot be read"))?
            .len();
        let mut header = [0u8; 100];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| Unreadable("the header cannot be read"))?;
        if &header[..16] != b"SQLite format 3\0" {
            return Err(Unreadable("not an SQLite file"));
        }
        // Write and read versions: 2 is WAL mode, where a `-wal` file may hold newer pages.
        if header[18] > 2 || header[19] > 2 {
            return Err(Unreadable(
                "a file format version this reader does not know",
            ));
        }
        if (header[18] == 2 || header[19] == 2) && has_content(&wal) {
            return Err(Unreadable("a write-ahead log beside the file"));
        }
        let page_size = match u16_at(&header, 16)? {
            1 => 65_536,
            size if size >= 512 && size.is_power_of_two() => size,
            _ => return Err(Unreadable("an invalid page size")),
        };
        let usable = page_size - usize::from(header[20]);
        if usable < 480 {
            return Err(Unreadable("too little usable space per page"));
        }
        if u32_at(&header, 56)? != 1 {
            return Err(Unreadable("text not in UTF-8"));
        }
        let size = page_size as u64;
        if len == 0 || len % size != 0 {
            return Err(Unreadable("a length not a whole number of pages"));
        }
        let pages =
            u32::try_from(len / size).map_err(|_| Unreadable("more pages than SQLite allows"))?;
        // The header's page count counts when it was written by the same change as the
        // "version valid for" number; SQLite then believes it over the length.
        let in_header = u32_at(&header, 28)?;
        if in_header != 0 && header[24..28] == header[92..96] && in_header != pages {
            return Err(Unreadable(
                "the header's page count disagrees with the length",
            ));
        }
        Ok(Self {
            file,
            page_size,
            usable,
            pages,
        })
    }

    /// Visits the rows of the table b-tree rooted at `root` with `lo <= rowid <= hi`, in rowid
    /// order, each with its first `fields` fields decoded. The walk stops at the first error
    /// `visit` returns.
    ///
    /// # Errors
    /// [`Unreadable`] when a page or record is not one this reader reads exactly as SQLite
    /// would (including a record with fewer than `fields` fields), or what `visit` returned.
    pub(crate) fn scan_table(
        &self,
        root: u32,
        lo: i64,
        hi: i64,
        fields: usize,
        visit: &mut impl FnMut(i64, &Record<'_>) -> Raw<()>,
    ) -> Raw<()> {
        let mut walk = Walk::new(self);
        walk.table(root, 0, lo, hi, fields, visit)
    }

    /// Visits the entries of the index b-tree rooted at `root` in b-tree order, every field
    /// of each decoded (the key columns, then the rowid). The walk stops at the first error
    /// `visit` returns.
    ///
    /// # Errors
    /// [`Unreadable`] when a page or record is not one this reader reads exactly as SQLite
    /// would, or what `visit` returned.
    pub(crate) fn scan_index(
        &self,
        root: u32,
        visit: &mut impl FnMut(&Record<'_>) -> Raw<()>,
    ) -> Raw<()> {
        let mut walk = Walk::new(self);
        walk.index(root, 0, visit)
    }

    /// Most bytes of a payload kept on its b-tree page, for `tree`.
    fn max_local(&self, tree: Tree) -> usize {
        match tree {
            Tree::Table => self.usable - 35,
            Tree::Index => (self.usable - 12) * 64 / 255 - 23,
        }
    }

    /// Fewest bytes of a spilling payload kept on its page.
    fn min_local(&self) -> usize {
        (self.usable - 12) * 32 / 255 - 23
    }

    /// How many bytes of a payload of `size` bytes stay on the b-tree page.
    fn local(&self, tree: Tree, size: u64) -> usize {
        let (max, min) = (self.max_local(tree), self.min_local());
        match usize::try_from(size) {
            Ok(size) if size <= max => size,
            _ => {
                let overflow = (self.usable - 4) as u64;
                let k = min as u64 + (size - min as u64) % overflow;
                if k <= max as u64 {
                    // k <= max, a usize.
                    k as usize
                } else {
                    min
                }
            }
        }
    }
}

/// One walk of a b-tree: its page buffers (one per depth, reused), the payload of a cell
/// that spills, the fields decoded, and the pages visited so far.
struct Walk<'f> {
    file: &'f RawFile,
    buffers: Vec<Vec<u8>>,
    payload: Vec<u8>,
    overflow_page: Vec<u8>,
    fields: Vec<Field>,
    visited: u64,
    /// Pages read ahead: `ahead_pages` of them from `ahead_first` on.
    ahead: Vec<u8>,
    ahead_first: u32,
    ahead_pages: u32,
    /// The page read last (0 before any).
    last: u32,
}

/// Pages read at once when reading ahead ([`Walk::fetch`]).
const AHEAD_PAGES: u32 = 16;

/// A b-tree page read: its type, its cells' offsets and, for an interior page, its right-most
/// child.
struct Header {
    kind: u8,
    /// Offset of the cell pointer array.
    pointers: usize,
    cells: usize,
    right: u32,
}

impl<'f> Walk<'f> {
    fn new(file: &'f RawFile) -> Self {
        Self {
            file,
            buffers: Vec::new(),
            payload: Vec::new(),
            overflow_page: Vec::new(),
            fields: Vec::new(),
            visited: 0,
            ahead: Vec::new(),
            ahead_first: 0,
            ahead_pages: 0,
            last: 0,
        }
    }

    /// Counts one more page visited: a sound b-tree and its overflow pages are at most the
    /// file's pages; more is a cycle.
    fn count_page(&mut self, page: u32) -> Raw<()> {
        if page == 0 || page > self.file.pages {
            return Err(Unreadable("a page number out of the file"));
        }
        self.visited += 1;
        if self.visited > u64::from(self.file.pages) {
            return Err(Unreadable("more pages visited than the file has"));
        }
        Ok(())
    }

    /// Reads `page` into the buffer of `depth` (taken out; the caller puts it back).
    fn read(&mut self, page: u32, depth: usize) -> Raw<Vec<u8>> {
        if depth >= MAX_DEPTH {
            return Err(Unreadable("a b-tree deeper than SQLite allows"));
        }
        self.count_page(page)?;
        while self.buffers.len() <= depth {
            self.buffers.push(Vec::new());
        }
        let mut buffer = std::mem::take(&mut self.buffers[depth]);
        buffer.resize(self.file.page_size, 0);
        self.fetch(page, &mut buffer)?;
        buffer.truncate(self.file.usable);
        Ok(buffer)
    }

    /// Reads `page` (in the file: counted already) into `into`, a page's size. Two pages read
    /// one after the other start reading ahead, [`AHEAD_PAGES`] at a time: a b-tree written in
    /// key order keeps its leaves (and a long payload its overflow pages) in file order, and
    /// one system call per page was half of the reader's time.
    fn fetch(&mut self, page: u32, into: &mut [u8]) -> Raw<()> {
        let size = self.file.page_size;
        let cannot = |_| Unreadable("a page cannot be read");
        if let Some(held) = page
            .checked_sub(self.ahead_first)
            .filter(|&i| i < self.ahead_pages)
            .and_then(|i| {
                let at = i as usize * size;
                self.ahead.get(at..at + size)
            })
        {
            into.copy_from_slice(held);
        } else if page == self.last.wrapping_add(1) {
            let pages = AHEAD_PAGES.min(self.file.pages - page + 1);
            self.ahead.resize(pages as usize * size, 0);
            self.file
                .file
                .read_exact_at(&mut self.ahead, u64::from(page - 1) * size as u64)
                .map_err(cannot)?;
            self.ahead_first = page;
            self.ahead_pages = pages;
            into.copy_from_slice(self.ahead.get(..size).ok_or(Unreadable("no page read"))?);
        } else {
            self.file
                .file
                .read_exact_at(into, u64::from(page - 1) * size as u64)
                .map_err(cannot)?;
        }
        self.last = page;
        Ok(())
    }

    /// The b-tree header of `page` (number `number`), of one of the two `kinds` (interior,
    /// leaf).
    fn header(page: &[u8], number: u32, kinds: [u8; 2]) -> Raw<Header> {
        let at = if number == 1 { 100 } else { 0 };
        let kind = *page
            .get(at)
            .ok_or(Unreadable("a page shorter than its header"))?;
        if !kinds.contains(&kind) {
            return Err(Unreadable("a page of an unexpected type"));
        }
        let interior = kind == kinds[0];
        let cells = u16_at(page, at + 3)?;
        let (pointers, right) = if interior {
            (at + 12, u32_at(page, at + 8)?)
        } else {
            (at + 8, 0)
        };
        if pointers + 2 * cells > page.len() {
            return Err(Unreadable("more cells than the page holds"));
        }
        Ok(Header {
            kind,
            pointers,
            cells,
            right,
        })
    }

    /// The offset of cell `i` of a page whose header is `header`.
    fn cell(page: &[u8], header: &Header, i: usize) -> Raw<usize> {
        let at = u16_at(page, header.pointers + 2 * i)?;
        if at < header.pointers + 2 * header.cells || at >= page.len() {
            return Err(Unreadable("a cell pointer out of the cell area"));
        }
        Ok(at)
    }

    /// Walks the table b-tree page `number` at `depth`.
    fn table(
        &mut self,
        number: u32,
        depth: usize,
        lo: i64,
        hi: i64,
        want: usize,
        visit: &mut impl FnMut(i64, &Record<'_>) -> Raw<()>,
    ) -> Raw<()> {
        let page = self.read(number, depth)?;
        let header = Self::header(&page, number, [0x05, 0x0d])?;
        if header.kind == 0x05 {
            // Child i holds the rowids in (key i-1, key i]; the right-most those past the last.
            let mut before: Option<i64> = None;
            for i in 0..header.cells {
                if before.is_some_and(|b| b >= hi) {
                    break;
                }
                let at = Self::cell(&page, &header, i)?;
                let child = u32_at(&page, at)?;
                let (key, _) = varint(&page, at + 4)?;
                let key = key as i64;
                if key >= lo {
                    self.table(child, depth + 1, lo, hi, want, visit)?;
                }
                before = Some(key);
            }
            if before.is_none_or(|b| b < hi) {
                self.table(header.right, depth + 1, lo, hi, want, visit)?;
            }
        } else {
            for i in 0..header.cells {
                let at = Self::cell(&page, &header, i)?;
                let (size, at) = varint(&page, at)?;
                let (rowid, at) = varint(&page, at)?;
                let rowid = rowid as i64;
                if rowid < lo || rowid > hi {
                    continue;
                }
                let payload = self.payload(&page, at, size, Tree::Table)?;
                let mut fields = std::mem::take(&mut self.fields);
                let body = payload.unwrap_or(&self.payload);
                let result = decode(body, Some(want), &mut fields).and_then(|()| {
                    visit(
                        rowid,
                        &Record {
                            payload: body,
                            fields: &fields,
                        },
                    )
                });
                self.fields = fields;
                result?;
            }
        }
        self.buffers[depth] = page;
        Ok(())
    }

    /// Walks the index b-tree page `number` at `depth`: an interior page's entries come
    /// after its left child's.
    fn index(
        &mut self,
        number: u32,
        depth: usize,
        visit: &mut impl FnMut(&Record<'_>) -> Raw<()>,
    ) -> Raw<()> {
        let page = self.read(number, depth)?;
        let header = Self::header(&page, number, [0x02, 0x0a])?;
        let interior = header.kind == 0x02;
        for i in 0..header.cells {
            let mut at = Self::cell(&page, &header, i)?;
            if interior {
                let child = u32_at(&page, at)?;
                self.index(child, depth + 1, visit)?;
                at += 4;
            }
            let (size, at) = varint(&page, at)?;
            let payload = self.payload(&page, at, size, Tree::Index)?;
            let mut fields = std::mem::take(&mut self.fields);
            let body = payload.unwrap_or(&self.payload);
            let result = decode(body, None, &mut fields).and_then(|()| {
                visit(&Record {
                    payload: body,
                    fields: &fields,
                })
            });
            self.fields = fields;
            result?;
        }
        if interior {
            self.index(header.right, depth + 1, visit)?;
        }
        self.buffers[depth] = page;
        Ok(())
    }

    /// The payload of `size` bytes starting at `at` of `page`: the page's bytes when it all
    /// fits there (`Some`), else (`None`) assembled in `self.payload` from the page and its
    /// overflow chain.
    fn payload<'p>(
        &mut self,
        page: &'p [u8],
        at: usize,
        size: u64,
        tree: Tree,
    ) -> Raw<Option<&'p [u8]>> {
        let local = self.file.local(tree, size);
        let here = page
            .get(at..at + local)
            .ok_or(Unreadable("a cell runs off its page"))?;
        if local as u64 == size {
            return Ok(Some(here));
        }
        // Each overflow page holds usable - 4 bytes: a longer payload than the file could
        // hold is damage, not an allocation to attempt.
        let room = (self.file.usable - 4) as u64;
        if size > u64::from(self.file.pages) * room {
            return Err(Unreadable("a payload larger than the file"));
        }
        let size = usize::try_from(size).map_err(|_| Unreadable("a payload too large"))?;
        let mut next = u32_at(page, at + local)?;
        self.payload.clear();
        self.payload.extend_from_slice(here);
        let mut buffer = std::mem::take(&mut self.overflow_page);
        buffer.resize(self.file.page_size, 0);
        while self.payload.len() < size {
            self.count_page(next)?;
            self.fetch(next, &mut buffer)?;
            let take = (size - self.payload.len()).min(self.file.usable - 4);
            self.payload.extend_from_slice(&buffer[4..4 + take]);
            next = u32_at(&buffer, 0)?;
        }
        self.overflow_page = buffer;
        Ok(None)
    }
}

mod pages;
#[cfg(test)]
mod tests;
