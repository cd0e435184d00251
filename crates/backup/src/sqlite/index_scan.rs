//! `PRAGMA integrity_check` of a restored copy done with sequential reads instead of random
//! ones.
//!
//! `integrity_check` is `quick_check` (every b-tree's pages, cells and records in order, the
//! freelist, no page used twice or never, NOT NULL, CHECK and STRICT types) plus, for every
//! table, the rows against each of its indexes: every row is *looked up* in every index (a
//! descent of the index b-tree per row and index), the number of entries of each index is
//! counted, and each entry of a UNIQUE index is compared with the next one. On the bookings
//! table those lookups are most of the whole check's time.
//!
//! Here the second part is done by scans. For each index, an order-independent digest of its
//! entries (the wrapping sum of a 64-bit hash of each `(indexed columns…, rowid)` tuple, and
//! their number) is computed twice: from a covering scan of the index itself (`INDEXED BY`,
//! entries in b-tree order) and from a scan of the table (`NOT INDEXED`, in rowid ranges on
//! several connections at once). The same multiset of entries on both sides is what the
//! lookups and the count establish; while scanning the index its entries are also checked to
//! be in strictly increasing key order (a lookup in an index whose order is broken can miss an
//! entry that is there) and, for a UNIQUE index, no two adjacent entries share a key with no
//! NULL in it. A stale entry changes a hash; a missing or extra one changes the count too.
//!
//! Only what the scans can state exactly is checked this way. A table falls back to
//! `integrity_check(<table>)` when one of its indexes is on an expression, is partial, uses a
//! collation other than BINARY (the order would be the collation's, and integrity_check also
//! compares the text byte for byte), when it is a WITHOUT ROWID table, when it has a column
//! named like the rowid, or when SQLite would not read the index as a covering scan; a
//! database with a virtual table, or not in UTF-8, gets the single `integrity_check`.

use std::{
    cmp::Ordering,
    hash::{DefaultHasher, Hasher},
    path::Path,
    sync::Mutex,
};

use rusqlite::{Connection, OpenFlags, types::ValueRef};

use super::quote;
use crate::VerifyDepth;

/// At most this many messages are kept.
pub(crate) const MAX_MESSAGES: usize = 20;

/// Below this many rowids a table is scanned in one piece.
const RANGE_ROWS: i64 = 40_000;

/// One index checked by scans.
#[derive(Debug)]
struct IndexPlan {
    /// The index's name.
    name: String,
    /// Position of its table in [`Plan::tables`].
    table: usize,
    /// Its key columns, in index order, as positions in the table's `columns`.
    key: Vec<usize>,
    /// Whether each key column is in descending order.
    desc: Vec<bool>,
    /// Whether two entries may not share a key without NULL.
    unique: bool,
}

/// One table whose indexes are checked by scans.
#[derive(Debug)]
struct TablePlan {
    /// The table's name.
    name: String,
    /// Every column any of its indexes holds, each once.
    columns: Vec<String>,
    /// Its indexes, as positions in [`Plan::indexes`].
    indexes: Vec<usize>,
}

/// A piece of the check that runs on a connection of its own.
#[derive(Debug, Clone)]
enum Job {
    /// A pragma whose result rows are messages (`ok` when nothing is wrong).
    Pragma(String),
    /// The digests of the table's indexes from its rows with `lo <= rowid <= hi`.
    Rows { table: usize, lo: i64, hi: i64 },
    /// The digest, order and uniqueness of one index, from the index.
    Entries { index: usize },
}

/// What a job found.
#[derive(Debug)]
enum Found {
    /// Messages of a pragma, `ok` left out.
    Messages(Vec<String>),
    /// Digests of the table's indexes, in the order of [`TablePlan::indexes`].
    Rows { table: usize, digests: Vec<Digest> },
    /// An index's digest and what its scan found wrong.
    Entries {
        index: usize,
        digest: Digest,
        messages: Vec<String>,
    },
}

/// An order-independent digest of a multiset of tuples.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Digest {
    /// Wrapping sum of the tuples' hashes.
    sum: u64,
    /// Number of tuples.
    count: u64,
}

impl Digest {
    fn add(&mut self, hash: u64) {
        self.sum = self.sum.wrapping_add(hash);
        self.count += 1;
    }

    fn merge(&mut self, other: Self) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.count += other.count;
    }
}

/// Everything to run, and how to put the pieces back together.
#[derive(Debug, Default)]
struct Plan {
    jobs: Vec<Job>,
    tables: Vec<TablePlan>,
    indexes: Vec<IndexPlan>,
}

/// Runs the check of `depth` on the copy at `path` on up to `workers` connections, and returns
/// its messages: `["ok"]` when nothing is wrong, like the pragma.
///
/// # Errors
/// Whatever SQLite returns while opening or reading the copy (a file that is not a database
/// fails here).
pub(crate) fn integrity(
    path: &Path,
    depth: VerifyDepth,
    workers: usize,
) -> rusqlite::Result<Vec<String>> {
    let plan = match depth {
        VerifyDepth::Quick => Plan {
            jobs: vec![Job::Pragma(format!("PRAGMA quick_check({MAX_MESSAGES})"))],
            ..Plan::default()
        },
        VerifyDepth::Full => plan(&open(path)?, workers)?,
    };
    let workers = workers.clamp(1, plan.jobs.len().max(1));
    let queue = Mutex::new(plan.jobs.iter());
    let next = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next()
    };
    let found: Vec<Found> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let conn = open(path)?;
                    let mut found = Vec::new();
                    while let Some(job) = next() {
                        found.push(run(&conn, &plan, job)?);
                    }
                    Ok::<_, rusqlite::Error>(found)
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(found) => all.extend(found?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok::<_, rusqlite::Error>(all)
    })?;
    let mut messages = assemble(&plan, found);
    if messages.is_empty() {
        return Ok(vec!["ok".to_owned()]);
    }
    messages.truncate(MAX_MESSAGES);
    Ok(messages)
}

/// Opens the copy read-only and immutable (nothing else touches it, so no locking), read
/// through a memory map.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The copy is a private file of this process: a mapping is safe, and saves a system call
    // and a copy per page read.
    conn.pragma_update(None, "mmap_size", 1_073_741_824_i64)?;
    conn.pragma_update(None, "cache_size", -65_536_i64)?;
    Ok(conn)
}

/// Cuts the full check into jobs: `quick_check` for the whole file, and for each table either
/// its index scans and row ranges or its `integrity_check(<table>)`. The largest first.
fn plan(conn: &Connection, workers: usize) -> rusqlite::Result<Plan> {
    let whole = || Plan {
        jobs: vec![Job::Pragma(format!(
            "PRAGMA integrity_check({MAX_MESSAGES})"
        ))],
        ..Plan::default()
    };
    let encoding: String = conn.pragma_query_value(None, "encoding", |row| row.get(0))?;
    let tables: Vec<(String, String, bool)> = conn
        .prepare(
            "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' \
             AND name NOT IN ('sqlite_schema', 'sqlite_master')",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if encoding != "UTF-8" || tables.iter().any(|(_, kind, _)| kind == "virtual") {
        return Ok(whole());
    }
    let mut plan = Plan::default();
    // (estimated cost, job) before sorting.
    let mut costed: Vec<(i64, Job)> = Vec::new();
    for (name, kind, without_rowid) in tables {
        if kind != "table" && kind != "shadow" {
            continue;
        }
        let bounds: (Option<i64>, Option<i64>) = if without_rowid {
            (None, None)
        } else {
            conn.query_row(
                &format!("SELECT min(rowid), max(rowid) FROM {}", quote(&name)),
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?
        };
        let span = match bounds {
            (Some(lo), Some(hi)) => hi.saturating_sub(lo).saturating_add(1),
            _ => 0,
        };
        let index_count: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_index_list(?1)",
            [&name],
            |row| row.get(0),
        )?;
        let Some(table) = (!without_rowid)
            .then(|| table_plan(conn, &name, plan.tables.len(), plan.indexes.len()))
            .transpose()?
            .flatten()
        else {
            costed.push((
                span.saturating_mul(1 + 4 * index_count),
                Job::Pragma(format!("PRAGMA integrity_check({})", quote(&name))),
            ));
            continue;
        };
        let (table_plan, indexes) = table;
        let position = plan.tables.len();
        for index in table_plan.indexes.iter().copied() {
            costed.push((span, Job::Entries { index }));
        }
        plan.indexes.extend(indexes);
        plan.tables.push(table_plan);
        if let (Some(lo), Some(hi)) = bounds {
            let pieces = (span / RANGE_ROWS).clamp(1, (2 * workers).max(1) as i64);
            let width = span / pieces + 1;
            let mut start = lo;
            while start <= hi {
                let end = start.saturating_add(width - 1).min(hi);
                costed.push((
                    width.saturating_mul(1 + index_count) / 2,
                    Job::Rows {
                        table: position,
                        lo: start,
                        hi: end,
                    },
                ));
                if end == hi {
                    break;
                }
                start = end + 1;
            }
        }
    }
    let pages: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0))?;
    // quick_check reads every page once; weighed like a table scan of as many rows as there
    // are pages times a few cells each.
    costed.push((
        pages.saturating_mul(16),
        Job::Pragma(format!("PRAGMA quick_check({MAX_MESSAGES})")),
    ));
    costed.sort_by_key(|(cost, _)| std::cmp::Reverse(*cost));
    plan.jobs = costed.into_iter().map(|(_, job)| job).collect();
    Ok(plan)
}

/// How a table's indexes are checked by scans, or `None` when one of them cannot be (the
/// table then gets `integrity_check(<table>)`). `table` and `first_index` are the positions
/// the table and its first index will have in the plan.
fn table_plan(
    conn: &Connection,
    name: &str,
    table: usize,
    first_index: usize,
) -> rusqlite::Result<Option<(TablePlan, Vec<IndexPlan>)>> {
    let all_columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_xinfo(?1)")?
        .query_map([name], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if all_columns
        .iter()
        .any(|c| ["rowid", "_rowid_", "oid"].contains(&c.to_ascii_lowercase().as_str()))
    {
        return Ok(None);
    }
    let list: Vec<(String, bool, bool)> = conn
        .prepare("SELECT name, \"unique\", partial FROM pragma_index_list(?1) ORDER BY name")?
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut columns: Vec<String> = Vec::new();
    let mut indexes = Vec::new();
    for (index_name, unique, partial) in list {
        if partial {
            return Ok(None);
        }
        let xinfo: Vec<(i64, Option<String>, bool, Option<String>)> = conn
            .prepare("SELECT cid, name, \"desc\", coll FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno")?
            .query_map([&index_name], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut key = Vec::new();
        let mut desc = Vec::new();
        for (cid, column, descending, collation) in xinfo {
            // cid -2 is an expression; -1 the rowid itself (only in WITHOUT ROWID tables).
            let Some(column) = column.filter(|_| cid >= 0) else {
                return Ok(None);
            };
            if !collation.is_some_and(|c| c.eq_ignore_ascii_case("BINARY")) {
                return Ok(None);
            }
            let at = match columns.iter().position(|c| *c == column) {
                Some(at) => at,
                None => {
                    columns.push(column);
                    columns.len() - 1
                }
            };
            key.push(at);
            desc.push(descending);
        }
        let select = key
            .iter()
            .map(|&at| quote(&columns[at]))
            .collect::<Vec<_>>()
            .join(", ");
        // Only a covering scan reads the index's own entries in its own order.
        let detail: String = conn.query_row(
            &format!(
                "EXPLAIN QUERY PLAN SELECT {select}, rowid FROM {} INDEXED BY {}",
                quote(name),
                quote(&index_name)
            ),
            [],
            |row| row.get(3),
        )?;
        if !detail.contains("COVERING INDEX") {
            return Ok(None);
        }
        indexes.push(IndexPlan {
            name: index_name,
            table,
            key,
            desc,
            unique,
        });
    }
    Ok(Some((
        TablePlan {
            name: name.to_owned(),
            columns,
            indexes: (first_index..first_index + indexes.len()).collect(),
        },
        indexes,
    )))
}

/// Runs one job on `conn`.
fn run(conn: &Connection, plan: &Plan, job: &Job) -> rusqlite::Result<Found> {
    match job {
        Job::Pragma(sql) => {
            let messages = conn
                .prepare(sql)?
                .query_map([], |row| row.get::<_, String>(0))?
                .filter(|m| m.as_ref().map_or(true, |m| m != "ok"))
                .collect::<rusqlite::Result<_>>()?;
            Ok(Found::Messages(messages))
        }
        Job::Rows { table, lo, hi } => {
            let t = &plan.tables[*table];
            let indexes: Vec<&IndexPlan> = t.indexes.iter().map(|&i| &plan.indexes[i]).collect();
            let mut digests = vec![Digest::default(); indexes.len()];
            let columns = t
                .columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", ");
            let mut statement = conn.prepare(&format!(
                "SELECT rowid{}{columns} FROM {} NOT INDEXED WHERE rowid BETWEEN ?1 AND ?2",
                if columns.is_empty() { "" } else { ", " },
                quote(&t.name)
            ))?;
            let mut rows = statement.query([lo, hi])?;
            while let Some(row) = rows.next()? {
                let rowid: i64 = row.get(0)?;
                for (index, digest) in indexes.iter().zip(&mut digests) {
                    let mut hasher = DefaultHasher::new();
                    for &at in &index.key {
                        hash_value(&mut hasher, row.get_ref(at + 1)?);
                    }
                    hasher.write_i64(rowid);
                    digest.add(hasher.finish());
                }
            }
            Ok(Found::Rows {
                table: *table,
                digests,
            })
        }
        Job::Entries { index } => scan_index(conn, plan, *index),
    }
}

/// Reads an index's entries in b-tree order: their digest, and whether they are in strictly
/// increasing order and, for a UNIQUE index, distinct.
fn scan_index(conn: &Connection, plan: &Plan, position: usize) -> rusqlite::Result<Found> {
    let index = &plan.indexes[position];
    let table = &plan.tables[index.table];
    let select = index
        .key
        .iter()
        .map(|&at| quote(&table.columns[at]))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statement = conn.prepare(&format!(
        "SELECT {select}, rowid FROM {} INDEXED BY {}",
        quote(&table.name),
        quote(&index.name)
    ))?;
    let width = index.key.len();
    let mut rows = statement.query([])?;
    let mut digest = Digest::default();
    let mut messages = Vec::new();
    // The previous entry's key (buffers reused from entry to entry) and rowid.
    let mut before = vec![Held::default(); width];
    let mut before_rowid: Option<i64> = None;
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(width)?;
        let mut hasher = DefaultHasher::new();
        let mut order = Ordering::Equal;
        let mut has_null = false;
        for (column, held) in before.iter().enumerate() {
            let value = row.get_ref(column)?;
            hash_value(&mut hasher, value);
            has_null |= value == ValueRef::Null;
            if order == Ordering::Equal && before_rowid.is_some() {
                order = compare(held.as_value(), value);
                if index.desc[column] {
                    order = order.reverse();
                }
            }
        }
        hasher.write_i64(rowid);
        digest.add(hasher.finish());
        if let Some(before_rowid) = before_rowid {
            let key_order = order;
            if key_order == Ordering::Equal && index.unique && !has_null {
                messages.push(format!(
                    "non-unique entry in index {} (rowid {rowid})",
                    index.name
                ));
            }
            if key_order.then(before_rowid.cmp(&rowid)) != Ordering::Less {
                messages.push(format!(
                    "entries out of order in index {} (at rowid {rowid})",
                    index.name
                ));
            }
            if messages.len() >= MAX_MESSAGES {
                break;
            }
        }
        for (column, held) in before.iter_mut().enumerate() {
            held.hold(row.get_ref(column)?);
        }
        before_rowid = Some(rowid);
    }
    Ok(Found::Entries {
        index: position,
        digest,
        messages,
    })
}

/// A copy of a value that outlives its row, its buffer reused.
#[derive(Debug, Default, Clone)]
struct Held {
    /// The value's class and number; for text and blobs, `bytes` holds the content.
    kind: HeldKind,
    bytes: Vec<u8>,
}

/// What a [`Held`] holds.
#[derive(Debug, Default, Clone, Copy)]
enum HeldKind {
    #[default]
    Null,
    Integer(i64),
    Real(f64),
    Text,
    Blob,
}

impl Held {
    fn hold(&mut self, value: ValueRef<'_>) {
        self.kind = match value {
            ValueRef::Null => HeldKind::Null,
            ValueRef::Integer(i) => HeldKind::Integer(i),
            ValueRef::Real(r) => HeldKind::Real(r),
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                self.bytes.clear();
                self.bytes.extend_from_slice(bytes);
                if matches!(value, ValueRef::Text(_)) {
                    HeldKind::Text
                } else {
                    HeldKind::Blob
                }
            }
        };
    }

    fn as_value(&self) -> ValueRef<'_> {
        match self.kind {
            HeldKind::Null => ValueRef::Null,
            HeldKind::Integer(i) => ValueRef::Integer(i),
            HeldKind::Real(r) => ValueRef::Real(r),
            HeldKind::Text => ValueRef::Text(&self.bytes),
            HeldKind::Blob => ValueRef::Blob(&self.bytes),
        }
    }
}

/// Adds a value to a tuple's hash so that values SQLite holds equal under BINARY collation
/// hash alike: an integer and a real of the same value are one number, text and a blob of the
/// same bytes are not.
fn hash_value(hasher: &mut DefaultHasher, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => hasher.write_u8(0),
        ValueRef::Integer(i) => {
            hasher.write_u8(1);
            hasher.write_i64(i);
        }
        ValueRef::Real(r) => match exact_integer(r) {
            Some(i) => {
                hasher.write_u8(1);
                hasher.write_i64(i);
            }
            None => {
                hasher.write_u8(2);
                hasher.write_u64(r.to_bits());
            }
        },
        ValueRef::Text(bytes) => {
            hasher.write_u8(3);
            hasher.write_usize(bytes.len());
            hasher.write(bytes);
        }
        ValueRef::Blob(bytes) => {
            hasher.write_u8(4);
            hasher.write_usize(bytes.len());
            hasher.write(bytes);
        }
    }
}

/// The integer a real holds exactly, if any.
fn exact_integer(r: f64) -> Option<i64> {
    // 2^63 is exact as an f64; every integral f64 in [-2^63, 2^63) converts exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (r.fract() == 0.0 && (-LIMIT..LIMIT).contains(&r)).then_some(r as i64)
}

/// SQLite's order of two values under BINARY collation: NULL, then numbers by value, then text
/// and blobs byte by byte.
fn compare(a: ValueRef<'_>, b: ValueRef<'_>) -> Ordering {
    fn class(v: ValueRef<'_>) -> u8 {
        match v {
            ValueRef::Null => 0,
            ValueRef::Integer(_) | ValueRef::Real(_) => 1,
            ValueRef::Text(_) => 2,
            ValueRef::Blob(_) => 3,
        }
    }
    match (a, b) {
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x.cmp(&y),
        (ValueRef::Real(x), ValueRef::Real(y)) => x.total_cmp(&y),
        (ValueRef::Integer(i), ValueRef::Real(r)) => compare_int_real(i, r),
        (ValueRef::Real(r), ValueRef::Integer(i)) => compare_int_real(i, r).reverse(),
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x.cmp(y),
        _ => class(a).cmp(&class(b)),
    }
}

/// An integer against a real, exactly (an f64 cannot hold every i64).
fn compare_int_real(i: i64, r: f64) -> Ordering {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if r >= LIMIT {
        return Ordering::Less;
    }
    if r < -LIMIT {
        return Ordering::Greater;
    }
    let floor = r.floor();
    // In range: the floor converts exactly.
    match i.cmp(&(floor as i64)) {
        Ordering::Equal if r > floor => Ordering::Less,
        other => other,
    }
}

/// Puts the jobs' findings together: every message, and for each index the digest of its
/// entries against the digest of its table's rows.
fn assemble(plan: &Plan, found: Vec<Found>) -> Vec<String> {
    let mut messages = Vec::new();
    let mut from_rows = vec![Digest::default(); plan.indexes.len()];
    let mut from_entries = vec![Digest::default(); plan.indexes.len()];
    for found in found {
        match found {
            Found::Messages(m) => messages.extend(m),
            Found::Rows { table, digests } => {
                for (&index, digest) in plan.tables[table].indexes.iter().zip(digests) {
                    from_rows[index].merge(digest);
                }
            }
            Found::Entries {
                index,
                digest,
                messages: m,
            } => {
                from_entries[index] = digest;
                messages.extend(m);
            }
        }
    }
    for (index, (rows, entries)) in plan.indexes.iter().zip(from_rows.iter().zip(&from_entries)) {
        let table = &plan.tables[index.table].name;
        if rows.count != entries.count {
            messages.push(format!(
                "wrong # of entries in index {}: {} for {} rows of {table}",
                index.name, entries.count, rows.count
            ));
        } else if rows.sum != entries.sum {
            messages.push(format!(
                "index {} does not match the rows of {table}: entries differ",
                index.name
            ));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Two tables with indexes (one UNIQUE, one on two columns with one descending) and a
    /// few hundred rows, then each step of `damage` on a connection of its own (a schema
    /// written with `writable_schema` is read again by the next one).
    fn database(dir: &Path, name: &str, damage: &[&str]) -> PathBuf {
        let path = dir.join(name);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE guests (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT,
                 score REAL);
             CREATE INDEX guests_city ON guests (city);
             CREATE UNIQUE INDEX guests_name ON guests (name);
             CREATE TABLE stays (id INTEGER PRIMARY KEY, guest_id INTEGER NOT NULL
                 REFERENCES guests (id), nights INTEGER, note TEXT);
             CREATE INDEX stays_guest ON stays (guest_id);
             CREATE INDEX stays_nights ON stays (nights, guest_id DESC);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
             INSERT INTO guests (name, city, score)
                 SELECT 'guest ' || i, CASE WHEN i % 11 THEN 'city ' || (i % 7) END, i / 4.0
                 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 900)
             INSERT INTO stays (guest_id, nights, note)
                 SELECT 1 + i % 300, i % 5, hex(randomblob(200)) FROM n;",
        )
        .unwrap();
        drop(conn);
        for step in damage {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(step).unwrap();
        }
        path
    }

    /// Hides `index` from SQLite (its pages stay), so that the next step changes the table
    /// without it; [`SHOW`] puts it back as it was.
    fn hide(index: &str) -> String {
        format!(
            "PRAGMA writable_schema = ON;
             CREATE TABLE hidden AS SELECT * FROM sqlite_schema WHERE name = '{index}';
             DELETE FROM sqlite_schema WHERE name = '{index}';"
        )
    }

    /// Puts back the index [`hide`] hid.
    const SHOW: &str = "PRAGMA writable_schema = ON;
         INSERT INTO sqlite_schema SELECT * FROM hidden;";

    /// SQLite's own `integrity_check`, its error as the one message if it fails.
    fn sqlite_says(path: &Path) -> Vec<String> {
        let conn = open(path).unwrap();
        let said = conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()
            });
        said.unwrap_or_else(|e| vec![e.to_string()])
    }

    fn we_say(path: &Path) -> Vec<String> {
        integrity(path, VerifyDepth::Full, 3).unwrap_or_else(|e| vec![e.to_string()])
    }

    #[test]
    fn a_sound_database_passes_and_every_index_is_checked_by_scans() {
        let dir = tempfile::tempdir().unwrap();
        let good = database(dir.path(), "good.sqlite", &[]);
        assert_eq!(sqlite_says(&good), ["ok"]);
        assert_eq!(we_say(&good), ["ok"]);
        let plan = plan(&open(&good).unwrap(), 3).unwrap();
        assert_eq!(plan.indexes.len(), 4, "{plan:?}");
        let pragmas: Vec<&Job> = plan
            .jobs
            .iter()
            .filter(|job| matches!(job, Job::Pragma(_)))
            .collect();
        assert!(
            matches!(pragmas.as_slice(), [Job::Pragma(sql)] if sql.starts_with("PRAGMA quick_check")),
            "{pragmas:?}"
        );
    }

    /// Each damage is one SQLite's own `integrity_check` reports; the scans must report it too.
    #[test]
    fn the_scans_find_what_integrity_check_finds() {
        let dir = tempfile::tempdir().unwrap();
        let hide_nights = hide("stays_nights");
        let hide_name = hide("guests_name");
        let cases: Vec<(&str, Vec<&str>, &str)> = vec![
            // A row changed while its index was not kept: the entry is stale.
            (
                "stale-entry",
                vec![&hide_nights, "UPDATE stays SET nights = 7 WHERE id = 10", SHOW],
                "stays_nights",
            ),
            // A row added without its entry.
            (
                "missing-entry",
                vec![
                    &hide_nights,
                    "INSERT INTO stays (guest_id, nights) VALUES (3, 2)",
                    SHOW,
                ],
                "wrong # of entries in index stays_nights",
            ),
            // A row removed, its entry left behind.
            (
                "extra-entry",
                vec![&hide_nights, "DELETE FROM stays WHERE id = 500", SHOW],
                "wrong # of entries in index stays_nights",
            ),
            // A stale entry of a UNIQUE index, and the key now twice in the table.
            (
                "unique-stale",
                vec![
                    &hide_name,
                    "UPDATE guests SET name = 'guest 1' WHERE id = 2",
                    SHOW,
                ],
                "guests_name",
            ),
            // An index consistent with its rows, declared UNIQUE over duplicate keys.
            (
                "duplicate-in-unique",
                vec![
                    "PRAGMA writable_schema = ON;
                     UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX guests_city ON guests (city)'
                         WHERE name = 'guests_city';",
                ],
                "non-unique entry in index guests_city",
            ),
            // The same entries, but the declared order is not theirs: lookups go astray.
            (
                "out-of-order",
                vec![
                    "PRAGMA writable_schema = ON;
                     UPDATE sqlite_schema
                         SET sql = 'CREATE INDEX stays_nights ON stays (nights DESC, guest_id DESC)'
                         WHERE name = 'stays_nights';",
                ],
                "entries out of order in index stays_nights",
            ),
            // An index on another column than its entries hold.
            (
                "wrong-column",
                vec![
                    "PRAGMA writable_schema = ON;
                     UPDATE sqlite_schema SET sql = 'CREATE INDEX stays_guest ON stays (nights)'
                         WHERE name = 'stays_guest';",
                ],
                "stays_guest",
            ),
            // Pages no b-tree uses.
            (
                "orphan-pages",
                vec![
                    "PRAGMA writable_schema = ON;
                     DELETE FROM sqlite_schema WHERE name = 'stays_nights';",
                ],
                "never used",
            ),
        ];
        for (name, steps, expected) in cases {
            let path = database(dir.path(), &format!("{name}.sqlite"), &steps);
            let theirs = sqlite_says(&path);
            assert_ne!(theirs, ["ok"], "{name}: the damage is not one SQLite sees");
            let ours = we_say(&path);
            assert!(
                ours.iter().any(|m| m.contains(expected)),
                "{name}: expected {expected:?} in {ours:?} (integrity_check: {theirs:?})"
            );
        }
    }

    /// A page of a b-tree overwritten with garbage fails the check (as a message or as the
    /// error SQLite returns while scanning).
    #[test]
    fn a_broken_btree_page_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path(), "broken.sqlite", &[]);
        let (root, page_size): (i64, i64) = {
            let conn = open(&path).unwrap();
            let root = conn
                .query_row(
                    "SELECT rootpage FROM sqlite_schema WHERE name = 'stays_guest'",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            let size = conn
                .pragma_query_value(None, "page_size", |row| row.get(0))
                .unwrap();
            (root, size)
        };
        let mut bytes = std::fs::read(&path).unwrap();
        let start = usize::try_from((root - 1) * page_size).unwrap();
        // The page header: an invalid page type, then nonsense cell pointers.
        for (i, byte) in bytes[start..start + 64].iter_mut().enumerate() {
            *byte = 0xA5 ^ (i as u8);
        }
        std::fs::write(&path, bytes).unwrap();
        assert_ne!(sqlite_says(&path), ["ok"]);
        let ours = we_say(&path);
        assert_ne!(ours, ["ok"]);
        assert!(!ours.is_empty());
    }

    /// A table with an index on an expression is checked by `integrity_check(<table>)`, which
    /// still finds a stale entry there; the other tables keep their scans.
    #[test]
    fn an_expression_index_falls_back_to_integrity_check_of_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(
            dir.path(),
            "expression.sqlite",
            &[
                "CREATE INDEX stays_upper ON stays (upper(note))",
                &hide("stays_upper"),
                "UPDATE stays SET note = 'changed' WHERE id = 4",
                SHOW,
            ],
        );
        let plan = plan(&open(&path).unwrap(), 2).unwrap();
        assert!(
            plan.jobs.iter().any(
                |job| matches!(job, Job::Pragma(sql) if sql == "PRAGMA integrity_check(\"stays\")")
            ),
            "{plan:?}"
        );
        assert!(plan.indexes.iter().any(|i| i.name == "guests_city"));
        let ours = we_say(&path);
        assert!(ours.iter().any(|m| m.contains("stays_upper")), "{ours:?}");
    }

    #[test]
    fn values_order_as_sqlite_orders_them() {
        use ValueRef::{Blob, Integer, Null, Real, Text};
        let ascending = [
            Null,
            Integer(i64::MIN),
            Real(-1.5),
            Integer(-1),
            Real(0.0),
            Integer(1),
            Real(1.5),
            Integer(2),
            Real(9.2e18),
            Integer(i64::MAX),
            Real(1e19),
            Text(b""),
            Text(b"a"),
            Text(b"b"),
            Blob(b""),
            Blob(b"a"),
        ];
        for pair in ascending.windows(2) {
            assert_eq!(compare(pair[0], pair[1]), Ordering::Less, "{pair:?}");
            assert_eq!(compare(pair[1], pair[0]), Ordering::Greater, "{pair:?}");
        }
        assert_eq!(compare(Integer(3), Real(3.0)), Ordering::Equal);
        let hash = |v| {
            let mut h = DefaultHasher::new();
            hash_value(&mut h, v);
            h.finish()
        };
        assert_eq!(hash(Integer(3)), hash(Real(3.0)));
        assert_ne!(hash(Text(b"a")), hash(Blob(b"a")));
    }
}
