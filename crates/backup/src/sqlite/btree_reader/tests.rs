//! The raw reader against SQLite: the same rows and entries, in the same order, and no panic
//! or endless walk on damage.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::*;

/// A table of every kind of value (without a rowid alias: its rowid is not in its records)
/// and indexes over them, in a file of `page_size`, with `rows` rows and some deleted.
fn database(dir: &Path, page_size: u32, rows: u32) -> PathBuf {
    let path = dir.join(format!("values-{page_size}.sqlite"));
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size};
         CREATE TABLE t (a INTEGER, r REAL, s TEXT, b BLOB, n NUMERIC, x);
         CREATE INDEX t_a ON t (a DESC, s);
         CREATE UNIQUE INDEX t_s ON t (s);
         CREATE INDEX t_r ON t (r, b);
         CREATE INDEX t_x ON t (x DESC);
         WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {rows})
         INSERT INTO t (a, r, s, b, n, x)
             SELECT
                 CASE i % 9
                     WHEN 0 THEN NULL WHEN 1 THEN -i WHEN 2 THEN -200 - i
                     WHEN 3 THEN -40000 - i WHEN 4 THEN -9000000 - i
                     WHEN 5 THEN -3000000000 - i WHEN 6 THEN -300000000000000 - i
                     WHEN 7 THEN -9223372036854775807 + i ELSE 9223372036854775807 - i END,
                 CASE i % 4 WHEN 0 THEN i WHEN 1 THEN i / 7.0 WHEN 2 THEN NULL ELSE -i * 1e300 END,
                 CASE WHEN i % 50 = 0 THEN printf('%.*c', {page_size} * 2 + i, 'x') || i
                      ELSE 'text ' || i END,
                 CASE WHEN i % 60 = 1 THEN randomblob({page_size} + i) ELSE x'00ff' || i END,
                 CASE i % 3 WHEN 0 THEN i / 2.0 WHEN 1 THEN '12' ELSE 'n' || i END,
                 CASE i % 5 WHEN 0 THEN i WHEN 1 THEN i * 0.5 WHEN 2 THEN 'x' || (i % 13)
                     WHEN 3 THEN x'01' ELSE NULL END
             FROM k;
         DELETE FROM t WHERE rowid % 17 = 0;"
    ))
    .unwrap();
    path
}

fn root(conn: &Connection, name: &str) -> u32 {
    conn.query_row(
        "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .unwrap()
}

/// A value held: text as its bytes (the tests' text is not all UTF-8, as SQLite allows).
#[derive(Debug, PartialEq)]
enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl From<ValueRef<'_>> for Value {
    fn from(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Integer(i),
            ValueRef::Real(r) => Self::Real(r),
            ValueRef::Text(t) => Self::Text(t.to_vec()),
            ValueRef::Blob(b) => Self::Blob(b.to_vec()),
        }
    }
}

/// Rows of `sql` as owned values.
fn sql_rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Vec<Vec<Value>> {
    let mut statement = conn.prepare(sql).unwrap();
    let width = statement.column_count();
    statement
        .query_map(params, |row| {
            (0..width)
                .map(|i| row.get_ref(i).map(Value::from))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// A raw value as SQL reads it from a column with REAL affinity when `real`.
fn as_sql(value: ValueRef<'_>, real: bool) -> Value {
    match value {
        ValueRef::Integer(i) if real => Value::Real(i as f64),
        other => Value::from(other),
    }
}

fn raw_rows(file: &RawFile, root: u32, lo: i64, hi: i64) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    file.scan_table(root, lo, hi, 6, &mut |rowid, record| {
        let mut row = vec![Value::Integer(rowid)];
        row.extend((0..6).map(|i| as_sql(record.value(i).unwrap(), i == 1)));
        rows.push(row);
        Ok(())
    })
    .unwrap();
    rows
}

fn raw_entries(file: &RawFile, root: u32, real: &[bool]) -> Vec<Vec<Value>> {
    let mut entries = Vec::new();
    file.scan_index(root, &mut |record| {
        entries.push(
            (0..record.len())
                .map(|i| as_sql(record.value(i).unwrap(), real.get(i) == Some(&true)))
                .collect(),
        );
        Ok(())
    })
    .unwrap();
    entries
}

/// Every row (in rowid ranges cut anywhere) and every entry of every index, values and order,
/// as SQLite's `NOT INDEXED` and `INDEXED BY` scans give them: overflowing text and blobs,
/// reals, integral reals in a REAL column, integers of every width, NULLs, DESC columns, a
/// UNIQUE index, index b-trees deep enough to have entries in interior pages.
#[test]
fn rows_and_entries_are_read_as_sqlite_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    for (page_size, rows) in [(512, 3000), (4096, 2000), (65_536, 400)] {
        let path = database(dir.path(), page_size, rows);
        let conn = Connection::open(&path).unwrap();
        let file = RawFile::open(&path).unwrap();
        assert_eq!(file.page_size, page_size as usize);
        let table = root(&conn, "t");
        let all = raw_rows(&file, table, i64::MIN, i64::MAX);
        let expected = sql_rows(&conn, "SELECT rowid, * FROM t NOT INDEXED", []);
        assert_eq!(all.len(), expected.len(), "page size {page_size}");
        assert_eq!(all, expected, "page size {page_size}");
        for (lo, hi) in [
            (1, 1),
            (0, 17),
            (5, 333),
            (334, 1999),
            (1999, 5000),
            (-5, 0),
        ] {
            assert_eq!(
                raw_rows(&file, table, lo, hi),
                sql_rows(
                    &conn,
                    "SELECT rowid, * FROM t NOT INDEXED WHERE rowid BETWEEN ?1 AND ?2",
                    [lo, hi]
                ),
                "page size {page_size}, {lo}..={hi}"
            );
        }
        for (index, columns, real) in [
            ("t_a", "a, s", [false, false]),
            ("t_s", "s", [false, false]),
            ("t_r", "r, b", [true, false]),
            ("t_x", "x", [false, false]),
        ] {
            let expected = sql_rows(
                &conn,
                &format!("SELECT {columns}, rowid FROM t INDEXED BY {index}"),
                [],
            );
            assert_eq!(
                raw_entries(&file, root(&conn, index), &real),
                expected,
                "page size {page_size}, {index}"
            );
        }
        // The small pages make deep b-trees, the index ones with entries in interior pages.
        if page_size == 512 {
            let interior: i64 = conn
                .query_row(
                    "SELECT count(*) FROM dbstat WHERE name = 't_s' AND pagetype = 'internal'",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert!(interior > 3, "{interior}");
        }
    }
}

/// What a file must be for the reader to read it alone.
#[test]
fn files_it_does_not_read_alone_are_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path(), 4096, 50);
    assert!(RawFile::open(&path).is_ok());
    let wal = dir.path().join("values-4096.sqlite-wal");
    // A WAL-mode file with a log that holds pages.
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    }
    assert!(RawFile::open(&path).is_ok(), "an empty or absent log");
    std::fs::write(&wal, b"frames").unwrap();
    assert!(RawFile::open(&path).is_err());
    std::fs::remove_file(&wal).unwrap();
    let journal = dir.path().join("values-4096.sqlite-journal");
    std::fs::write(&journal, b"hot").unwrap();
    assert!(RawFile::open(&path).is_err());
    std::fs::remove_file(&journal).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for (what, change) in [
        ("magic", (0usize, b'x')),
        ("page size", (16, 3)),
        ("encoding", (59, 2)),
    ] {
        let mut broken = bytes.clone();
        broken[change.0] = change.1;
        std::fs::write(&path, &broken).unwrap();
        assert!(RawFile::open(&path).is_err(), "{what}");
    }
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(RawFile::open(&path).is_err(), "a partial page");
    std::fs::write(&path, b"").unwrap();
    assert!(RawFile::open(&path).is_err(), "empty");
}

/// A record with fewer fields than asked (a column added after the row was written) is
/// unreadable, not read as NULL.
#[test]
fn short_records_are_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (a);
         INSERT INTO t VALUES (1), (2);
         ALTER TABLE t ADD COLUMN b DEFAULT 7;",
    )
    .unwrap();
    let file = RawFile::open(&path).unwrap();
    let table = root(&conn, "t");
    assert!(file.scan_table(table, 1, 2, 1, &mut |_, _| Ok(())).is_ok());
    assert_eq!(
        file.scan_table(table, 1, 2, 2, &mut |_, _| Ok(())),
        Err(Unreadable("a record with fewer fields than needed"))
    );
}

/// Random damage and garbage never make the reader panic, loop or read out of bounds: every
/// walk ends, with rows or with [`Unreadable`].
#[test]
fn damaged_files_never_panic_nor_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path(), 512, 600);
    let original = std::fs::read(&path).unwrap();
    let roots: Vec<(u32, bool)> = {
        let conn = Connection::open(&path).unwrap();
        ["t", "t_a", "t_s", "t_r", "t_x"]
            .iter()
            .map(|name| (root(&conn, name), *name == "t"))
            .collect()
    };
    let mut state: u64 = std::env::var("HOTEL_DAMAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1234_5678_9abc_def1)
        .max(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let started = std::time::Instant::now();
    let damaged = dir.path().join("damaged.sqlite");
    for case in 0..400 {
        let mut bytes = original.clone();
        if case % 10 == 9 {
            // Pages of garbage after the header.
            for byte in &mut bytes[100..] {
                *byte = next() as u8;
            }
        } else {
            for _ in 0..1 + next() % 8 {
                // Mostly page headers and cell pointers, where a flip changes the structure.
                let page = next() as usize % (bytes.len() / 512);
                let at = page * 512
                    + if next() % 2 == 0 {
                        next() as usize % 24
                    } else {
                        next() as usize % 512
                    };
                bytes[at] ^= 1 << (next() % 8);
            }
        }
        std::fs::write(&damaged, &bytes).unwrap();
        let Ok(file) = RawFile::open(&damaged) else {
            continue;
        };
        for &(root, table) in &roots {
            let mut seen = 0u64;
            let _ = if table {
                file.scan_table(root, i64::MIN, i64::MAX, 6, &mut |_, record| {
                    seen += (0..record.len())
                        .filter(|&i| record.value(i).is_some())
                        .count() as u64;
                    Ok(())
                })
            } else {
                file.scan_index(root, &mut |record| {
                    seen += (0..record.len())
                        .filter(|&i| record.value(i).is_some())
                        .count() as u64;
                    Ok(())
                })
            };
            // Records come from at most every page's cells once.
            assert!(seen < 10 * bytes.len() as u64);
        }
        let mut every: Vec<u32> = roots.iter().map(|&(root, _)| root).collect();
        every.insert(0, 1);
        let _ = file.pages_used_once(&every);
    }
    // Bounded walks: 400 files of a few hundred pages each take well under a minute.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn values_decode_as_sqlite_stores_them() {
    let fields = |serials: &[u64]| -> Vec<Field> {
        let mut start = 0;
        serials
            .iter()
            .map(|&serial| {
                let field = Field { serial, start };
                start += body_size(serial).unwrap() as usize;
                field
            })
            .collect()
    };
    let payload = [
        0xff, // 1: -1
        0x80, 0x00, // 2: -32768
        0xff, 0xff, 0xfe, // 3: -2
        0x7f, 0xff, 0xff, 0xff, // 4: i32::MAX
        0xff, 0xff, 0xff, 0xff, 0xff, 0xfd, // 5: -3
        0x80, 0, 0, 0, 0, 0, 0, 0, // 6: i64::MIN
        0x7f, 0xf8, 0, 0, 0, 0, 0, 1, // 7: a NaN
        b'h', b'i', // text "hi" (17)
        1, 2, // blob (16)
    ];
    let f = fields(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 16, 0]);
    let record = Record {
        payload: &payload,
        fields: &f,
    };
    let values: Vec<ValueRef<'_>> = (0..f.len()).map(|i| record.value(i).unwrap()).collect();
    assert_eq!(
        values,
        [
            ValueRef::Integer(-1),
            ValueRef::Integer(-32768),
            ValueRef::Integer(-2),
            ValueRef::Integer(i64::from(i32::MAX)),
            ValueRef::Integer(-3),
            ValueRef::Integer(i64::MIN),
            ValueRef::Null,
            ValueRef::Integer(0),
            ValueRef::Integer(1),
            ValueRef::Text(b"hi"),
            ValueRef::Blob(&[1, 2]),
            ValueRef::Null,
        ]
    );
    assert_eq!(record.value(12), None);
    assert_eq!(record.integer(5), Some(i64::MIN));
    assert_eq!(record.integer(6), None);
    assert_eq!(varint(&[0x81, 0x00], 0), Ok((128, 2)));
    assert_eq!(varint(&[0xff; 9], 0), Ok((u64::MAX, 9)));
    assert!(varint(&[0x81], 0).is_err());
    let mut decoded = Vec::new();
    // Header of 3 bytes, serial types 10 then 1.
    assert!(decode(&[3, 10, 1, 0], None, &mut decoded).is_err());
    // A header longer than the payload; fields past it; a body shorter than the header says.
    assert!(decode(&[9, 1], None, &mut decoded).is_err());
    assert!(decode(&[2, 6, 0], None, &mut decoded).is_err());
    assert!(decode(&[2, 1, 5, 6], None, &mut decoded).is_err());
    assert!(decode(&[2, 1, 5], None, &mut decoded).is_ok());
}

/// How long the reader alone takes over every index of the file at `HOTEL_RAW_BENCH`: run by
/// hand (`--ignored`, release), to tell the reader's cost from the visitors'.
#[test]
#[ignore = "a measurement, run by hand"]
fn reader_alone() {
    let Ok(path) = std::env::var("HOTEL_RAW_BENCH") else {
        return;
    };
    let conn = Connection::open(&path).unwrap();
    let roots: Vec<(String, u32, String)> = conn
        .prepare("SELECT name, rootpage, type FROM sqlite_schema WHERE rootpage > 0")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let file = RawFile::open(Path::new(&path)).unwrap();
    let started = std::time::Instant::now();
    let mut n = 0u64;
    for (_, root, kind) in &roots {
        if kind == "index" {
            let _ = file.scan_index(*root, &mut |record| {
                n += record.len() as u64;
                Ok(())
            });
        } else {
            let _ = file.scan_table(*root, i64::MIN, i64::MAX, 3, &mut |_, record| {
                n += record.len() as u64;
                Ok(())
            });
        }
    }
    eprintln!("{n} fields in {:?}", started.elapsed());
}

/// The b-trees' roots of the file at `path`, page 1 first.
fn all_roots(path: &Path) -> Vec<u32> {
    let conn = Connection::open(path).unwrap();
    let mut roots: Vec<u32> = conn
        .prepare("SELECT rootpage FROM sqlite_schema WHERE rootpage > 0")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    roots.insert(0, 1);
    roots
}

/// Every page used once, counted raw: a sound file with a freelist and overflow pages passes;
/// pages of no b-tree, a page in two, or a freelist shorter than the header says do not.
#[test]
fn pages_used_once_are_counted_raw() {
    let dir = tempfile::tempdir().unwrap();
    for page_size in [512, 65_536] {
        let path = database(dir.path(), page_size, 1500);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("DELETE FROM t WHERE rowid % 3 = 0")
                .unwrap();
            let free: i64 = conn
                .pragma_query_value(None, "freelist_count", |row| row.get(0))
                .unwrap();
            assert!(free > 0, "{page_size}");
        }
        let file = RawFile::open(&path).unwrap();
        let roots = all_roots(&path);
        assert_eq!(file.pages_used_once(&roots), Ok(()), "{page_size}");
        // An index's b-tree left out: its pages are never used.
        assert!(file.pages_used_once(&roots[..roots.len() - 1]).is_err());
        // A b-tree counted twice.
        let mut twice = roots.clone();
        twice.push(roots[2]);
        assert!(file.pages_used_once(&twice).is_err());
        // The header's freelist count one short.
        let mut bytes = std::fs::read(&path).unwrap();
        let count = u32::from_be_bytes(bytes[36..40].try_into().unwrap());
        bytes[36..40].copy_from_slice(&(count - 1).to_be_bytes());
        let short = dir
            .path()
            .join(format!("short-freelist-{page_size}.sqlite"));
        std::fs::write(&short, &bytes).unwrap();
        assert!(
            RawFile::open(&short)
                .unwrap()
                .pages_used_once(&roots)
                .is_err()
        );
    }
}
