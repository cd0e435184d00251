//! `PRAGMA foreign_key_check` of a restored copy with sequential reads instead of random ones.
//!
//! The pragma looks every child row's key up in its parent: a descent of the parent's b-tree
//! per row and foreign key, a second of CPU per million rows here (large dataset: 1.1 s of
//! the verification's critical path, one thread). Most foreign keys point at the parent's
//! `INTEGER PRIMARY KEY`, i.e. its rowid; for those, the parent's rowids are read once
//! (sorted) and each child key is searched among them in memory. The verdict is the pragma's:
//! a row violates a key when its value is not NULL and no parent row has it as rowid.
//!
//! Only what that states exactly is done this way. A child table keeps the pragma
//! (`foreign_key_check(<table>)`) when one of its keys has several columns, points at another
//! column than the parent's rowid alias, at a table that is missing or WITHOUT ROWID, or when
//! one of its key values is not an integer or NULL (SQLite would convert text or a real
//! before the lookup).
//!
//! Where the values are read from: with `trust_indexes` (the full check, which separately
//! proves every index holds exactly its table's entries) from the smallest index that covers
//! them, as SQLite's planner picks; otherwise from the tables themselves (`NOT INDEXED`), as
//! the pragma reads them. A run of equal values is searched for once, and rowids are read for
//! the report only once a value is missing.
//!
//! The full check reads most keys' values already: its scans of the indexes
//! ([`super::index_scan`]) read every entry of an index that starts with the key's column, its
//! scans of the rows every parent's rowids. A child table all of whose keys are proven that way
//! ([`KeyPlan`], `index_scan::Plan::proven_children`) is left out here ([`check_planned`]);
//! see `check::checks`.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{Connection, types::ValueRef};

use super::{index_scan::MAX_MESSAGES, quote};

/// The rows that violate a foreign key.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Violations {
    /// How many (row, key) pairs violate.
    pub(crate) count: u64,
    /// The first few, as `child row <rowid> → parent`.
    pub(crate) sample: Vec<String>,
}

impl Violations {
    fn add(&mut self, child: &str, rowid: Option<i64>, parent: &str) {
        self.count += 1;
        if self.sample.len() < MAX_MESSAGES {
            self.sample.push(match rowid {
                Some(rowid) => format!("{child} row {rowid} → {parent}"),
                None => format!("{child} → {parent}"),
            });
        }
    }
}

/// One foreign key checked against its parent's rowids.
#[derive(Debug)]
pub(crate) struct RowidKey {
    /// The child column holding the key.
    pub(crate) column: String,
    /// The parent table.
    pub(crate) parent: String,
    /// The parent's rowid alias (read rather than `rowid`, which a column may shadow).
    alias: String,
}

/// Every child table's foreign keys, as they will be checked.
#[derive(Debug, Default)]
pub(crate) struct KeyPlan {
    /// Child table → its keys, each pointing at its parent's rowid; `None` when one of them
    /// does not, and the child gets the pragma.
    pub(crate) children: BTreeMap<String, Option<Vec<RowidKey>>>,
}

/// Checks every foreign key of the database open as `conn` (see the module docs).
///
/// # Errors
/// Whatever SQLite returns, including the pragma's "foreign key mismatch" for a key that
/// points at columns without a unique index.
pub(crate) fn check(conn: &Connection, trust_indexes: bool) -> rusqlite::Result<Violations> {
    check_planned(conn, &plan(conn)?, trust_indexes, &BTreeSet::new())
}

/// Reads the foreign keys of the database open as `conn` and decides how each child table's
/// are checked.
///
/// # Errors
/// Whatever SQLite returns reading the schema.
pub(crate) fn plan(conn: &Connection) -> rusqlite::Result<KeyPlan> {
    let keys: Vec<(String, i64, i64, String, String, Option<String>)> = conn
        .prepare(
            "SELECT m.name, f.id, f.seq, f.\"table\", f.\"from\", f.\"to\" \
             FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS f \
             WHERE m.type = 'table' ORDER BY m.name, f.id, f.seq",
        )?
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut children: BTreeMap<String, Option<Vec<RowidKey>>> = BTreeMap::new();
    for (child, id, _, parent, from, to) in &keys {
        let multi_column = keys
            .iter()
            .any(|(c, i, seq, ..)| c == child && i == id && *seq > 0);
        let entry = children
            .entry(child.clone())
            .or_insert_with(|| Some(Vec::new()));
        let Some(list) = entry else { continue };
        let alias = rowid_alias(conn, parent)?
            .filter(|alias| to.as_ref().is_none_or(|to| to.eq_ignore_ascii_case(alias)));
        match alias {
            Some(alias) if !multi_column => list.push(RowidKey {
                column: from.clone(),
                parent: parent.clone(),
                alias,
            }),
            _ => *entry = None,
        }
    }
    Ok(KeyPlan { children })
}

/// Checks the keys of every child table of `plan` but those in `skip` (whose keys the caller
/// proves otherwise), as [`check`] does.
///
/// # Errors
/// As [`check`].
pub(crate) fn check_planned(
    conn: &Connection,
    plan: &KeyPlan,
    trust_indexes: bool,
    skip: &BTreeSet<String>,
) -> rusqlite::Result<Violations> {
    let mut violations = Violations::default();
    let mut parents: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (child, keys) in plan.children.iter().filter(|(c, _)| !skip.contains(*c)) {
        let found = match keys {
            Some(keys) => by_rowids(conn, child, keys, trust_indexes, &mut parents)?,
            None => None,
        };
        match found {
            Some(found) => {
                violations.count += found.count;
                let room = MAX_MESSAGES.saturating_sub(violations.sample.len());
                violations
                    .sample
                    .extend(found.sample.into_iter().take(room));
            }
            None => by_pragma(conn, child, &mut violations)?,
        }
    }
    Ok(violations)
}

/// Whether every value of `values` (ascending, distinct) is one of `rowids` (ascending): the
/// test of a key whose values and whose parent's rowids were both read by the integrity
/// check's scans.
pub(crate) fn all_present(values: &[i64], rowids: &[i64]) -> bool {
    let mut at = 0;
    values.iter().all(|value| {
        while rowids.get(at).is_some_and(|rowid| rowid < value) {
            at += 1;
        }
        rowids.get(at) == Some(value)
    })
}

/// The name of `table`'s rowid alias (its `INTEGER PRIMARY KEY` column), if it has one and is
/// a rowid table.
fn rowid_alias(conn: &Connection, table: &str) -> rusqlite::Result<Option<String>> {
    if rowid_table(conn, table)? != Some(true) {
        return Ok(None);
    }
    let pk: Vec<(String, String)> = conn
        .prepare("SELECT name, type FROM pragma_table_info(?1) WHERE pk > 0")?
        .query_map([table], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // A declared `INTEGER PRIMARY KEY` is the rowid unless SQLite built an index for it
    // (`INTEGER PRIMARY KEY DESC` is not an alias, and gets one).
    let pk_index: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'pk'",
        [table],
        |row| row.get(0),
    )?;
    Ok(match pk.as_slice() {
        [(name, kind)] if kind.eq_ignore_ascii_case("INTEGER") && pk_index == 0 => {
            Some(name.clone())
        }
        _ => None,
    })
}

/// Whether `table` is an ordinary table with rowids (`None`: no such table).
fn rowid_table(conn: &Connection, table: &str) -> rusqlite::Result<Option<bool>> {
    conn.query_row(
        "SELECT NOT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1 \
         AND type = 'table'",
        [table],
        |row| row.get(0),
    )
    .map(Some)
    .or_else(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e),
    })
}

/// Checks `child`'s keys against their parents' rowids (read once per parent, sorted), or
/// `None` when a key value is neither an integer nor NULL (the pragma then decides).
fn by_rowids<'a>(
    conn: &Connection,
    child: &str,
    keys: &'a [RowidKey],
    trust_indexes: bool,
    parents: &mut BTreeMap<&'a str, Vec<i64>>,
) -> rusqlite::Result<Option<Violations>> {
    let hint = if trust_indexes { "" } else { " NOT INDEXED" };
    // A WITHOUT ROWID child has no rowid to report (the pragma reports NULL too).
    let rowid = if rowid_table(conn, child)? == Some(true) {
        "rowid"
    } else {
        "NULL"
    };
    let mut found = Violations::default();
    for key in keys {
        if !parents.contains_key(key.parent.as_str()) {
            let mut rowids: Vec<i64> = conn
                .prepare(&format!(
                    "SELECT {} FROM {}{hint}",
                    quote(&key.alias),
                    quote(&key.parent)
                ))?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            rowids.sort_unstable();
            parents.insert(&key.parent, rowids);
        }
        let rowids = &parents[key.parent.as_str()];
        // First the values alone: a run of equal values (the read is most often from an index
        // that starts with the key) is searched for once, and the rowids are read only when a
        // value is missing, for the report.
        let mut values = conn.prepare(&format!(
            "SELECT {} FROM {}{hint}",
            quote(&key.column),
            quote(child)
        ))?;
        let mut rows = values.query([])?;
        let (mut last, mut missing) = (None, false);
        while let Some(row) = rows.next()? {
            match row.get_ref(0)? {
                ValueRef::Null => {}
                ValueRef::Integer(value) if last == Some(value) => {}
                ValueRef::Integer(value) => {
                    if rowids.binary_search(&value).is_err() {
                        missing = true;
                        break;
                    }
                    last = Some(value);
                }
                _ => return Ok(None),
            }
        }
        drop(rows);
        if !missing {
            continue;
        }
        let mut statement = conn.prepare(&format!(
            "SELECT {rowid}, {} FROM {}{hint}",
            quote(&key.column),
            quote(child)
        ))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            match row.get_ref(1)? {
                ValueRef::Null => {}
                ValueRef::Integer(value) => {
                    if rowids.binary_search(&value).is_err() {
                        found.add(child, row.get(0)?, &key.parent);
                    }
                }
                _ => return Ok(None),
            }
        }
    }
    Ok(Some(found))
}

/// `PRAGMA foreign_key_check(<child>)`, added to `violations`.
fn by_pragma(conn: &Connection, child: &str, violations: &mut Violations) -> rusqlite::Result<()> {
    let mut statement = conn.prepare(&format!("PRAGMA foreign_key_check({})", quote(child)))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let table: String = row.get(0)?;
        let rowid: Option<i64> = row.get(1)?;
        let parent: String = row.get(2)?;
        violations.add(&table, rowid, &parent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::test_support::table_names;

    /// Runs `sql` on a new in-memory database (no foreign key enforcement, so violations can
    /// be written) and returns it.
    fn database(sql: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = OFF;").unwrap();
        conn.execute_batch(sql).unwrap();
        conn
    }

    /// What SQLite's own pragma finds.
    fn pragma(conn: &Connection) -> Violations {
        let mut found = Violations::default();
        for child in table_names(conn) {
            by_pragma(conn, &child, &mut found).unwrap();
        }
        found
    }

    /// Rowid keys (`stays.guest_id`, `notes.stay_id`), a key on a UNIQUE column
    /// (`letters.guest_email`) and one on an `INTEGER PRIMARY KEY DESC`, which is no rowid
    /// alias (`visits.room`).
    const SCHEMA: &str = "
        CREATE TABLE guests (id INTEGER PRIMARY KEY, email TEXT UNIQUE);
        CREATE TABLE rooms (number INTEGER PRIMARY KEY DESC, floor INTEGER);
        CREATE TABLE stays (id INTEGER PRIMARY KEY, guest_id INTEGER REFERENCES guests (id));
        CREATE INDEX stays_guest ON stays (guest_id);
        CREATE TABLE notes (id INTEGER PRIMARY KEY, stay_id INTEGER REFERENCES stays);
        CREATE TABLE letters (id INTEGER PRIMARY KEY, guest_email TEXT REFERENCES guests (email));
        CREATE TABLE visits (id INTEGER PRIMARY KEY, room INTEGER REFERENCES rooms);
        CREATE TABLE tallies (guest_id INTEGER REFERENCES guests, day INTEGER, n INTEGER,
            PRIMARY KEY (guest_id, day)) WITHOUT ROWID;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
        INSERT INTO guests (id, email) SELECT i * 3, 'g' || i FROM n;
        INSERT INTO rooms (number, floor) VALUES (101, 1), (102, 1), (201, 2);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
        INSERT INTO stays (guest_id) SELECT 3 * (1 + i % 200) FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
        INSERT INTO notes (stay_id) SELECT CASE WHEN i % 4 THEN i END FROM n;
        INSERT INTO letters (guest_email) SELECT email FROM guests;
        INSERT INTO visits (room) VALUES (101), (201), (NULL);
        INSERT INTO tallies SELECT id, 1, 2 FROM guests;
    ";

    #[test]
    fn a_sound_database_has_no_violations_and_rowid_keys_are_scanned() {
        let conn = database(SCHEMA);
        assert_eq!(check(&conn, true).unwrap(), Violations::default());
        assert_eq!(check(&conn, false).unwrap(), Violations::default());
        assert_eq!(rowid_alias(&conn, "guests").unwrap().as_deref(), Some("id"));
        // DESC makes an INTEGER PRIMARY KEY an ordinary column with an index of its own.
        assert_eq!(rowid_alias(&conn, "rooms").unwrap(), None);
    }

    /// Each damage is one the pragma reports; the check reports the same number of
    /// violations, whichever way each key is checked.
    #[test]
    fn violations_are_counted_as_the_pragma_counts_them() {
        let cases = [
            // A parent row gone (rowid key, several children).
            "DELETE FROM guests WHERE id = 9",
            // A child key pointing past the parents (rowid key).
            "UPDATE notes SET stay_id = 10000 WHERE id < 5",
            // A WITHOUT ROWID child (its violations have no rowid).
            "UPDATE tallies SET guest_id = guest_id + 1000 WHERE guest_id < 30",
            // A key on a non-alias column (email, UNIQUE): the pragma decides.
            "UPDATE letters SET guest_email = 'nobody' WHERE id = 7",
            // A parent whose INTEGER PRIMARY KEY DESC is not the rowid.
            "UPDATE visits SET room = 999 WHERE id = 1",
            // Key values stored as text: SQLite converts '6' (found) but not 'x'.
            "UPDATE stays SET guest_id = '6' WHERE id = 20; UPDATE stays SET guest_id = 'x' WHERE id = 21",
            // Real key values: 6.0 is found, 6.5 is not.
            "UPDATE stays SET guest_id = 6.0 WHERE id = 22; UPDATE stays SET guest_id = 6.5 WHERE id = 23",
        ];
        for damage in cases {
            let conn = database(&format!("{SCHEMA}; {damage};"));
            let theirs = pragma(&conn);
            assert!(theirs.count > 0, "{damage}: not a violation to SQLite");
            for trust_indexes in [true, false] {
                let ours = check(&conn, trust_indexes).unwrap();
                let sorted = |v: &Violations| {
                    let mut sample = v.sample.clone();
                    sample.sort();
                    (v.count, sample)
                };
                assert_eq!(sorted(&ours), sorted(&theirs), "{damage} ({trust_indexes})");
            }
        }
    }
}
