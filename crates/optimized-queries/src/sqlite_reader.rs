//! Reads from a SQLite file through SQLite's C API (rusqlite), on a few read connections of
//! its own with cached prepared statements, beside the `DatabaseConnection`'s sqlx pool.
//!
//! A reader belongs to one sqlx pool: it opens the very file the pool's connections opened
//! (`PRAGMA database_list`), with the pool's memory-map size (but for the small reads kept until
//! a write: see [`Pages`]), read-only (`query_only`). In WAL
//! mode its reads see every transaction committed before they start, as the pool's own
//! connections do, so reading here or there gives the same answer. It is found again from the
//! pool (see [`Registry`]); an in-memory database gets no reader, since another connection would see
//! another database.
//!
//! Reader connections never wait for a lock (`busy_timeout` 0): a statement that finds the
//! database busy (rare in WAL mode: recovery, a rollback-journal database in a write) goes back
//! to the sea-orm path, whose worker thread waits with the pool's timeout.

use std::{
    any::Any,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use rusqlite::{
    ErrorCode, OpenFlags, ToSql,
    types::{ToSqlOutput, Value as SqliteValue, ValueRef},
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseConnectionType, DbErr, RuntimeErr, Statement,
    Value,
    sqlx::{self, SqlitePool},
};

use crate::{
    Error, Result,
    columns::Decode,
    executor::{Cost, Fetch, Ran},
    reader_registry::Registry,
};

/// Idle read connections kept per database and [`Pages`]; more are opened while more callers
/// read at once.
const MAX_IDLE: usize = 8;
/// Prepared statements kept per read connection.
const STATEMENT_CACHE: usize = 64;

/// Runs `statement` on `db`'s reader, or hands it back when `db` has none or the database is
/// busy: the caller then runs it through sea-orm.
pub(crate) async fn query<T: Decode + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    cost: Cost,
    fetch: Fetch,
) -> std::result::Result<Result<Vec<T>>, Statement> {
    run_with(
        db,
        statement,
        cost,
        Pages::Mapped,
        move |connection, statement| run_on(&connection.connection, statement, fetch),
    )
    .await
}

/// As [`query`] for every row of a statement without values, whose decoded rows each read
/// connection keeps until the database changes: while `PRAGMA data_version` on that
/// connection says nothing was committed since they were read, they are the answer (see
/// [`ReadConnection::memoized`]).
pub(crate) async fn query_until_write<T: Decode + Clone + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    cost: Cost,
) -> std::result::Result<Result<Vec<T>>, Statement> {
    run_with(
        db,
        statement,
        cost,
        Pages::Copied,
        |connection, statement| connection.memoized(statement),
    )
    .await
}

/// Runs `read` on a connection of `db`'s reader that reads `pages` so (inline or on the
/// blocking pool, as `cost` says) and records the statement with `db`'s tracker; hands the
/// statement back when `db` has no reader or `read` says it should run through sea-orm.
async fn run_with<T: Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    cost: Cost,
    pages: Pages,
    read: impl FnOnce(&mut ReadConnection, &Statement) -> Ran<T> + Send + 'static,
) -> std::result::Result<Result<Vec<T>>, Statement> {
    let Some(connection) = (db as &dyn Any).downcast_ref::<DatabaseConnection>() else {
        return Err(statement);
    };
    let Some(reader) = SqliteReader::of(connection).await else {
        return Err(statement);
    };
    let started = Instant::now();
    let (outcome, statement) = match cost {
        Cost::Short => (reader.run(pages, &statement, read), statement),
        Cost::Long => {
            let copy = statement.clone();
            match tokio::task::spawn_blocking(move || {
                (reader.run(pages, &statement, read), statement)
            })
            .await
            {
                Ok(ran) => ran,
                Err(_) => return Err(copy),
            }
        }
    };
    match outcome {
        Ran::Rows(rows) => {
            perf_stats::record_external(
                connection,
                &statement.sql,
                started.elapsed(),
                rows.is_err(),
            );
            Ok(rows)
        }
        Ran::Elsewhere => Err(statement),
    }
}

/// How a read connection reads the file's pages.
///
/// SQLite drops a connection's page cache whenever another connection has committed, and with
/// a memory map it also unmaps the whole file (`pagerBeginReadTransaction` →
/// `sqlite3OsUnfetch`), mapping it again and faulting each page back in on the next read. For
/// reads of many pages the map still pays (no copy, no system call per page); for the small
/// constant reads kept until a write ([`query_until_write`]), which are read again after every
/// commit and touch a few pages, the unmapping is most of the read: room types right after a
/// commit on the large dataset took 42.7–45.2 µs mapped against 25.1–26.2 µs copied (the
/// floor, mapped, 36.7–41.4 µs), while a guest's bookings read copied took 139.5 µs against
/// 94.5 µs mapped (the default page cache is too small for it). See docs/PERFORMANCE.md.
#[derive(Debug, Clone, Copy)]
enum Pages {
    /// Through a memory map of the size the pool uses.
    Mapped,
    /// Copied into the connection's page cache (`mmap_size` 0).
    Copied,
}

/// The read connections of one SQLite file.
pub(crate) struct SqliteReader {
    path: PathBuf,
    mmap_bytes: i64,
    /// Idle connections that read through the memory map ([`Pages::Mapped`]).
    mapped: Mutex<Vec<ReadConnection>>,
    /// Idle connections that copy pages ([`Pages::Copied`]).
    copied: Mutex<Vec<ReadConnection>>,
}

/// A read connection and the answers it keeps until the database changes.
struct ReadConnection {
    connection: rusqlite::Connection,
    memos: Vec<Memo>,
    /// The `data_version` the last memoizable read on this connection started at: rows are
    /// kept only when the next read finds the same version (the database stayed unchanged
    /// across two reads), so that a database written between every read pays no clone.
    last_version: Option<i64>,
    /// Reads of a statement without a memo left to run without asking for the version: while
    /// the database changes between reads, the version's own read transaction buys nothing.
    unchecked_reads: u32,
    /// How many reads the next change seen skips: doubled at each change, back to 0 when two
    /// reads see the same version.
    backoff: u32,
}

/// The decoded rows of a statement without values, as of one `data_version` of the connection
/// that read them (a version means nothing on another connection).
struct Memo {
    sql: String,
    data_version: i64,
    /// A `Vec<T>` of the statement's result type.
    rows: Box<dyn Any + Send>,
}

/// Memoized statements kept per read connection: the few constant, small reads that use it.
const MAX_MEMOS: usize = 4;

/// The most reads in a row that skip the version check while the database keeps changing: a
/// database that stops changing has its rows kept again within this many reads.
const MAX_UNCHECKED_READS: u32 = 31;

impl ReadConnection {
    /// A connection that keeps nothing yet.
    fn new(connection: rusqlite::Connection) -> Self {
        Self {
            connection,
            memos: Vec::new(),
            last_version: None,
            unchecked_reads: 0,
            backoff: 0,
        }
    }

    /// Every row of `statement` (which has no values), from the memo when the database has not
    /// changed since the rows were read on this connection, otherwise from SQLite (memoized for
    /// next time when nothing was committed while they were read).
    ///
    /// Why it is always current: `PRAGMA data_version` changes, on this connection, whenever a
    /// transaction is committed by any other connection to the file, in this process or any
    /// other (SQLite compares the WAL index header or the file change counter when a read
    /// transaction starts); and this connection never writes (`query_only`). The version is
    /// read before and after the statement: equal, nothing was committed in between, so the
    /// rows are those of that version; a later read answers from them only after its own
    /// `PRAGMA data_version` (a read transaction of its own) returns that same version. A
    /// checkpoint may also change the version: that only costs a read. While the database
    /// changes between reads, reads without kept rows skip the version (1, 3, 7, … up to
    /// [`MAX_UNCHECKED_READS`] reads after each change seen, then two reads ask again): they run
    /// the statement, as any read would, and only the keeping of rows waits.
    fn memoized<T: Decode + Clone + Send + 'static>(&mut self, statement: &Statement) -> Ran<T> {
        if statement.values.as_ref().is_some_and(|v| !v.0.is_empty()) {
            // Only constant statements are keyed by their text alone.
            return run_on(&self.connection, statement, Fetch::All);
        }
        let position = self.memos.iter().position(|m| m.sql == statement.sql);
        if position.is_none() && self.unchecked_reads > 0 {
            // The database changed between the last reads that asked: nothing kept to check,
            // and rows read now would not be kept, so the version's read transaction would buy
            // nothing (measured: it made the first read after a commit 1.1–1.3× the floor's).
            self.unchecked_reads -= 1;
            if self.unchecked_reads == 0 {
                // The next read that asks starts afresh, and the one after it can find the
                // database unchanged: a database that stopped changing has its rows kept two
                // reads after the skipping ends.
                self.last_version = None;
            }
            return run_on(&self.connection, statement, Fetch::All);
        }
        let before = match data_version(&self.connection) {
            Ok(version) => version,
            Err(err) => return failed(err),
        };
        if let Some(at) = position {
            if let Some(rows) = Some(&self.memos[at])
                .filter(|memo| memo.data_version == before)
                .and_then(|memo| memo.rows.downcast_ref::<Vec<T>>())
            {
                return Ran::Rows(Ok(rows.clone()));
            }
            // Out of date: dropped, so that later reads need not ask while the database keeps
            // changing.
            self.memos.swap_remove(at);
        }
        let ran = run_on::<T>(&self.connection, statement, Fetch::All);
        let Ran::Rows(Ok(rows)) = &ran else {
            return ran;
        };
        // Kept only when the previous read that asked saw this version too: right after a
        // commit the copy would cost a clone of every row for a memo the next commit may void
        // (measured: the first read after a commit cost 1.3–1.6× the floor's with the copy).
        // Equal versions at two reads mean nothing was committed in between: the version only
        // moves forward.
        match self.last_version.replace(before) {
            Some(last) if last == before => {
                self.backoff = 0;
                if data_version(&self.connection).is_ok_and(|after| after == before)
                    && self.memos.len() < MAX_MEMOS
                {
                    self.memos.push(Memo {
                        sql: statement.sql.clone(),
                        data_version: before,
                        rows: Box::new(rows.clone()),
                    });
                }
            }
            Some(_) => {
                self.backoff = (self.backoff * 2 + 1).min(MAX_UNCHECKED_READS);
                self.unchecked_reads = self.backoff;
            }
            None => {}
        }
        ran
    }
}

/// `PRAGMA data_version` of `connection`: changes whenever another connection commits.
fn data_version(connection: &rusqlite::Connection) -> rusqlite::Result<i64> {
    connection
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |row| row.get(0))
}

/// A statement's failure: busy goes back to sea-orm (which waits), anything else is an error.
fn failed<T>(err: rusqlite::Error) -> Ran<T> {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Ran::Elsewhere,
        _ => Ran::Rows(Err(Error::Database(DbErr::Query(RuntimeErr::Internal(
            err.to_string(),
        ))))),
    }
}

impl SqliteReader {
    /// The reader of `db`'s pool, opened on first use; `None` for an in-memory database, a
    /// closed pool, or one this process cannot open beside the pool.
    async fn of(db: &DatabaseConnection) -> Option<Arc<SqliteReader>> {
        let DatabaseConnectionType::SqlxSqlitePoolConnection(_) = &db.inner else {
            return None;
        };
        let pool = db.get_sqlite_connection_pool();
        if pool.is_closed() {
            return None;
        }
        if let Some(known) = REGISTRY.find(pool) {
            return known;
        }
        let reader = match Self::open_beside(pool).await {
            Ok(reader) => reader.map(Arc::new),
            Err(err) => {
                // Not registered: the next read tries again.
                tracing::debug!(target: "optimized_queries", error = %err, "no SQLite reader");
                return None;
            }
        };
        REGISTRY.insert(pool, reader.clone());
        reader
    }

    /// Opens a reader on the file `pool` reads, with its memory-map size; `None` for a database
    /// without a file.
    async fn open_beside(pool: &SqlitePool) -> std::result::Result<Option<Self>, sqlx::Error> {
        let databases: Vec<(i64, String, String)> = sqlx::query_as("PRAGMA database_list")
            .fetch_all(pool)
            .await?;
        let Some(path) = databases
            .into_iter()
            .find(|(_, name, _)| name == "main")
            .map(|(_, _, file)| file)
            .filter(|file| !file.is_empty())
        else {
            return Ok(None);
        };
        let mmap_bytes: i64 = sqlx::query_scalar("PRAGMA mmap_size")
            .fetch_one(pool)
            .await?;
        let reader = Self {
            path: PathBuf::from(path),
            mmap_bytes,
            mapped: Mutex::new(Vec::new()),
            copied: Mutex::new(Vec::new()),
        };
        // Fail here, not on the first read, when the file cannot be opened beside the pool.
        let first = reader
            .open(Pages::Mapped)
            .map_err(|err| sqlx::Error::Protocol(err.to_string()))?;
        reader.idle(Pages::Mapped).push(ReadConnection::new(first));
        tracing::debug!(
            target: "optimized_queries",
            path = %reader.path.display(),
            "SQLite reads through the C API"
        );
        Ok(Some(reader))
    }

    fn open(&self, pages: Pages) -> rusqlite::Result<rusqlite::Connection> {
        let connection = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.pragma_update(None, "query_only", true)?;
        let mmap_bytes = match pages {
            Pages::Mapped => self.mmap_bytes,
            Pages::Copied => 0,
        };
        connection.pragma_update(None, "mmap_size", mmap_bytes)?;
        connection.busy_timeout(Duration::ZERO)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(connection)
    }

    fn idle(&self, pages: Pages) -> std::sync::MutexGuard<'_, Vec<ReadConnection>> {
        match pages {
            Pages::Mapped => &self.mapped,
            Pages::Copied => &self.copied,
        }
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` with `statement` on an idle connection that reads `pages` so (or a new one)
    /// and gives it back.
    fn run<T>(
        &self,
        pages: Pages,
        statement: &Statement,
        read: impl FnOnce(&mut ReadConnection, &Statement) -> Ran<T>,
    ) -> Ran<T> {
        let popped = self.idle(pages).pop();
        let mut connection = match popped {
            Some(connection) => connection,
            None => match self.open(pages) {
                Ok(connection) => ReadConnection::new(connection),
                Err(_) => return Ran::Elsewhere,
            },
        };
        let ran = read(&mut connection, statement);
        let mut idle = self.idle(pages);
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
        ran
    }
}

fn run_on<T: Decode>(
    connection: &rusqlite::Connection,
    statement: &Statement,
    fetch: Fetch,
) -> Ran<T> {
    let mut prepared = match connection.prepare_cached(&statement.sql) {
        Ok(prepared) => prepared,
        Err(err) => return failed(err),
    };
    let values = statement
        .values
        .as_ref()
        .map_or(&[][..], |v| v.0.as_slice());
    match bind(&mut prepared, values) {
        Ok(true) => {}
        Ok(false) => return Ran::Elsewhere,
        Err(err) => return failed(err),
    }
    let mut rows = prepared.raw_query();
    let mut decoded = Vec::new();
    loop {
        match rows.next() {
            Ok(Some(row)) => match T::decode(row) {
                Ok(value) => decoded.push(value),
                Err(err) => return Ran::Rows(Err(err)),
            },
            Ok(None) => break,
            Err(err) => return failed(err),
        }
        if fetch == Fetch::One {
            break;
        }
    }
    Ran::Rows(Ok(decoded))
}

/// Binds `values` as sqlx would: `$n` and `?n` to the n-th value, plain `?` in order, dates
/// and times as the text sqlx writes. `Ok(false)` for a value this reader does not bind.
fn bind(prepared: &mut rusqlite::Statement<'_>, values: &[Value]) -> rusqlite::Result<bool> {
    for index in 1..=prepared.parameter_count() {
        let position = match prepared.parameter_name(index) {
            Some(name) => match name.get(1..).and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n >= 1 => n - 1,
                _ => return Ok(false),
            },
            None => index - 1,
        };
        let Some(value) = values.get(position).and_then(sqlite_value) else {
            return Ok(false);
        };
        prepared.raw_bind_parameter(index, value)?;
    }
    Ok(true)
}

/// A value as it is bound: borrowed where SQLite copies it anyway, a date as its ten bytes.
enum Bound<'a> {
    Output(ToSqlOutput<'a>),
    /// `YYYY-MM-DD`.
    Date([u8; 10]),
}

impl ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Bound::Output(output) => output.to_sql()?,
            Bound::Date(text) => ToSqlOutput::Borrowed(ValueRef::Text(text)),
        })
    }
}

fn sqlite_value(value: &Value) -> Option<Bound<'_>> {
    use chrono::SecondsFormat;
    fn owned(value: SqliteValue) -> Bound<'static> {
        Bound::Output(ToSqlOutput::Owned(value))
    }
    fn or_null<'a, T>(value: &'a Option<T>, f: impl FnOnce(&'a T) -> Bound<'a>) -> Bound<'a> {
        value.as_ref().map_or(owned(SqliteValue::Null), f)
    }
    let integer = |n: i64| owned(SqliteValue::Integer(n));
    let real = |x: f64| owned(SqliteValue::Real(x));
    Some(match value {
        Value::Bool(v) => or_null(v, |b| integer(i64::from(*b))),
        Value::TinyInt(v) => or_null(v, |n| integer(i64::from(*n))),
        Value::SmallInt(v) => or_null(v, |n| integer(i64::from(*n))),
        Value::Int(v) => or_null(v, |n| integer(i64::from(*n))),
        Value::BigInt(v) => or_null(v, |n| integer(*n)),
        Value::TinyUnsigned(v) => or_null(v, |n| integer(i64::from(*n))),
        Value::SmallUnsigned(v) => or_null(v, |n| integer(i64::from(*n))),
        Value::Unsigned(v) => or_null(v, |n| integer(i64::from(*n))),
        Value::BigUnsigned(Some(n)) => integer(i64::try_from(*n).ok()?),
        Value::BigUnsigned(None) => owned(SqliteValue::Null),
        Value::Float(v) => or_null(v, |x| real(f64::from(*x))),
        Value::Double(v) => or_null(v, |x| real(*x)),
        Value::String(v) => or_null(v, |s| {
            Bound::Output(ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())))
        }),
        Value::Char(v) => or_null(v, |c| owned(SqliteValue::Text(c.to_string()))),
        Value::Bytes(v) => or_null(v, |b| {
            Bound::Output(ToSqlOutput::Borrowed(ValueRef::Blob(b)))
        }),
        Value::ChronoDate(v) => or_null(v, |d| match crate::domain::iso_date(*d) {
            Some(text) => Bound::Date(text),
            None => owned(SqliteValue::Text(d.format("%F").to_string())),
        }),
        Value::ChronoDateTimeUtc(v) => or_null(v, |t| {
            owned(SqliteValue::Text(
                t.to_rfc3339_opts(SecondsFormat::AutoSi, false),
            ))
        }),
        _ => return None,
    })
}

static REGISTRY: Registry<SqliteReader> = Registry::new();

#[cfg(test)]
mod tests {
    use sea_orm::DatabaseBackend;

    use super::*;

    fn statement(sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(DatabaseBackend::Sqlite, sql, values)
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Pair(i64, String);

    impl Decode for Pair {
        fn decode(row: &impl crate::columns::Row) -> Result<Self> {
            Ok(Pair(row.get(0)?, row.get(1)?))
        }
    }

    #[test]
    fn numbered_placeholders_bind_by_number_and_dates_as_sqlx_writes_them() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let ran = run_on::<Pair>(
            &connection,
            &statement(
                "SELECT $2 + $1, $3 || '|' || $2",
                vec![1_i64.into(), 40_i64.into(), date.into()],
            ),
            Fetch::All,
        );
        let Ran::Rows(rows) = ran else {
            panic!("ran elsewhere")
        };
        assert_eq!(rows.unwrap(), [Pair(41, "2026-11-25|40".to_owned())]);
    }

    #[test]
    fn dates_bind_as_chrono_writes_them() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        for (y, m, d) in [
            (1, 1, 1),
            (999, 12, 31),
            (2026, 2, 9),
            (2026, 11, 25),
            (9999, 12, 31),
        ] {
            let date = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let ran = run_on::<Pair>(
                &connection,
                &statement("SELECT 1, $1", vec![date.into()]),
                Fetch::All,
            );
            let Ran::Rows(rows) = ran else {
                panic!("ran elsewhere")
            };
            assert_eq!(rows.unwrap(), [Pair(1, date.format("%F").to_string())]);
        }
    }

    #[test]
    fn a_value_without_a_sqlite_form_goes_back_to_sea_orm() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let time = chrono::NaiveTime::from_hms_opt(1, 2, 3).unwrap();
        let ran = run_on::<Pair>(
            &connection,
            &statement("SELECT 1, $1", vec![time.into()]),
            Fetch::All,
        );
        assert!(matches!(ran, Ran::Elsewhere));
    }

    /// A reader connection on a file, and a writer connection to the same file.
    fn reader_and_writer() -> (tempfile::TempDir, ReadConnection, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memo.sqlite");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); \
                 INSERT INTO t VALUES (1, 'one');",
            )
            .unwrap();
        let reader = SqliteReader {
            path,
            mmap_bytes: 0,
            mapped: Mutex::new(Vec::new()),
            copied: Mutex::new(Vec::new()),
        };
        let connection = ReadConnection::new(reader.open(Pages::Copied).unwrap());
        (dir, connection, writer)
    }

    fn memoized(connection: &mut ReadConnection, sql: &str) -> Vec<Pair> {
        match connection.memoized::<Pair>(&statement(sql, vec![])) {
            Ran::Rows(rows) => rows.unwrap(),
            Ran::Elsewhere => panic!("ran elsewhere"),
        }
    }

    /// Replaces what `connection` keeps for `sql`, so that a read answered from it shows.
    fn plant(connection: &mut ReadConnection, sql: &str, rows: Vec<Pair>) {
        let memo = connection.memos.iter_mut().find(|m| m.sql == sql).unwrap();
        memo.rows = Box::new(rows);
    }

    const SELECT_T: &str = "SELECT id, name FROM t ORDER BY id";

    #[test]
    fn kept_rows_answer_until_another_connection_commits() {
        let (_dir, mut reader, writer) = reader_and_writer();
        // The first read keeps nothing; the second, at the same version, keeps its rows.
        assert_eq!(memoized(&mut reader, SELECT_T), [Pair(1, "one".into())]);
        assert!(reader.memos.is_empty());
        assert_eq!(memoized(&mut reader, SELECT_T), [Pair(1, "one".into())]);
        assert_eq!(reader.memos.len(), 1);
        // Nothing committed: the next read is answered from what was kept.
        plant(&mut reader, SELECT_T, vec![Pair(9, "kept".into())]);
        assert_eq!(memoized(&mut reader, SELECT_T), [Pair(9, "kept".into())]);
        // A commit, even one that changes no size or count, and the statement runs again.
        writer
            .execute("UPDATE t SET name = 'uno' WHERE id = 1", [])
            .unwrap();
        assert_eq!(memoized(&mut reader, SELECT_T), [Pair(1, "uno".into())]);
        // A commit from a connection opened later, after a checkpoint: first the rows are kept
        // as of the checkpointed file, so that only the late commit can make the next read run
        // the statement.
        writer
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        until_kept(&mut reader, SELECT_T, &[Pair(1, "uno".into())]);
        plant(&mut reader, SELECT_T, vec![Pair(9, "kept".into())]);
        assert_eq!(memoized(&mut reader, SELECT_T), [Pair(9, "kept".into())]);
        let late = rusqlite::Connection::open(reader.connection.path().unwrap()).unwrap();
        late.execute("INSERT INTO t VALUES (2, 'two')", []).unwrap();
        assert_eq!(
            memoized(&mut reader, SELECT_T),
            [Pair(1, "uno".into()), Pair(2, "two".into())]
        );
    }

    /// Reads `sql` until the connection keeps its rows, each read answering `expected`; the
    /// reads it took.
    fn until_kept(connection: &mut ReadConnection, sql: &str, expected: &[Pair]) -> u32 {
        for reads in 1..=MAX_UNCHECKED_READS + 2 {
            assert_eq!(memoized(connection, sql), expected);
            if connection.memos.iter().any(|m| m.sql == sql) {
                return reads;
            }
        }
        panic!("rows never kept");
    }

    #[test]
    fn while_the_database_keeps_changing_reads_ask_for_its_version_ever_more_rarely() {
        let (_dir, mut reader, writer) = reader_and_writer();
        let mut checked = Vec::new();
        for round in 0..40 {
            writer
                .execute("UPDATE t SET name = ?1 WHERE id = 1", [format!("n{round}")])
                .unwrap();
            let skipped = reader.unchecked_reads > 0;
            // Every read sees the commit before it, asked or not.
            assert_eq!(
                memoized(&mut reader, SELECT_T),
                [Pair(1, format!("n{round}"))]
            );
            if !skipped {
                checked.push(round);
            }
        }
        // Two reads in a row ask (the second sees the change), then 1, 3, 7, 15, 31 skip.
        assert_eq!(checked, [0, 1, 3, 4, 8, 9, 17, 18, 34, 35]);
        // Once the database stops changing, its rows are kept again within the cap, and the
        // first commit after that is seen by the very next read.
        until_kept(&mut reader, SELECT_T, &[Pair(1, "n39".into())]);
        assert_eq!(reader.backoff, 0);
        writer
            .execute("UPDATE t SET name = 'last' WHERE id = 1", [])
            .unwrap();
        assert_eq!(memoized(&mut reader, SELECT_T), [Pair(1, "last".into())]);
    }

    /// Reads kept until a write go to connections without a memory map, the others to
    /// connections with the pool's (see [`Pages`]), and each kind comes back to its own list.
    #[test]
    fn kept_reads_copy_pages_and_the_others_map_them() {
        let (dir, _, _writer) = reader_and_writer();
        let reader = SqliteReader {
            path: dir.path().join("memo.sqlite"),
            mmap_bytes: 1 << 20,
            mapped: Mutex::new(Vec::new()),
            copied: Mutex::new(Vec::new()),
        };
        let mmap_size = |pages: Pages| -> i64 {
            match reader.run(pages, &statement("SELECT 1", vec![]), |connection, _| {
                Ran::Rows(Ok(vec![
                    connection
                        .connection
                        .query_row("PRAGMA mmap_size", [], |row| row.get::<_, i64>(0))
                        .unwrap(),
                ]))
            }) {
                Ran::Rows(rows) => rows.unwrap()[0],
                Ran::Elsewhere => panic!("ran elsewhere"),
            }
        };
        assert_eq!(mmap_size(Pages::Copied), 0);
        assert_eq!(mmap_size(Pages::Mapped), 1 << 20);
        assert_eq!(reader.idle(Pages::Copied).len(), 1);
        assert_eq!(reader.idle(Pages::Mapped).len(), 1);
    }

    #[test]
    fn a_database_written_between_every_read_keeps_no_copy() {
        let (_dir, mut reader, writer) = reader_and_writer();
        for round in 0..3 {
            writer
                .execute("UPDATE t SET name = ?1 WHERE id = 1", [format!("n{round}")])
                .unwrap();
            assert_eq!(
                memoized(&mut reader, SELECT_T),
                [Pair(1, format!("n{round}"))]
            );
            assert!(reader.memos.is_empty(), "round {round}");
        }
    }

    #[test]
    fn statements_with_values_are_not_kept() {
        let (_dir, mut reader, _writer) = reader_and_writer();
        let ran = reader.memoized::<Pair>(&statement(
            "SELECT id, name FROM t WHERE id = $1",
            vec![1_i64.into()],
        ));
        assert!(matches!(ran, Ran::Rows(Ok(rows)) if rows == [Pair(1, "one".into())]));
        assert!(reader.memos.is_empty());
    }

    #[test]
    fn errors_are_database_errors() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let ran = run_on::<Pair>(
            &connection,
            &statement("SELECT * FROM nowhere", vec![]),
            Fetch::All,
        );
        assert!(matches!(ran, Ran::Rows(Err(Error::Database(_)))));
    }
}
