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
//!
//! `txid_status` alone is not proof after a crash. PostgreSQL does not log the assignment of a
//! transaction id: when a server crashes before any WAL record of transaction *X* reached the
//! log, crash recovery hands *X* out again, and the status the server then reports for *X* is
//! that of a stranger. So every write transaction also records which incarnation of the server
//! it ran on (the postmaster's start time and the time crash recovery last reset the shared
//! statistics, which changes on every crash restart, including the in-place one after a backend
//! dies), and a `committed` or `in progress` answer from another incarnation is not trusted:
//! the outcome is [`Error::CommitUncertain`]. An `aborted` answer is true either way (a
//! reused id means the transaction's commit record never reached the log).

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

/// Which life of the PostgreSQL server a statement runs in: it changes when the server
/// restarts and when it recovers from a crash in place (the statistics are reset then). A
/// deliberate `pg_stat_reset_shared('bgwriter')` changes it too, which only makes [`commit`]
/// more cautious.
macro_rules! incarnation_sql {
    () => {
        "pg_postmaster_start_time()::text || ' / ' || \
         coalesce(pg_stat_get_bgwriter_stat_reset_time()::text, '')"
    };
}

/// Read at the start of every write transaction (one constant string: no formatting per write).
const TRANSACTION_ID_SQL: &str = concat!("SELECT txid_current(), ", incarnation_sql!());

/// Read after a connection was lost during `COMMIT`.
const TRANSACTION_STATUS_SQL: &str = concat!("SELECT txid_status($1), ", incarnation_sql!());

/// A PostgreSQL write transaction, as [`commit`] needs to know it to learn its fate when the
/// connection is lost while it commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TransactionIdentity {
    /// `txid_current()`: the id with its epoch.
    xid: i64,
    /// The server's incarnation (`incarnation_sql!`) when the transaction began.
    incarnation: String,
}

/// The identity of `txn` on PostgreSQL (`None` elsewhere). Costs one round trip.
pub(crate) async fn transaction_id(
    txn: &DatabaseTransaction,
) -> Result<Option<TransactionIdentity>, DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(None);
    }
    let row = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            TRANSACTION_ID_SQL,
        ))
        .await?;
    Ok(row.and_then(|row| {
        Some(TransactionIdentity {
            xid: row.try_get_by_index::<i64>(0).ok()?,
            incarnation: row.try_get_by_index::<String>(1).ok()?,
        })
    }))
}

/// Commits `txn`. When its connection is lost during `COMMIT`, asks the server on another
/// connection whether the transaction `identity` committed: if it did, this is a success; if it
/// did not, the loss is returned as [`Error::Database`] for [`with_retries`] to run the
/// transaction again; if that cannot be learned, or the server has restarted or recovered from
/// a crash since the transaction began (its id may now name another transaction),
/// [`Error::CommitUncertain`].
///
/// # Errors
///
/// As above, and the commit's own error when the connection did not fail (a serialization
/// failure: the transaction rolled back).
pub(crate) async fn commit(
    db: &DatabaseConnection,
    txn: DatabaseTransaction,
    identity: Option<TransactionIdentity>,
) -> Result<()> {
    let err = match txn.commit().await {
        Ok(()) => return Ok(()),
        Err(err) if db_connect::is_connection_lost(&err) => err,
        Err(err) => return Err(err.into()),
    };
    db_connect::note_connection_lost();
    let fate = match &identity {
        Some(identity) => committed(db, identity).await,
        None => None,
    };
    tracing::info!(?identity, ?fate, error = %err, "connection lost during COMMIT");
    match fate {
        Some(true) => Ok(()),
        Some(false) => Err(Error::Database(err)),
        None => Err(Error::CommitUncertain(err)),
    }
}

/// Whether the transaction `identity` committed (`Some(false)`: it aborted), once the server
/// knows; `None` when it cannot be learned within about a second, or when the server is not
/// the incarnation the transaction ran on and so may have given its id to another.
async fn committed(db: &DatabaseConnection, identity: &TransactionIdentity) -> Option<bool> {
    for _ in 0..50 {
        let row = db_connect::retry_on_lost_connection(|| {
            db.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                TRANSACTION_STATUS_SQL,
                [identity.xid.into()],
            ))
        })
        .await
        .ok()??;
        let status = row.try_get_by_index::<Option<String>>(0).ok()?;
        let same_server = row.try_get_by_index::<String>(1).ok()? == identity.incarnation;
        match status.as_deref() {
            // True on any incarnation: an id handed out again means the commit record was lost.
            Some("aborted") => return Some(false),
            Some("committed") if same_server => return Some(true),
            // The backend whose connection broke has not finished exiting yet.
            Some("in progress") if same_server => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use db_connect::testing::PostgresCluster;
    use sea_orm::TransactionTrait;

    use super::*;

    /// A transaction begun on `db`, with its identity.
    async fn begin_identified(
        db: &DatabaseConnection,
    ) -> (DatabaseTransaction, TransactionIdentity) {
        let txn = db.begin().await.expect("begin");
        let identity = transaction_id(&txn)
            .await
            .expect("transaction id")
            .expect("PostgreSQL");
        (txn, identity)
    }

    /// Issue 16: a booking answered 201 was missing after PostgreSQL was killed mid-storm. The
    /// connection broke during `COMMIT`, crash recovery gave the lost transaction's id to the
    /// next transaction, and `txid_status` reported that stranger's commit as this one's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_id_handed_out_again_after_a_crash_is_not_taken_for_a_commit() {
        let Some(mut cluster) = PostgresCluster::start() else {
            return;
        };
        let url = cluster.create_database("reused_xid").await;
        let db = db_connect::connect(&url).await.expect("connect");
        let (lost, identity) = begin_identified(&db).await;
        // Nothing of `lost` reached the log: the crash takes its id with it.
        tokio::task::block_in_place(|| cluster.kill());
        tokio::task::block_in_place(|| cluster.restart());

        let other = db_connect::connect(&url).await.expect("connect again");
        let (stranger, reused) = begin_identified(&other).await;
        stranger.commit().await.expect("the stranger commits");
        assert_eq!(
            reused.xid, identity.xid,
            "recovery handed the lost transaction's id out again (the case under test)"
        );

        let outcome = commit(&db, lost, Some(identity)).await;
        assert!(
            matches!(outcome, Err(Error::CommitUncertain(_))),
            "the lost transaction's fate cannot be known, yet: {outcome:?}"
        );
    }

    /// Without a crash, a connection lost during `COMMIT` is resolved by asking the server:
    /// here the transaction never reached `COMMIT` on the server, so it is reported as not
    /// committed (to be run again), not as uncertain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_terminated_transaction_on_a_live_server_is_known_to_have_aborted() {
        let Some(cluster) = PostgresCluster::start() else {
            return;
        };
        let url = cluster.create_database("terminated_xid").await;
        let db = db_connect::connect(&url).await.expect("connect");
        let (txn, identity) = begin_identified(&db).await;
        let terminated = cluster.terminate_backends("terminated_xid").await;
        assert!(terminated >= 1, "the transaction's backend was terminated");
        let outcome = commit(&db, txn, Some(identity)).await;
        assert!(
            matches!(&outcome, Err(Error::Database(err)) if db_connect::is_connection_lost(err)),
            "a transaction known to have aborted is handed back to be run again: {outcome:?}"
        );
    }
}
