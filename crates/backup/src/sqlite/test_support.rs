//! What the SQLite checks' tests share: SQLite's own verdicts, and seeded damage.

use std::path::Path;

use rusqlite::Connection;

use super::index_scan;

/// SQLite's own `PRAGMA <pragma>` (`integrity_check`, `quick_check`, …) of the copy at
/// `path`, its error as the one message if it fails.
pub(crate) fn sqlite_pragma(path: &Path, pragma: &str) -> Vec<String> {
    let said = index_scan::open(path).and_then(|conn| {
        let mut statement = conn.prepare(&format!("PRAGMA {pragma}"))?;
        statement
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()
    });
    said.unwrap_or_else(|e| vec![e.to_string()])
}

/// The names of the database's tables, sorted.
pub(crate) fn table_names(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Seeded random damage to a file's bytes: `HOTEL_DAMAGE_SEED` replaces the test's own seed,
/// so that other cases can be tried without changing the test.
pub(crate) struct Damage {
    state: u64,
}

impl Damage {
    /// Page size of the files damaged (SQLite's default).
    const PAGE: usize = 4096;

    pub(crate) fn new(seed: u64) -> Self {
        let seed = std::env::var("HOTEL_DAMAGE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed);
        Self { state: seed.max(1) }
    }

    /// The next number of a xorshift sequence.
    pub(crate) fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Where case `case` damages a file of `len` bytes: even cases in a page's header and
    /// cell pointers (structure), odd ones anywhere (mostly records).
    pub(crate) fn offset(&mut self, case: usize, len: usize) -> usize {
        if case.is_multiple_of(2) {
            (self.next() as usize % (len / Self::PAGE)) * Self::PAGE + self.next() as usize % 48
        } else {
            self.next() as usize % len
        }
    }

    /// Flips one bit of `byte`.
    pub(crate) fn flip(&mut self, byte: &mut u8) {
        *byte ^= 1 << (self.next() % 8);
    }
}
