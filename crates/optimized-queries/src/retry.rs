//! Retries of write transactions that failed for a reason that goes away on its own.
//!
//! SQLite writers start with `BEGIN IMMEDIATE` and wait out each other within the busy timeout,
//! but a long queue can still outlast it; PostgreSQL aborts one side of a deadlock or a
//! serialization conflict. Either way the transaction rolled back completely, so running it
//! again is safe, and the caller gets an answer instead of a database error.

use std::{future::Future, time::Duration};

use sea_orm::{DbErr, RuntimeErr, SqlErr};

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
