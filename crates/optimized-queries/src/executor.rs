//! Where a read helper's statement runs.
//!
//! Every read helper builds one sea-orm [`Statement`] and hands it here with a [`Decode`] type.
//! On a SQLite file opened through a `DatabaseConnection` (not a transaction, not an in-memory
//! database), and with the `sqlite` feature, the statement runs on the calling thread through
//! SQLite's C API with a cached prepared statement ([`crate::sqlite_reader`]): sqlx's SQLite
//! driver sends every statement to a worker thread and every row back, which costs more than
//! the statement itself for the point reads here (the crate docs give the measurements). On a
//! PostgreSQL `DatabaseConnection`, with the `postgres` feature, it runs on a connection the
//! crate holds beside the pool ([`crate::postgres_reader`]): sqlx returns each pooled
//! connection through a spawned task that pings the server first. Any other connection (a
//! transaction, a mock), a SQLite reader that finds the database busy, and a PostgreSQL reader
//! without a free connection or whose connection broke, run the statement through sea-orm.
//! Either way the rows decode through the same [`Decode`] implementation and
//! the statement is timed by the `perf-stats` tracker attached to the connection. A constant
//! read whose answer changes only with a write ([`query_all_until_write`], room types) is kept
//! by each SQLite read connection until any connection commits.
//!
//! A read whose pooled connection turns out to be dead (a PostgreSQL backend terminated or
//! restarted since the connection was last used) runs once more, on a connection the pool has
//! checked since: see [`db_connect::retry_on_lost_connection`].

use std::future::Future;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::{Result, columns::Decode};

/// How long a statement may keep a thread: what decides where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// Tens of microseconds, bounded by an index range and a small limit: runs inline, where
    /// handing it to another thread would cost as much as running it.
    Short,
    /// Up to milliseconds (reports, long pages): runs on tokio's blocking pool, so the calling
    /// task's worker thread keeps serving other tasks meanwhile.
    Long,
}

/// How many rows a statement is read for (by a reader of the crate's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// The first row, if any.
    One,
    /// Every row.
    All,
}

/// What a reader of the crate's own (SQLite or PostgreSQL) did with a statement.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) enum Ran<T> {
    /// It ran (or failed for good).
    Rows(Result<Vec<T>>),
    /// It should run through sea-orm: the reader could not run it here (a busy SQLite file, a
    /// value without a SQLite form, a PostgreSQL connection found broken).
    Elsewhere,
}

/// Every row of `statement`, decoded.
pub(crate) async fn query_all<T: Decode + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    cost: Cost,
) -> Result<Vec<T>> {
    match on_own_connection(db, statement, cost, Fetch::All).await {
        Ok(rows) => rows,
        Err(statement) => query_all_through_sea_orm(db, statement).await,
    }
}

/// Runs `statement` on the crate's own connections of `db`'s database (the SQLite reader, the
/// PostgreSQL reader), or hands it back when `db` has none or they could not run it.
async fn on_own_connection<T: Decode + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    cost: Cost,
    fetch: Fetch,
) -> std::result::Result<Result<Vec<T>>, Statement> {
    #[cfg(feature = "sqlite")]
    let statement = match crate::sqlite_reader::query(db, statement, cost, fetch).await {
        Ok(rows) => return Ok(rows),
        Err(statement) => statement,
    };
    // PostgreSQL's statements wait on the network, not on a thread: the cost changes nothing.
    #[cfg(not(feature = "sqlite"))]
    let _ = cost;
    on_postgres_reader(db, statement, fetch).await
}

/// Runs `statement` on the PostgreSQL reader of `db`'s pool, or hands it back (see
/// [`on_own_connection`]).
async fn on_postgres_reader<T: Decode + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    fetch: Fetch,
) -> std::result::Result<Result<Vec<T>>, Statement> {
    #[cfg(feature = "postgres")]
    return crate::postgres_reader::query(db, statement, fetch).await;
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (db, fetch);
        Err(statement)
    }
}

/// Every row of `statement`, a constant statement (no values) whose small answer changes only
/// with a write: on the SQLite reader each read connection keeps the decoded rows until any
/// connection commits (see `sqlite_reader::query_until_write`), so a repeated read costs a
/// `PRAGMA data_version` and a clone instead of the statement and its decoding. Elsewhere,
/// exactly [`query_all`].
pub(crate) async fn query_all_until_write<T: Decode + Clone + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    cost: Cost,
) -> Result<Vec<T>> {
    #[cfg(feature = "sqlite")]
    let statement = match crate::sqlite_reader::query_until_write(db, statement, cost).await {
        Ok(rows) => return rows,
        Err(statement) => statement,
    };
    #[cfg(not(feature = "sqlite"))]
    let _ = cost;
    // Not `query_all`: the SQLite reader has had its turn.
    match on_postgres_reader(db, statement, Fetch::All).await {
        Ok(rows) => rows,
        Err(statement) => query_all_through_sea_orm(db, statement).await,
    }
}

/// Every row of `statement` through sea-orm, decoded: the path of every connection the crate's
/// own readers do not serve.
async fn query_all_through_sea_orm<T: Decode + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
) -> Result<Vec<T>> {
    run(db, statement, |db, statement| db.query_all_raw(statement))
        .await?
        .iter()
        .map(T::decode)
        .collect()
}

/// The first row of `statement`, decoded.
pub(crate) async fn query_one<T: Decode + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    cost: Cost,
) -> Result<Option<T>> {
    let statement = match on_own_connection(db, statement, cost, Fetch::One).await {
        Ok(rows) => return rows.map(|rows| rows.into_iter().next()),
        Err(statement) => statement,
    };
    run(db, statement, |db, statement| db.query_one_raw(statement))
        .await?
        .as_ref()
        .map(T::decode)
        .transpose()
}

/// Runs `statement` through sea-orm; on PostgreSQL once more when the connection was lost
/// (SQLite has no connection to lose, and is spared the statement's copy).
async fn run<'a, C, R, F, Fut>(db: &'a C, statement: Statement, query: F) -> Result<R, DbErr>
where
    C: ConnectionTrait,
    F: Fn(&'a C, Statement) -> Fut,
    Fut: Future<Output = Result<R, DbErr>>,
{
    if db.get_database_backend() != DbBackend::Postgres {
        return query(db, statement).await;
    }
    db_connect::retry_on_lost_connection(|| query(db, statement.clone())).await
}
