//! `PRAGMA integrity_check` of a restored copy cut into pieces that run side by side, with
//! sequential reads instead of random ones.
//!
//! `integrity_check` is `quick_check` (every b-tree's pages, cells and records in order, the
//! freelist, no page used twice or never, NOT NULL, CHECK and STRICT types) plus, for every
//! table, the rows against each of its indexes: every row is *looked up* in every index (a
//! descent of the index b-tree per row and index), the number of entries of each index is
//! counted, and each entry of a UNIQUE index is compared with the next one. On the bookings
//! table those lookups are most of the whole check's time.
//!
//! The single statement is one thread. Here it is cut in three kinds of pieces, spread over a
//! few connections, the largest first:
//!
//! - `quick_check(<table>)` for each table: its b-tree and its indexes' b-trees page by page,
//!   and its records. SQLite leaves out the file-wide bookkeeping for these (a page in two
//!   tables' b-trees, a page never used, the freelist); [`page_accounting`] does it, one more
//!   piece.
//! - The index lookups done by scans. For each index, an order-independent digest of its
//!   entries (the wrapping sum of a 64-bit hash of each `(indexed columns…, rowid)` tuple, and
//!   their number) is computed twice: from a covering scan of the index itself (`INDEXED BY`,
//!   entries in b-tree order) and from a scan of the table (`NOT INDEXED`, in rowid ranges on
//!   several connections at once). The same multiset of entries on both sides is what the
//!   lookups and the count establish; while scanning the index its entries are also checked
//!   to be in strictly increasing key order (a lookup in an index whose order is broken can
//!   miss an entry that is there) and, for a UNIQUE index, no two adjacent entries share a key
//!   with no NULL in it. A stale entry changes a hash; a missing or extra one changes the
//!   count too.
//!
//! Only what the scans can state exactly is checked this way. A table gets
//! `integrity_check(<table>)` instead when one of its indexes is on an expression, is partial,
//! uses a collation other than BINARY (the order would be the collation's, and integrity_check
//! also compares the text byte for byte), when it is a WITHOUT ROWID table, when it has a
//! column named like the rowid, or when SQLite would not read the index as a covering scan. A
//! database with a virtual table, with auto-vacuum (pointer-map pages), with a b-tree that
//! belongs to no table, or (for the full check) not in UTF-8, gets the single statement.
//!
//! The quick check ([`VerifyDepth::Quick`]) is the same cut without the index scans.
//!
//! The full check's scans also prove foreign keys ([`FusedKey`]): an index that starts with a
//! key's column holds every value of the key (once its digest matches the rows'), and the row
//! scans of the parent read its rowids; each distinct value must be one of them. Those keys
//! are then not read a fourth time by the foreign key check ([`Plan::proven_children`]).
//!
//! Each value is fetched from SQLite once per scan: a fetch is a few calls into its C API
//! (type, pointer, length), which with the hashing were most of a scan's time.
//!
//! The row and entry scans are first read by a b-tree reader of our own
//! ([`super::btree_reader`]), which parses the file's pages directly; the same visitors
//! ([`RowsScan`], [`EntriesScan`]) take the rows from either path through [`RowValues`]. On
//! anything the reader does not fully understand ([`Unreadable`]), and for any table whose
//! records it would not read as SQL does ([`RawTable`]: a hidden column, an indexed rowid
//! alias), the job runs through SQLite as before, from its start. [`Checked`] counts the
//! scans of each kind.

use std::{
    cmp::Ordering,
    collections::BTreeSet,
    hash::{BuildHasher, Hasher},
    path::Path,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering as Atomic},
    },
};

use rusqlite::{Connection, OpenFlags, functions::Context, types::ValueRef};

use super::{
    btree_reader::{RawFile, Record, Unreadable},
    foreign_keys::{self, KeyPlan},
    page_accounting, quote,
    row_feed::{RowFeed, RowValues, RowVisitor},
};
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
    /// Whether its scan collects the distinct values of its first column: a foreign key's
    /// child column, proven here ([`FusedKey`]).
    leading: bool,
    /// Its b-tree's root page, when its table's scans may be read raw ([`TablePlan::raw`]).
    root: Option<u32>,
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
    /// Whether its row scans collect the rowids: the parent of a [`FusedKey`].
    rowids: bool,
    /// How its rows and its indexes' entries are read by the raw reader, when they can be.
    raw: Option<RawTable>,
}

/// What the raw reader ([`super::btree_reader`]) needs to read a table's rows and its
/// indexes' entries as the SQL scans read them.
#[derive(Debug)]
struct RawTable {
    /// The table b-tree's root page.
    root: u32,
    /// Each of [`TablePlan::columns`]' position in the table's records (its `cid`: no column
    /// of the table is hidden).
    fields: Vec<usize>,
    /// Whether each of [`TablePlan::columns`] has REAL affinity: SQLite may store an
    /// integral real there as an integer and reads it back as a real.
    real: Vec<bool>,
}

/// A foreign key proven by the scans rather than by reading its values again: the child's
/// values are those of an index that starts with the key's column (the full check proves the
/// index holds exactly the table's entries), the parent's rowids those its row scans read.
#[derive(Debug)]
struct FusedKey {
    /// The child table.
    child: String,
    /// The index of the child whose first column is the key's, in [`Plan::indexes`].
    index: usize,
    /// The parent, in [`Plan::tables`].
    parent: usize,
}

/// The distinct values of an index's first column, in ascending order, as long as they are
/// integers (or NULL, left out).
#[derive(Debug, Default)]
struct Leading {
    values: Vec<i64>,
    /// A value neither an integer nor NULL was seen: the key needs SQLite's own check.
    other: bool,
}

impl Leading {
    fn add(&mut self, value: ValueRef<'_>) {
        match value {
            ValueRef::Null => {}
            ValueRef::Integer(v) => {
                if self.values.last() != Some(&v) {
                    self.values.push(v);
                }
            }
            _ => self.other = true,
        }
    }
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
    /// The schema b-tree, the freelist, and every page of the file used once
    /// ([`page_accounting`]).
    Pages,
}

/// What a job found.
#[derive(Debug)]
enum Found {
    /// Messages of a pragma, `ok` left out.
    Messages(Vec<String>),
    /// Digests of the table's indexes, in the order of [`TablePlan::indexes`], from the rows
    /// from rowid `lo` on, and their rowids when [`TablePlan::rowids`] (ascending).
    Rows {
        table: usize,
        lo: i64,
        digests: Vec<Digest>,
        rowids: Vec<i64>,
    },
    /// An index's digest and what its scan found wrong, and the values of its first column
    /// when [`IndexPlan::leading`].
    Entries {
        index: usize,
        digest: Digest,
        messages: Vec<String>,
        leading: Option<Leading>,
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
pub(crate) struct Plan {
    jobs: Vec<Job>,
    tables: Vec<TablePlan>,
    indexes: Vec<IndexPlan>,
    fused: Vec<FusedKey>,
}

impl Plan {
    /// The child tables whose foreign keys the scans prove ([`FusedKey`]): the foreign key
    /// check leaves them out, unless [`Checked::unproven`] names them.
    pub(crate) fn proven_children(&self) -> BTreeSet<String> {
        self.fused.iter().map(|key| key.child.clone()).collect()
    }
}

/// What the check found.
#[derive(Debug)]
pub(crate) struct Checked {
    /// `["ok"]` when nothing is wrong, like the pragma; otherwise the messages.
    pub(crate) messages: Vec<String>,
    /// The child tables of [`Plan::proven_children`] whose keys the scans could not prove (a
    /// value with no parent, or not an integer): their foreign keys must be checked the
    /// ordinary way.
    pub(crate) unproven: BTreeSet<String>,
    /// How many row and entry scans the raw reader did ([`super::btree_reader`]).
    pub(crate) raw_scans: usize,
    /// How many row and entry scans SQLite did (a table not read raw, or an [`Unreadable`]).
    pub(crate) sql_scans: usize,
}

/// Runs the check of `depth` on the copy at `path` on up to `workers` connections, and returns
/// its messages: `["ok"]` when nothing is wrong, like the pragma.
///
/// # Errors
/// Whatever SQLite returns while opening or reading the copy (a file that is not a database
/// fails here).
#[cfg(test)]
pub(crate) fn integrity(
    path: &Path,
    depth: VerifyDepth,
    workers: usize,
) -> rusqlite::Result<Vec<String>> {
    let plan = plan(&open(path)?, depth, workers, None)?;
    Ok(run_plan(path, &plan, workers)?.messages)
}

/// Runs `plan` on the copy at `path` on up to `workers` connections.
///
/// # Errors
/// Whatever SQLite returns while opening or reading the copy.
pub(crate) fn run_plan(path: &Path, plan: &Plan, workers: usize) -> rusqlite::Result<Checked> {
    let workers = workers.clamp(1, plan.jobs.len().max(1));
    // The raw reader, when the file alone is the database and its header is one it reads;
    // otherwise every scan goes through SQLite.
    let raw = plan
        .tables
        .iter()
        .any(|t| t.raw.is_some())
        .then(|| RawFile::open(path).ok())
        .flatten();
    let scans = Scans {
        raw: raw.as_ref(),
        raw_count: AtomicUsize::new(0),
        sql_count: AtomicUsize::new(0),
    };
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
                    let feeds = Feeds::register(&conn)?;
                    let mut found = Vec::new();
                    while let Some(job) = next() {
                        let timer = PieceTimer::start();
                        found.push(run(&conn, &feeds, &scans, path, plan, job)?);
                        timer.done(&describe(plan, job));
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
    let (mut messages, unproven) = assemble(plan, found);
    if messages.is_empty() {
        messages.push("ok".to_owned());
    }
    messages.truncate(MAX_MESSAGES);
    Ok(Checked {
        messages,
        unproven,
        raw_scans: scans.raw_count.into_inner(),
        sql_scans: scans.sql_count.into_inner(),
    })
}

/// How the row and entry scans are read: by the raw reader when it can, counted.
struct Scans<'f> {
    raw: Option<&'f RawFile>,
    raw_count: AtomicUsize,
    sql_count: AtomicUsize,
}

/// What a job is, for the timing events: the pragma, or the table or index it scans.
fn describe(plan: &Plan, job: &Job) -> String {
    match job {
        Job::Pragma(sql) => sql.clone(),
        Job::Rows { table, lo, hi } => {
            format!("rows of {} ({lo}..={hi})", plan.tables[*table].name)
        }
        Job::Entries { index } => format!("entries of {}", plan.indexes[*index].name),
        Job::Pages => "page accounting".to_owned(),
    }
}

/// Times one piece of the check, wall clock and this thread's CPU, for a `debug` event:
/// which pieces dominate is what decides how the check is cut.
pub(crate) struct PieceTimer {
    wall: std::time::Instant,
    cpu: Option<std::time::Duration>,
}

impl PieceTimer {
    /// Starts timing on the current thread.
    pub(crate) fn start() -> Self {
        Self {
            wall: std::time::Instant::now(),
            cpu: thread_cpu(),
        }
    }

    /// Emits the `debug` event of the piece `what` (timed on the thread that started it).
    pub(crate) fn done(self, what: &str) {
        let cpu = thread_cpu()
            .zip(self.cpu)
            .map_or(0, |(now, then)| now.saturating_sub(then).as_micros());
        tracing::debug!(
            piece = what,
            wall_us = u64::try_from(self.wall.elapsed().as_micros()).unwrap_or(u64::MAX),
            cpu_us = u64::try_from(cpu).unwrap_or(u64::MAX),
            "check piece done"
        );
    }
}

/// The CPU time of the current thread so far, if the clock can be read.
fn thread_cpu() -> Option<std::time::Duration> {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .ok()
        .map(std::time::Duration::from)
}

/// Opens the copy read-only and immutable (nothing else touches it, so no locking), read
/// through a memory map.
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
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

/// Cuts the check of `depth` into jobs: for each table its `quick_check(<table>)` and, for the
/// full check, its index scans and row ranges, or else its `integrity_check(<table>)`; and the
/// file-wide bookkeeping those leave out ([`Job::Pages`]). The largest first. A file the cut
/// cannot cover soundly gets the single statement. With `keys` (only sound for the full check,
/// which proves the indexes), the foreign keys the scans can prove are marked ([`FusedKey`]).
///
/// # Errors
/// Whatever SQLite returns reading the schema.
pub(crate) fn plan(
    conn: &Connection,
    depth: VerifyDepth,
    workers: usize,
    keys: Option<&KeyPlan>,
) -> rusqlite::Result<Plan> {
    let (pragma, full) = match depth {
        VerifyDepth::Quick => ("quick_check", false),
        VerifyDepth::Full => ("integrity_check", true),
    };
    let whole = || Plan {
        jobs: vec![Job::Pragma(format!("PRAGMA {pragma}({MAX_MESSAGES})"))],
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
    // Every b-tree must belong to a table checked below: the page accounting counts the pages
    // of all of them but judges none.
    let unowned: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE rootpage > 0 AND tbl_name NOT IN \
             (SELECT name FROM pragma_table_list WHERE schema = 'main' \
                 AND type IN ('table', 'shadow'))",
        [],
        |row| row.get(0),
    )?;
    if (full && encoding != "UTF-8")
        || tables.iter().any(|(_, kind, _)| kind == "virtual")
        || unowned > 0
        || !page_accounting::supported(conn)?
    {
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
                // From the table's own b-tree: an index is not to be trusted yet.
                &format!(
                    "SELECT min(rowid), max(rowid) FROM {} NOT INDEXED",
                    quote(&name)
                ),
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
        // The table's and its indexes' b-trees, records, NOT NULL, types and CHECKs.
        let quick = (
            span.saturating_mul(1 + index_count),
            Job::Pragma(format!("PRAGMA quick_check({})", quote(&name))),
        );
        if !full {
            costed.push(quick);
            continue;
        }
        let Some(table) = (!without_rowid)
            .then(|| table_plan(conn, &name, plan.tables.len(), plan.indexes.len()))
            .transpose()?
            .flatten()
        else {
            // integrity_check(<table>) is quick_check(<table>) and the index lookups.
            costed.push((
                span.saturating_mul(1 + 4 * index_count),
                Job::Pragma(format!("PRAGMA integrity_check({})", quote(&name))),
            ));
            continue;
        };
        costed.push(quick);
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
    // The walk decodes no record, but `dbstat` parses every cell of every page: measured on
    // the large dataset it costs what a scan of a dozen rows per page does. Weighed lighter,
    // it ran last, alone, while the other connections had nothing left to do.
    costed.push((pages.saturating_mul(12), Job::Pages));
    if let Some(keys) = keys.filter(|_| full) {
        fuse(&mut plan, keys);
    }
    costed.sort_by_key(|(cost, _)| std::cmp::Reverse(*cost));
    plan.jobs = costed.into_iter().map(|(_, job)| job).collect();
    Ok(plan)
}

/// Marks the foreign keys of `keys` the scans of `plan` can prove: every key of a child table
/// must point at the rowid of a table whose rows are scanned, and have an index of the child
/// that starts with its column (any one: a sound index holds every row's value).
fn fuse(plan: &mut Plan, keys: &KeyPlan) {
    let table_at = |name: &str| {
        plan.tables
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    };
    let mut fused = Vec::new();
    for (child, keys) in &keys.children {
        let (Some(keys), Some(at)) = (keys, table_at(child)) else {
            continue;
        };
        let table = &plan.tables[at];
        let proven: Option<Vec<FusedKey>> = keys
            .iter()
            .map(|key| {
                let index = table.indexes.iter().copied().find(|&i| {
                    plan.indexes[i]
                        .key
                        .first()
                        .is_some_and(|&c| table.columns[c].eq_ignore_ascii_case(&key.column))
                })?;
                Some(FusedKey {
                    child: child.clone(),
                    index,
                    parent: table_at(&key.parent)?,
                })
            })
            .collect();
        fused.extend(proven.into_iter().flatten());
    }
    for key in &fused {
        plan.indexes[key.index].leading = true;
        plan.tables[key.parent].rowids = true;
    }
    plan.fused = fused;
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
    let all_columns: Vec<TableColumn> = conn
        .prepare("SELECT cid, name, type, pk, hidden FROM pragma_table_xinfo(?1)")?
        .query_map([name], |row| {
            Ok(TableColumn {
                cid: row.get(0)?,
                name: row.get(1)?,
                declared: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                pk: row.get(3)?,
                hidden: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    if all_columns
        .iter()
        .any(|c| ["rowid", "_rowid_", "oid"].contains(&c.name.to_ascii_lowercase().as_str()))
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
        let root = root_page(conn, "index", &index_name)?;
        indexes.push(IndexPlan {
            name: index_name,
            table,
            key,
            desc,
            unique,
            leading: false,
            root,
        });
    }
    // The row scans pass the rowid and every column as arguments.
    if columns.len() + 1 > MAX_SCAN_COLUMNS {
        return Ok(None);
    }
    let raw = raw_table(conn, name, &all_columns, &columns)?;
    if raw.is_none() || indexes.iter().any(|i| i.root.is_none()) {
        for index in &mut indexes {
            index.root = None;
        }
    }
    Ok(Some((
        TablePlan {
            name: name.to_owned(),
            columns,
            indexes: (first_index..first_index + indexes.len()).collect(),
            rowids: false,
            raw,
        },
        indexes,
    )))
}

/// A column of a table, as `pragma_table_xinfo` gives it.
struct TableColumn {
    cid: i64,
    name: String,
    /// Its declared type ("" when none).
    declared: String,
    /// Its position in the primary key, 0 when not in it.
    pk: i64,
    /// Non-zero for a generated column or a virtual table's hidden one.
    hidden: i64,
}

/// How the raw reader reads the table `name` whose indexes hold `columns`, or `None` when its
/// records do not hold those values at their `cid` as SQL reads them: a hidden (generated)
/// column shifts the positions, and an indexed rowid alias (`INTEGER PRIMARY KEY`) is stored
/// as NULL, its value being the rowid.
fn raw_table(
    conn: &Connection,
    name: &str,
    all: &[TableColumn],
    columns: &[String],
) -> rusqlite::Result<Option<RawTable>> {
    if all.iter().any(|c| c.hidden != 0) {
        return Ok(None);
    }
    let key: Vec<&TableColumn> = all.iter().filter(|c| c.pk > 0).collect();
    // Any single-column INTEGER primary key is taken for an alias (even the DESC one that is
    // not): only a fallback is lost.
    let alias = match key.as_slice() {
        [only] if only.declared.eq_ignore_ascii_case("INTEGER") => Some(only.name.as_str()),
        _ => None,
    };
    let mut fields = Vec::new();
    let mut real = Vec::new();
    for column in columns {
        let Some(found) = all.iter().find(|c| c.name.eq_ignore_ascii_case(column)) else {
            return Ok(None);
        };
        if alias.is_some_and(|a| a.eq_ignore_ascii_case(column)) {
            return Ok(None);
        }
        let Ok(cid) = usize::try_from(found.cid) else {
            return Ok(None);
        };
        fields.push(cid);
        real.push(real_affinity(&found.declared));
    }
    let Some(root) = root_page(conn, "table", name)? else {
        return Ok(None);
    };
    Ok(Some(RawTable { root, fields, real }))
}

/// The root page of the table or index `name` (`kind`), from the schema.
fn root_page(conn: &Connection, kind: &str, name: &str) -> rusqlite::Result<Option<u32>> {
    let root: Option<i64> = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE type = ?1 AND name = ?2",
            [kind, name],
            |row| row.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(root.and_then(|r| u32::try_from(r).ok()).filter(|&r| r > 0))
}

/// Whether a column declared `declared` has REAL affinity, by SQLite's rules (§3.1 of
/// <https://www.sqlite.org/datatype3.html>, in their order).
fn real_affinity(declared: &str) -> bool {
    let upper = declared.to_ascii_uppercase();
    let has = |s: &str| upper.contains(s);
    !has("INT")
        && !has("CHAR")
        && !has("CLOB")
        && !has("TEXT")
        && !has("BLOB")
        && !upper.is_empty()
        && (has("REAL") || has("FLOA") || has("DOUB"))
}

/// The aggregates of a worker's connection that feed the scans their rows ([`super::row_feed`]).
struct Feeds {
    rows: RowFeed<RowsScan>,
    entries: RowFeed<EntriesScan>,
}

impl Feeds {
    fn register(conn: &Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            rows: RowFeed::register(conn, "hotel_check_rows")?,
            entries: RowFeed::register(conn, "hotel_check_entries")?,
        })
    }
}

/// At most this many columns are read by one scan: the arguments of an aggregate are limited
/// (`SQLITE_MAX_FUNCTION_ARG`, 127 by default). A table whose indexes hold more gets
/// `integrity_check(<table>)`.
const MAX_SCAN_COLUMNS: usize = 100;

/// The digests of a table's indexes from its rows ([`Job::Rows`]).
struct RowsScan {
    /// Each index's key columns, as argument positions (after the rowid).
    keys: Vec<Vec<usize>>,
    digests: Vec<Digest>,
    /// The rowids read, when the table is a parent of a [`FusedKey`].
    rowids: Option<Vec<i64>>,
}

impl RowVisitor for RowsScan {
    fn row(&mut self, values: &Context<'_>) {
        self.visit(values);
    }
}

impl RowsScan {
    /// One row: the rowid, then the table's columns of [`TablePlan::columns`].
    fn visit(&mut self, values: &impl RowValues) {
        let rowid = match values.value(0) {
            ValueRef::Integer(rowid) => rowid,
            // A rowid is always an integer; anything else hashes apart from every entry.
            _ => i64::MIN,
        };
        if let Some(rowids) = &mut self.rowids {
            rowids.push(rowid);
        }
        for (key, digest) in self.keys.iter().zip(&mut self.digests) {
            let mut hasher = tuple_hasher();
            for &at in key {
                hash_value(&mut hasher, values.value(at));
            }
            hasher.write_i64(rowid);
            digest.add(hasher.finish());
        }
    }
}

/// An index's entries in b-tree order ([`Job::Entries`]): their digest, and whether they are
/// in strictly increasing order and, for a UNIQUE index, distinct.
struct EntriesScan {
    name: String,
    unique: bool,
    desc: Vec<bool>,
    digest: Digest,
    messages: Vec<String>,
    /// The previous entry's key (buffers reused from entry to entry) and rowid.
    before: Vec<Held>,
    before_rowid: Option<i64>,
    leading: Option<Leading>,
}

impl RowVisitor for EntriesScan {
    fn row(&mut self, values: &Context<'_>) {
        self.visit(values);
    }
}

impl EntriesScan {
    /// One entry: its key columns in index order, then its rowid.
    fn visit(&mut self, values: &impl RowValues) {
        // Past the last message kept, the rest of the index only needs reading.
        if self.messages.len() >= MAX_MESSAGES {
            return;
        }
        let width = self.before.len();
        let rowid = match values.value(width) {
            ValueRef::Integer(rowid) => rowid,
            _ => i64::MIN,
        };
        let mut hasher = tuple_hasher();
        let mut order = Ordering::Equal;
        let mut has_null = false;
        // Each value is hashed, compared with the previous entry's, then held.
        for (column, held) in self.before.iter_mut().enumerate() {
            let value = values.value(column);
            hash_value(&mut hasher, value);
            if column == 0
                && let Some(leading) = &mut self.leading
            {
                leading.add(value);
            }
            has_null |= value == ValueRef::Null;
            let mut same = false;
            if order == Ordering::Equal && self.before_rowid.is_some() {
                order = compare(held.as_value(), value);
                same = order == Ordering::Equal;
                if self.desc[column] {
                    order = order.reverse();
                }
            }
            // A value equal to the one held orders as it does against any other: the copy
            // (of a leading column's text, mostly) is kept.
            if !same {
                held.hold(value);
            }
        }
        hasher.write_i64(rowid);
        self.digest.add(hasher.finish());
        if let Some(before_rowid) = self.before_rowid {
            if order == Ordering::Equal && self.unique && !has_null {
                self.messages.push(format!(
                    "non-unique entry in index {} (rowid {rowid})",
                    self.name
                ));
            }
            if order.then(before_rowid.cmp(&rowid)) != Ordering::Less {
                self.messages.push(format!(
                    "entries out of order in index {} (at rowid {rowid})",
                    self.name
                ));
            }
        }
        self.before_rowid = Some(rowid);
    }
}

/// Runs one job on `conn`, a connection to the copy at `path` on which `feeds` are registered.
/// A row or entry scan is read by the raw reader when its table allows it and the reader
/// reads every page it meets; otherwise (on any [`Unreadable`]) by SQLite, from the start.
fn run(
    conn: &Connection,
    feeds: &Feeds,
    scans: &Scans<'_>,
    path: &Path,
    plan: &Plan,
    job: &Job,
) -> rusqlite::Result<Found> {
    let raw = match (scans.raw, job) {
        (Some(file), Job::Rows { table, lo, hi }) => Some(raw_rows(file, plan, *table, *lo, *hi)),
        (Some(file), Job::Entries { index }) => Some(raw_entries(file, plan, *index)),
        _ => None,
    };
    match raw {
        Some(Ok(found)) => {
            scans.raw_count.fetch_add(1, Atomic::Relaxed);
            return Ok(found);
        }
        Some(Err(unreadable)) => {
            tracing::debug!(
                piece = describe(plan, job),
                %unreadable,
                "scan read through SQLite instead"
            );
        }
        None => {}
    }
    if matches!(job, Job::Rows { .. } | Job::Entries { .. }) {
        scans.sql_count.fetch_add(1, Atomic::Relaxed);
    }
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
            let columns: String = t
                .columns
                .iter()
                .map(|c| format!(", {}", quote(c)))
                .collect();
            let sql = format!(
                "SELECT {}(rowid{columns}) FROM {} NOT INDEXED WHERE rowid BETWEEN ?1 AND ?2",
                feeds.rows.name(),
                quote(&t.name)
            );
            let scan = feeds
                .rows
                .run(conn, &sql, [lo, hi], RowsScan::new(plan, t))?;
            Ok(scan.found(*table, *lo))
        }
        Job::Entries { index } => scan_index(conn, &feeds.entries, plan, *index),
        Job::Pages => Ok(Found::Messages(page_accounting::account(conn, path)?)),
    }
}

impl RowsScan {
    /// The scan of the rows of `table` for its indexes' digests.
    fn new(plan: &Plan, table: &TablePlan) -> Self {
        Self {
            // Argument 0 is the rowid.
            keys: table
                .indexes
                .iter()
                .map(|&i| plan.indexes[i].key.iter().map(|at| at + 1).collect())
                .collect(),
            digests: vec![Digest::default(); table.indexes.len()],
            rowids: table.rowids.then(Vec::new),
        }
    }

    /// What the scan of the rows of `table` from rowid `lo` on found.
    fn found(self, table: usize, lo: i64) -> Found {
        Found::Rows {
            table,
            lo,
            digests: self.digests,
            rowids: self.rowids.unwrap_or_default(),
        }
    }
}

/// Columns of a row decoded once, before the row scan's visitor reads them (each may be in
/// several indexes): a table whose indexes hold more is read through SQLite.
const DECODED_COLUMNS: usize = 24;

/// A row read by the raw reader, as the row scan's statement hands it: the rowid, then the
/// columns of [`TablePlan::columns`], decoded.
struct RawRow<'a> {
    values: [ValueRef<'a>; DECODED_COLUMNS],
}

impl RowValues for RawRow<'_> {
    #[inline]
    fn value(&self, i: usize) -> ValueRef<'_> {
        self.values.get(i).copied().unwrap_or(ValueRef::Null)
    }
}

impl<'a> RawRow<'a> {
    /// The rowid then each column of `raw`, from `record` (which holds them all), the
    /// columns fewer than [`DECODED_COLUMNS`].
    #[inline]
    fn new(rowid: i64, record: &Record<'a>, raw: &RawTable) -> Self {
        let mut values = [ValueRef::Null; DECODED_COLUMNS];
        values[0] = ValueRef::Integer(rowid);
        for ((value, &field), &real) in values[1..].iter_mut().zip(&raw.fields).zip(&raw.real) {
            *value = as_read(record.value(field).unwrap_or(ValueRef::Null), real);
        }
        Self { values }
    }
}

/// A value as SQL reads it from a column: one with REAL affinity reads an integer as a real.
#[inline]
fn as_read(value: ValueRef<'_>, real: bool) -> ValueRef<'_> {
    match value {
        ValueRef::Integer(i) if real => ValueRef::Real(i as f64),
        other => other,
    }
}

/// The rows of a table with `lo <= rowid <= hi`, read by the raw reader ([`Job::Rows`]).
fn raw_rows(
    file: &RawFile,
    plan: &Plan,
    table: usize,
    lo: i64,
    hi: i64,
) -> Result<Found, Unreadable> {
    let t = &plan.tables[table];
    let raw = t
        .raw
        .as_ref()
        .filter(|raw| raw.fields.len() < DECODED_COLUMNS)
        .ok_or(Unreadable("the table is not read raw"))?;
    let want = raw.fields.iter().max().map_or(0, |&m| m + 1);
    let mut scan = RowsScan::new(plan, t);
    file.scan_table(raw.root, lo, hi, want, &mut |rowid, record| {
        scan.visit(&RawRow::new(rowid, record, raw));
        Ok(())
    })?;
    Ok(scan.found(table, lo))
}

/// An index entry read by the raw reader, as the entry scan's statement hands it: the key
/// columns, then the rowid (the record's last field).
struct RawEntry<'r, 'a> {
    record: &'r Record<'a>,
    /// Whether each key column has REAL affinity.
    real: &'r [bool],
}

impl RowValues for RawEntry<'_, '_> {
    fn value(&self, i: usize) -> ValueRef<'_> {
        let value = self.record.value(i).unwrap_or(ValueRef::Null);
        as_read(value, self.real.get(i) == Some(&true))
    }
}

/// An index's entries read by the raw reader ([`Job::Entries`]).
fn raw_entries(file: &RawFile, plan: &Plan, position: usize) -> Result<Found, Unreadable> {
    let index = &plan.indexes[position];
    let table = &plan.tables[index.table];
    let (Some(raw), Some(root)) = (&table.raw, index.root) else {
        return Err(Unreadable("the index is not read raw"));
    };
    let real: Vec<bool> = index
        .key
        .iter()
        .map(|&at| raw.real.get(at) == Some(&true))
        .collect();
    let width = index.key.len();
    let mut scan = EntriesScan::new(index);
    file.scan_index(root, &mut |record| {
        // Key columns then the rowid, which SQLite reads only from an integer's serial type.
        if record.len() != width + 1 || record.integer(width).is_none() {
            return Err(Unreadable("an index entry of another shape"));
        }
        scan.visit(&RawEntry {
            record,
            real: &real,
        });
        Ok(())
    })?;
    Ok(scan.found(index, position))
}

impl EntriesScan {
    /// The scan of `index`'s entries.
    fn new(index: &IndexPlan) -> Self {
        Self {
            name: index.name.clone(),
            unique: index.unique,
            desc: index.desc.clone(),
            digest: Digest::default(),
            messages: Vec::new(),
            before: vec![Held::default(); index.key.len()],
            before_rowid: None,
            leading: index.leading.then(Leading::default),
        }
    }

    /// What the scan of `index` (at `position` in the plan) found.
    fn found(mut self, index: &IndexPlan, position: usize) -> Found {
        // A descending first column gave its values in descending order.
        if let Some(leading) = self
            .leading
            .as_mut()
            .filter(|_| index.desc.first() == Some(&true))
        {
            leading.values.reverse();
        }
        Found::Entries {
            index: position,
            digest: self.digest,
            messages: self.messages,
            leading: self.leading,
        }
    }
}

/// Reads an index's entries in b-tree order ([`EntriesScan`]).
fn scan_index(
    conn: &Connection,
    feed: &RowFeed<EntriesScan>,
    plan: &Plan,
    position: usize,
) -> rusqlite::Result<Found> {
    let index = &plan.indexes[position];
    let table = &plan.tables[index.table];
    let select = index
        .key
        .iter()
        .map(|&at| quote(&table.columns[at]))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {}({select}, rowid) FROM {} INDEXED BY {}",
        feed.name(),
        quote(&table.name),
        quote(&index.name)
    );
    let scan = feed.run(conn, &sql, [], EntriesScan::new(index))?;
    Ok(scan.found(index, position))
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

/// The hasher of one tuple: the same on both sides of a comparison and from run to run.
/// foldhash's quality variant rather than the standard library's SipHash: the digests need
/// well-mixed 64-bit hashes, not resistance to chosen keys, and SipHash was a tenth of a full
/// verification's CPU time.
fn tuple_hasher() -> foldhash::quality::FoldHasher<'static> {
    foldhash::quality::FixedState::with_seed(0x6a09_e667_f3bc_c908).build_hasher()
}

/// Adds a value to a tuple's hash so that values SQLite holds equal under BINARY collation
/// hash alike: an integer and a real of the same value are one number, text and a blob of the
/// same bytes are not.
fn hash_value(hasher: &mut impl Hasher, value: ValueRef<'_>) {
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
/// entries against the digest of its table's rows; and the child tables of the fused foreign
/// keys that the values read do not prove.
fn assemble(plan: &Plan, found: Vec<Found>) -> (Vec<String>, BTreeSet<String>) {
    let mut messages = Vec::new();
    let mut from_rows = vec![Digest::default(); plan.indexes.len()];
    let mut from_entries = vec![Digest::default(); plan.indexes.len()];
    // Each table's rowids, a range at a time (lo, rowids), and each index's first values.
    let mut rowids: Vec<Vec<(i64, Vec<i64>)>> = plan.tables.iter().map(|_| Vec::new()).collect();
    let mut leading: Vec<Option<Leading>> = plan.indexes.iter().map(|_| None).collect();
    for found in found {
        match found {
            Found::Messages(m) => messages.extend(m),
            Found::Rows {
                table,
                lo,
                digests,
                rowids: read,
            } => {
                for (&index, digest) in plan.tables[table].indexes.iter().zip(digests) {
                    from_rows[index].merge(digest);
                }
                rowids[table].push((lo, read));
            }
            Found::Entries {
                index,
                digest,
                messages: m,
                leading: values,
            } => {
                from_entries[index] = digest;
                messages.extend(m);
                leading[index] = values;
            }
        }
    }
    let mut unproven = BTreeSet::new();
    let mut parents: Vec<Option<Vec<i64>>> = plan.tables.iter().map(|_| None).collect();
    for key in &plan.fused {
        let parent = parents[key.parent].get_or_insert_with(|| {
            // The ranges are disjoint and each ascending: in order of their start, one
            // ascending list.
            let ranges = &mut rowids[key.parent];
            ranges.sort_unstable_by_key(|(lo, _)| *lo);
            ranges.iter().flat_map(|(_, r)| r.iter().copied()).collect()
        });
        let proven = leading[key.index]
            .as_ref()
            .is_some_and(|l| !l.other && foreign_keys::all_present(&l.values, parent));
        if !proven {
            unproven.insert(key.child.clone());
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
    (messages, unproven)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::sqlite::test_support::{Damage, sqlite_pragma, table_names};

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

    fn sqlite_says(path: &Path) -> Vec<String> {
        sqlite_pragma(path, "integrity_check")
    }

    fn sqlite_says_quick(path: &Path) -> Vec<String> {
        sqlite_pragma(path, "quick_check")
    }

    fn we_say(path: &Path) -> Vec<String> {
        integrity(path, VerifyDepth::Full, 3).unwrap_or_else(|e| vec![e.to_string()])
    }

    fn we_say_quick(path: &Path) -> Vec<String> {
        integrity(path, VerifyDepth::Quick, 3).unwrap_or_else(|e| vec![e.to_string()])
    }

    /// The file's page size and the pages of the b-tree (and overflow pages) of `name`.
    fn pages_of(path: &Path, name: &str) -> (usize, Vec<usize>) {
        let conn = open(path).unwrap();
        let size: i64 = conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .unwrap();
        let pages: Vec<i64> = conn
            .prepare("SELECT pageno FROM dbstat WHERE name = ?1 ORDER BY path")
            .unwrap()
            .query_map([name], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let size = usize::try_from(size).unwrap();
        (
            size,
            pages
                .into_iter()
                .map(|p| usize::try_from(p).unwrap())
                .collect(),
        )
    }

    /// Rewrites bytes of the file at `path`: `change` gets the whole file.
    fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = std::fs::read(path).unwrap();
        change(&mut bytes);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_sound_database_passes_and_every_index_is_checked_by_scans() {
        let dir = tempfile::tempdir().unwrap();
        let good = database(dir.path(), "good.sqlite", &[]);
        assert_eq!(sqlite_says(&good), ["ok"]);
        assert_eq!(we_say(&good), ["ok"]);
        assert_eq!(we_say_quick(&good), ["ok"]);
        let plan = plan(&open(&good).unwrap(), VerifyDepth::Full, 3, None).unwrap();
        assert_eq!(plan.indexes.len(), 4, "{plan:?}");
        let mut pragmas: Vec<&str> = plan
            .jobs
            .iter()
            .filter_map(|job| match job {
                Job::Pragma(sql) => Some(sql.as_str()),
                _ => None,
            })
            .collect();
        pragmas.sort_unstable();
        assert_eq!(
            pragmas,
            [
                "PRAGMA quick_check(\"guests\")",
                "PRAGMA quick_check(\"stays\")"
            ]
        );
        assert_eq!(
            plan.jobs
                .iter()
                .filter(|job| matches!(job, Job::Pages))
                .count(),
            1
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
        let plan = plan(&open(&path).unwrap(), VerifyDepth::Full, 2, None).unwrap();
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

    /// Damage only the file-wide bookkeeping sees: the per-table statements each pass, SQLite's
    /// single statement does not, and neither may the cut check (full or quick).
    #[test]
    fn damage_between_tables_is_found_by_the_page_accounting() {
        let dir = tempfile::tempdir().unwrap();
        // Free pages: a freelist with a trunk and leaves.
        let freed = "DELETE FROM stays WHERE id > 450";
        /// A damage: its name, an SQL step, a raw edit of the file, a message expected.
        type Damage = (&'static str, &'static str, fn(&Path), &'static str);
        let cases: [Damage; 3] = [
            // An index of one table given the root of another table's index with the same
            // entries: each table's b-trees are sound alone and every index matches its rows,
            // but one set of pages is now in two b-trees (and the old one in none).
            (
                "shared-pages",
                "CREATE TABLE twins (id INTEGER PRIMARY KEY, city TEXT);
                 INSERT INTO twins (id, city) SELECT id, city FROM guests;
                 CREATE INDEX twins_city ON twins (city);
                 PRAGMA writable_schema = ON;
                 UPDATE sqlite_schema SET rootpage =
                     (SELECT rootpage FROM sqlite_schema WHERE name = 'guests_city')
                     WHERE name = 'twins_city';",
                |_| {},
                "used twice",
            ),
            // The freelist lists a page a b-tree uses.
            (
                "freelist-claims-a-used-page",
                "",
                |path| {
                    let (size, guests_city) = pages_of(path, "guests_city");
                    edit(path, |bytes| {
                        let trunk = u32::from_be_bytes(bytes[32..36].try_into().unwrap()) as usize;
                        assert!(trunk > 0, "the file has a freelist");
                        let at = (trunk - 1) * size;
                        let leaves = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap());
                        assert!(leaves > 0);
                        let used = *guests_city.last().unwrap() as u32;
                        bytes[at + 8..at + 12].copy_from_slice(&used.to_be_bytes());
                    });
                },
                "used twice",
            ),
            // The header says the freelist is shorter than it is.
            (
                "freelist-count",
                "",
                |path| {
                    edit(path, |bytes| {
                        let count = u32::from_be_bytes(bytes[36..40].try_into().unwrap());
                        bytes[36..40].copy_from_slice(&(count - 1).to_be_bytes());
                    });
                },
                "Freelist",
            ),
        ];
        for (name, step, damage, expected) in cases {
            let steps: Vec<&str> = [freed, step]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            let path = database(dir.path(), &format!("{name}.sqlite"), &steps);
            damage(&path);
            let theirs = sqlite_says(&path);
            assert_ne!(theirs, ["ok"], "{name}: the damage is not one SQLite sees");
            // Each table's own statement passes: only the bookkeeping can find it.
            let conn = open(&path).unwrap();
            let tables = table_names(&conn);
            for table in tables {
                let alone: String = conn
                    .query_row(&format!("PRAGMA quick_check({table})"), [], |row| {
                        row.get(0)
                    })
                    .unwrap_or_else(|e| e.to_string());
                assert_eq!(alone, "ok", "{name}: quick_check({table})");
            }
            for (depth, ours) in [("full", we_say(&path)), ("quick", we_say_quick(&path))] {
                assert!(
                    ours.iter().any(|m| m.contains(expected)),
                    "{name} ({depth}): expected {expected:?} in {ours:?} (integrity_check: {theirs:?})"
                );
            }
        }
    }

    /// Seeded random damage, one byte of a page at a time, anywhere in the file: the cut
    /// check and SQLite's single statement agree on whether the file is sound, at both depths
    /// (every damage SQLite finds is found, and nothing is reported where SQLite finds
    /// nothing).
    #[test]
    fn random_damage_is_judged_as_sqlite_judges_it() {
        let dir = tempfile::tempdir().unwrap();
        let pristine = database(
            dir.path(),
            "pristine.sqlite",
            &["DELETE FROM stays WHERE id % 3 = 0"],
        );
        let original = std::fs::read(&pristine).unwrap();
        // Another seed: HOTEL_DAMAGE_SEED (40 seeds of 160 cases each agreed when written).
        let mut damage = Damage::new(0x9E37_79B9_7F4A_7C15);
        let (mut found, mut sound) = (0, 0);
        for case in 0..160 {
            let path = dir.path().join(format!("case-{case}.sqlite"));
            let mut bytes = original.clone();
            // A few bytes of one page, in its structure or anywhere (see `Damage::offset`).
            let at = damage.offset(case, bytes.len());
            for k in 0..1 + damage.next() % 3 {
                let i = (at + k as usize * 7).min(bytes.len() - 1);
                damage.flip(&mut bytes[i]);
            }
            std::fs::write(&path, &bytes).unwrap();
            let full = sqlite_says(&path) == ["ok"];
            let ours = we_say(&path);
            let note = |what: &str, ours: &[String]| {
                format!(
                    "case {case} ({what}, byte {at}): ours {ours:?}, SQLite's full check ok: {full}"
                )
            };
            assert_eq!(ours == ["ok"], full, "{}", note("full", &ours));
            // The quick check finds at least what SQLite's quick_check finds, and reports
            // nothing the full check would not.
            let quick = sqlite_says_quick(&path) == ["ok"];
            let ours_quick = we_say_quick(&path);
            assert!(
                quick || ours_quick != ["ok"],
                "{}",
                note("quick", &ours_quick)
            );
            assert!(
                !full || ours_quick == ["ok"],
                "{}",
                note("quick", &ours_quick)
            );
            if full { sound += 1 } else { found += 1 }
        }
        // The cases must exercise both verdicts.
        assert!(found > 20 && sound > 20, "found {found}, sound {sound}");
    }

    /// The whole check's findings, with how its scans were read.
    fn we_check(path: &Path) -> Checked {
        let plan = plan(&open(path).unwrap(), VerifyDepth::Full, 3, None).unwrap();
        run_plan(path, &plan, 3).unwrap()
    }

    /// On a sound file every row and entry scan is read by the raw reader, and the REAL
    /// column (`guests.score`, integral reals stored as integers) digests as SQLite reads it.
    #[test]
    fn the_raw_reader_reads_every_scan_of_a_sound_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(
            dir.path(),
            "raw.sqlite",
            &["CREATE INDEX guests_score ON guests (score DESC, city)"],
        );
        let checked = we_check(&path);
        assert_eq!(checked.messages, ["ok"]);
        assert!(checked.raw_scans >= 6, "{}", checked.raw_scans);
        assert_eq!(checked.sql_scans, 0);
        // A stale entry the raw scans find as SQLite's do.
        let stale = database(
            dir.path(),
            "raw-stale.sqlite",
            &[
                &hide("stays_nights"),
                "UPDATE stays SET nights = 7 WHERE id = 10",
                SHOW,
            ],
        );
        let checked = we_check(&stale);
        assert_eq!(checked.sql_scans, 0);
        assert!(
            checked.messages.iter().any(|m| m.contains("stays_nights")),
            "{:?}",
            checked.messages
        );
        assert_ne!(sqlite_says(&stale), ["ok"]);
    }

    /// Each table whose records the raw reader would misread is read by SQLite: an indexed
    /// rowid alias, a generated column, rows shorter than a column added later, and a whole
    /// file with a write-ahead log beside it. The verdicts stay SQLite's.
    #[test]
    fn tables_the_raw_reader_would_misread_fall_back_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        // (name, the step that makes the table one, the damage: a stale entry of an index).
        let cases: [(&str, &str, &str, &str); 3] = [
            (
                "alias",
                "CREATE INDEX guests_id ON guests (city, id)",
                "guests_id",
                "UPDATE guests SET city = 'elsewhere' WHERE id = 5",
            ),
            (
                // A virtual column before `b`: `b` is field 2 of the records, cid 3.
                "generated",
                "CREATE TABLE gen (id INTEGER PRIMARY KEY, a INTEGER,
                     g INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, b TEXT);
                 CREATE INDEX gen_b ON gen (b);
                 INSERT INTO gen (a, b) SELECT id, name FROM guests;",
                "gen_b",
                "UPDATE gen SET b = 'elsewhere' WHERE id = 5",
            ),
            (
                "added",
                "ALTER TABLE guests ADD COLUMN stars INTEGER DEFAULT 3;
                 CREATE INDEX guests_stars ON guests (stars)",
                "guests_stars",
                "UPDATE guests SET stars = 4 WHERE id = 5",
            ),
        ];
        for (name, step, index, change) in cases {
            let path = database(dir.path(), &format!("{name}.sqlite"), &[step]);
            let checked = we_check(&path);
            assert_eq!(checked.messages, ["ok"], "{name}");
            assert!(checked.sql_scans >= 1, "{name}: {}", checked.sql_scans);
            // The other tables are still read raw.
            assert!(checked.raw_scans >= 2, "{name}: {}", checked.raw_scans);
            // And a damage there is found as SQLite finds it.
            let damaged = database(
                dir.path(),
                &format!("{name}-stale.sqlite"),
                &[step, &hide(index), change, SHOW],
            );
            assert_ne!(sqlite_says(&damaged), ["ok"], "{name}");
            let ours = we_check(&damaged).messages;
            assert!(ours.iter().any(|m| m.contains(index)), "{name}: {ours:?}");
        }
        // A copy whose log holds committed rows: the file alone is not the database.
        let path = database(dir.path(), "wal.sqlite", &["PRAGMA journal_mode = WAL"]);
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA wal_autocheckpoint = 0;
                 UPDATE stays SET nights = nights + 1 WHERE id % 2 = 0;
                 INSERT INTO guests (name, city) VALUES ('late', 'city 1');",
            )
            .unwrap();
        let copy = dir.path().join("wal-copy.sqlite");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(
            dir.path().join("wal.sqlite-wal"),
            dir.path().join("wal-copy.sqlite-wal"),
        )
        .unwrap();
        drop(writer);
        let checked = we_check(&copy);
        assert_eq!(checked.messages, sqlite_says(&copy));
        assert_eq!(checked.messages, ["ok"]);
        assert_eq!(checked.raw_scans, 0);
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
            let mut h = tuple_hasher();
            hash_value(&mut h, v);
            h.finish()
        };
        assert_eq!(hash(Integer(3)), hash(Real(3.0)));
        assert_ne!(hash(Text(b"a")), hash(Blob(b"a")));
    }
}
