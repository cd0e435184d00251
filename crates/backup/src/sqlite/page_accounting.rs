//! Every page of the file used exactly once: the part of the whole-file `integrity_check` that
//! the per-table checks leave out.
//!
//! `PRAGMA quick_check(<table>)` and `integrity_check(<table>)` check one table's b-tree and
//! its indexes' b-trees page by page, but SQLite skips its file-wide bookkeeping for them: a
//! page claimed by two b-trees of *different* tables, a page no b-tree and no freelist holds
//! ("never used"), and the freelist itself (checked only when the schema's own b-tree, page 1,
//! is among the roots). Cutting the whole check into per-table statements, which run side by
//! side where the single statement is one thread, is only sound with that bookkeeping done
//! here:
//!
//! - `quick_check(sqlite_schema)`: the schema b-tree and the freelist's structure (trunk and
//!   leaf counts, pages in range), as the whole check does them;
//! - the `dbstat` virtual table walks every b-tree of the schema, overflow pages included, and
//!   names each page it reaches; the freelist's pages are read from the file (trunk pages list
//!   their leaves). Each page must be reached once, and every page of the file must be
//!   reached, except the lock-byte page SQLite never writes.
//!
//! Files with auto-vacuum keep pointer-map pages whose checks only the whole statement does;
//! the planner gives them the single statement (see [`supported`]).
//!
//! The walk is first done raw ([`RawFile::pages_used_once`]: the schema's b-trees, their
//! overflow pages, the freelist and the lock-byte page read from the file by our own reader).
//! Only a clean answer, every page used exactly once, is taken from it; on any anomaly, or a
//! file the reader does not read alone, the `dbstat` walk below runs and its messages are the
//! ones reported.

use std::{fs::File, os::unix::fs::FileExt, path::Path};

use rusqlite::Connection;

use super::{btree_reader::RawFile, index_scan::MAX_MESSAGES};

/// SQLite's lock-byte page starts at this file offset (`PENDING_BYTE`); the page holding it is
/// never used by any b-tree or the freelist.
const PENDING_BYTE: u64 = 0x4000_0000;

/// Whether the pages of the file at `conn` can be accounted for here: not with auto-vacuum,
/// whose pointer-map pages only the whole check checks.
///
/// # Errors
/// Whatever SQLite returns reading the pragmas.
pub(crate) fn supported(conn: &Connection) -> rusqlite::Result<bool> {
    let auto_vacuum: i64 = conn.pragma_query_value(None, "auto_vacuum", |row| row.get(0))?;
    Ok(auto_vacuum == 0)
}

/// The pages of the file, which must each be used once.
struct Pages {
    /// One bit per page, page 1 at bit 1.
    used: Vec<u64>,
    /// The number of pages.
    count: u32,
    /// What was found wrong.
    messages: Vec<String>,
}

impl Pages {
    fn new(count: u32) -> Self {
        Self {
            used: vec![0; (count as usize + 1).div_ceil(64)],
            count,
            messages: Vec::new(),
        }
    }

    /// Marks `page` as used by `what`; false (with a message) when it is out of the file or
    /// already used, after which the walk that reached it must stop: a cycle or a shared page
    /// would otherwise be walked again and again.
    fn claim(&mut self, page: u32, what: &str) -> bool {
        if page == 0 || page > self.count {
            self.say(format!(
                "Page {page} of {what}: out of the file's {} pages",
                self.count
            ));
            return false;
        }
        let (word, bit) = (page as usize / 64, 1u64 << (page % 64));
        if self.used[word] & bit != 0 {
            self.say(format!("Page {page}: used twice (again by {what})"));
            return false;
        }
        self.used[word] |= bit;
        true
    }

    fn say(&mut self, message: String) {
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(message);
        }
    }

    fn full(&self) -> bool {
        self.messages.len() >= MAX_MESSAGES
    }

    /// Every page not claimed, as "never used" messages.
    fn report_unused(&mut self) {
        for page in 1..=self.count {
            if self.full() {
                break;
            }
            if self.used[page as usize / 64] & (1u64 << (page % 64)) == 0 {
                self.say(format!("Page {page}: never used"));
            }
        }
    }
}

/// Checks the schema b-tree and the freelist, then that every page of the file at `path`
/// (opened as `conn`) is used exactly once. Returns the messages (empty when all is well).
///
/// # Errors
/// Whatever SQLite returns while reading; a walk that stops on damage is a message, not an
/// error.
pub(crate) fn account(conn: &Connection, path: &Path) -> rusqlite::Result<Vec<String>> {
    let mut messages: Vec<String> = conn
        .prepare("PRAGMA quick_check(sqlite_schema)")?
        .query_map([], |row| row.get::<_, String>(0))?
        .filter(|m| m.as_ref().map_or(true, |m| m != "ok"))
        .collect::<rusqlite::Result<_>>()?;
    if used_once_raw(conn, path)? {
        return Ok(messages);
    }
    let count: u32 = conn.pragma_query_value(None, "page_count", |row| row.get(0))?;
    let page_size: u32 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
    let mut pages = Pages::new(count);
    let lock_byte = u32::try_from(PENDING_BYTE / u64::from(page_size) + 1).unwrap_or(u32::MAX);
    if lock_byte <= count {
        pages.claim(lock_byte, "the lock byte");
    }
    let mut walk = conn.prepare("SELECT pageno, name FROM dbstat")?;
    let mut rows = walk.query([])?;
    while let Some(row) = rows.next()? {
        let page: i64 = row.get(0)?;
        let name: String = row.get(1)?;
        if !pages.claim(u32::try_from(page).unwrap_or(0), &name) {
            break;
        }
    }
    drop(rows);
    match File::open(path) {
        Ok(file) => freelist(&file, page_size, &mut pages),
        Err(e) => pages.say(format!("the file cannot be read: {e}")),
    }
    pages.report_unused();
    messages.extend(pages.messages);
    messages.truncate(MAX_MESSAGES);
    Ok(messages)
}

/// Whether the raw reader ([`RawFile::pages_used_once`]) finds every page of the file used
/// once, by the b-trees of the schema (page 1's included), the freelist or the lock byte.
/// Anything else (a root that is not a page number, a file it does not read alone, any
/// anomaly) is `false`: the `dbstat` walk then runs and says what is wrong.
fn used_once_raw(conn: &Connection, path: &Path) -> rusqlite::Result<bool> {
    let roots: Vec<i64> = conn
        .prepare("SELECT rootpage FROM sqlite_schema WHERE rootpage IS NOT 0")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()
        .unwrap_or_default();
    let Ok(mut roots) = roots
        .into_iter()
        .map(u32::try_from)
        .collect::<Result<Vec<u32>, _>>()
    else {
        return Ok(false);
    };
    roots.insert(0, 1);
    Ok(RawFile::open(path).is_ok_and(|file| file.pages_used_once(&roots).is_ok()))
}

/// A big-endian 32-bit number of a page at `at`.
fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the header's vacuum fields and claims the freelist's pages, read from the file: a
/// chain of trunk pages from the header's first, each listing its leaves. The freelist's
/// structure is `quick_check(sqlite_schema)`'s to judge; here it is only followed as far as it
/// makes sense.
fn freelist(file: &File, page_size: u32, pages: &mut Pages) {
    let read = |page: u32, buffer: &mut [u8]| {
        file.read_exact_at(buffer, u64::from(page - 1) * u64::from(page_size))
    };
    let mut header = [0u8; 100];
    if let Err(e) = read(1, &mut header) {
        pages.say(format!("the header cannot be read: {e}"));
        return;
    }
    // The whole check's own header test; with auto-vacuum (offset 52 non-zero) the planner
    // never gets here.
    if word(&header, 52) == 0 && word(&header, 64) != 0 {
        pages.say("incremental_vacuum enabled with a max rootpage of zero".to_owned());
    }
    let mut trunk = word(&header, 32);
    let mut buffer = vec![0u8; page_size as usize];
    // Leaf numbers a trunk page can hold.
    let room = (page_size as usize / 4).saturating_sub(2);
    while trunk != 0 && !pages.full() {
        if !pages.claim(trunk, "the freelist") {
            return;
        }
        if let Err(e) = read(trunk, &mut buffer) {
            pages.say(format!("Freelist: trunk page {trunk} cannot be read: {e}"));
            return;
        }
        let leaves = (word(&buffer, 4) as usize).min(room);
        for at in 0..leaves {
            if !pages.claim(word(&buffer, 8 + 4 * at), "the freelist") {
                return;
            }
        }
        trunk = word(&buffer, 0);
    }
}
