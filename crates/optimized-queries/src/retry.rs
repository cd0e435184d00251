//! Retries of write transactions that failed for a reason that goes away on its own.
//!
//! SQLite writers start with `BEGIN IMMEDIATE` and wait out each other within the busy timeout,
//! but a long queue can still outlast it; PostgreSQL aborts one side of a deadlock or a
//! serialization conflict. Either way the transaction rolled back completely, so running it
//! again is safe, and the caller gets an answer instead of a database error.
//!
//! A PostgreSQL connection lost before `COMMIT` was sent (a backend terminated or restarted
//! under the pool) aborted its transaction too, and is retried the same way, on a connection
//! the pool checked since. A connection lost *during* `COMMIT` leaves the outcome unknown to
//! the client: [`commit`] asks the server, on another connection, what became of the
//! transaction (`txid_status`) and retries only one that provably did not commit.

use std::{future::Future, time::Duration};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr, SqlErr,
    Statement,
};

use crate::{Error, Result};

const MAX_ATTEMPTS: u32 = 8;

/// The outcome of one attempt.
pub(crate) enum Attempt<T> {
    Done(T),
    /// Roll back happened; try again (e.g. lost an idempotency-key race).
    Again(DbErr),
}

/// SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_BUSY_SNAPSHOT (517).
/// PostgreSQL: serialization_failure (40001), deadlock_detected (40P01).
pub(crate) fn is_transient(err: &DbErr) -> bool {
    let runtime = match err {
        DbErr::Exec(e) | DbErr::Query(e) | DbErr::Conn(e) => e,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    sqlx.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| matches!(code.as_ref(), "5" | "6" | "517" | "40001" | "40P01"))
}

/// Whether the error is a unique-constraint violation.
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Runs `attempt` until it succeeds, fails for good, or has failed transiently
/// [`MAX_ATTEMPTS`] times.
pub(crate) async fn with_retries<T, F, Fut>(operation: &'static str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt<T>>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let err = match attempt().await {
            Ok(Attempt::Done(value)) => return Ok(value),
            Ok(Attempt::Again(err)) => err,
            Err(Error::Database(err)) if is_transient(&err) => err,
            // Only ever before COMMIT: `commit` turns a loss during it into an outcome.
            Err(Error::Database(err)) if db_connect::is_connection_lost(&err) => {
                db_connect::note_connection_lost();
                err
            }
            Err(err) => return Err(err),
        };
        if tries >= MAX_ATTEMPTS {
            return Err(Error::Database(err));
        }
        tracing::debug!(operation, tries, error = %err, "retrying a write transaction");
        tokio::time::sleep(backoff(tries)).await;
    }
}

/// 1, 2, 4 … ms, plus up to as much again of jitter so retries of rivals spread out.
fn backoff(tries: u32) -> Duration {
    let base = 1u64 << tries.min(6);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    ) % (base * 1000);
    Duration::from_micros(base * 1000 + jitter)
}

/// The transaction id of `txn` on PostgreSQL (`None` elsewhere), for [`commit`] to learn the
/// transaction's fate if the connection is lost while it commits. Costs one round trip.
pub(crate) async fn transaction_id(txn: &DatabaseTransaction) -> Result<Option<i64>, DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(None);
    }
    let row = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT txid_current()",
        ))
        .await?;
    Ok(row.and_then(|row| row.try_get_by_index::<i64>(0).ok()))
}

/// Commits `txn`. When its connection is lost during `COMMIT`, asks the server on another
/// connection whether transaction `xid` committed: if it did, this is a success; if it did not,
/// the loss is returned as [`Error::Database`] for [`with_retries`] to run the transaction
/// again; if that cannot be learned, [`Error::CommitUncertain`].
///
/// # Errors
///
/// As above, and the commit's own error when the connection did not fail (a serialization
/// failure: the transaction rolled back).
pub(crate) async fn commit(
    db: &DatabaseConnection,
    txn: DatabaseTransaction,
    xid: Option<i64>,
) -> Result<()> {
    let err = match txn.commit().await {
        Ok(()) => return Ok(()),
        Err(err) if db_connect::is_connection_lost(&err) => err,
        Err(err) => return Err(err.into()),
    };
    db_connect::note_connection_lost();
    let fate = match xid {
        Some(xid) => committed(db, xid).await,
        None => None,
    };
    tracing::info!(?xid, ?fate, error = %err, "connection lost during COMMIT");
    match fate {
        Some(true) => Ok(()),
        Some(false) => Err(Error::Database(err)),
        None => Err(Error::CommitUncertain(err)),
    }
}

/// Whether transaction `xid` committed (`Some(false)`: it aborted), once the server knows;
/// `None` when it cannot be learned within about a second.
async fn committed(db: &DatabaseConnection, xid: i64) -> Option<bool> {
    for _ in 0..50 {
        let row = db_connect::retry_on_lost_connection(|| {
            db.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT txid_status($1)",
                [xid.into()],
            ))
        })
        .await
        .ok()??;
        match row.try_get_by_index::<Option<String>>(0).ok()?.as_deref() {
            Some("committed") => return Some(true),
            Some("aborted") => return Some(false),
            // The backend whose connection broke has not finished exiting yet.
            Some("in progress") => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => return None,
        }
    }
    None
}
