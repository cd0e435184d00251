//! Dead pooled connections: telling them from failed statements, keeping them from being
//! handed out, and running a read again on a live connection.
//!
//! A PostgreSQL backend ends under a pooled connection when an administrator or a failover
//! terminates it (`pg_terminate_backend`), when the server restarts, or when a proxy drops an
//! idle connection. The client learns it only when it next uses the connection, so that
//! statement fails. Three things keep this from reaching the caller:
//!
//! - Before handing out an idle connection, the pool pings it when it has been idle for
//!   [`ConnectionSettings::ping_idle_after`](crate::ConnectionSettings::ping_idle_after), or
//!   since before the last lost connection this process noticed ([`note_connection_lost`]).
//!   Otherwise the check costs one atomic load: hot connections go out untouched, and the round
//!   trip a ping on every checkout would add to every statement is spent only after a failure.
//!   (sqlx already pings every connection when it returns to the pool, so a connection used
//!   after a failure has been checked since.)
//! - [`is_connection_lost`] tells a connection that failed from a statement that failed.
//! - [`retry_on_lost_connection`] runs a read again after a lost connection: the failure is
//!   noted first, so the retry gets a connection that was checked after it, or a new one.
//!
//! Writes need more care (did the transaction reach `COMMIT`?): the write path decides itself
//! and only uses [`is_connection_lost`] and [`note_connection_lost`].

use std::{
    future::Future,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};
// The pool's idle check, PostgreSQL's only.
#[cfg(feature = "postgres")]
use std::time::Duration;

use sea_orm::{ConnAcquireErr, DbErr};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use sea_orm::{RuntimeErr, sqlx};

/// Microseconds after [`origin`] at which a lost connection was last noted, plus one (0: never).
static LAST_LOST_MICROS: AtomicU64 = AtomicU64::new(0);

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Records that a pooled connection was found dead: until each has been checked, every
/// connection that has been idle since then is pinged before the pool hands it out (the
/// other idle connections to that server most likely died with it).
pub fn note_connection_lost() {
    let micros = u64::try_from(origin().elapsed().as_micros()).unwrap_or(u64::MAX - 1);
    LAST_LOST_MICROS.fetch_max(micros + 1, Ordering::Relaxed);
}

/// Whether a PostgreSQL connection idle for `idle_for` must be pinged before it is used again:
/// it has been idle for `ping_idle_after` (a server, proxy or firewall may have ended it), or
/// since before the last lost connection this process noted ([`note_connection_lost`]). The
/// pools [`connect`](crate::connect) builds follow this rule; so should connections held
/// outside a pool.
#[cfg(feature = "postgres")]
pub fn must_ping(idle_for: Duration, ping_idle_after: Duration) -> bool {
    if idle_for >= ping_idle_after {
        return true;
    }
    match LAST_LOST_MICROS.load(Ordering::Relaxed) {
        0 => false,
        noted => {
            let since_loss = origin()
                .elapsed()
                .saturating_sub(Duration::from_micros(noted - 1));
            idle_for >= since_loss
        }
    }
}

/// Whether `err` says that the connection failed rather than the statement: the server ended
/// the session (`pg_terminate_backend`, a shutdown or a crash: SQLSTATE 57P01–57P03, class 08),
/// or the socket broke. The statement did not complete; on another connection it may succeed.
///
/// A pool that cannot open a connection at all (the server is down) is not a lost connection:
/// see [`is_unavailable`].
pub fn is_connection_lost(err: &DbErr) -> bool {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    if let DbErr::Conn(RuntimeErr::SqlxError(sqlx))
    | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(RuntimeErr::SqlxError(sqlx)) = err
    {
        return match sqlx.as_ref() {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
            }),
            _ => false,
        };
    }
    // Without a driver (no `sqlite` or `postgres` feature) there is no connection to lose.
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    let _ = err;
    false
}

/// Whether `err` says that the database cannot be reached right now: a lost connection
/// ([`is_connection_lost`]), no connection obtainable within the acquire timeout (the server is
/// down, restarting or saturated), or a connection refused. Such a failure says nothing about
/// the request: a server answers it with 503 and `Retry-After`.
pub fn is_unavailable(err: &DbErr) -> bool {
    if is_connection_lost(err) {
        return true;
    }
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => true,
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        DbErr::Conn(RuntimeErr::SqlxError(sqlx)) => matches!(
            sqlx.as_ref(),
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
        ),
        _ => false,
    }
}

/// An error that may say a connection was lost (see [`is_connection_lost`]).
pub trait ConnectionFailure {
    /// Whether the connection, not the operation, failed.
    fn is_connection_lost(&self) -> bool;

    /// Whether the database could not be reached at all (see [`is_unavailable`]); by default,
    /// whether the connection was lost.
    fn is_unavailable(&self) -> bool {
        self.is_connection_lost()
    }
}

impl ConnectionFailure for DbErr {
    fn is_connection_lost(&self) -> bool {
        is_connection_lost(self)
    }

    fn is_unavailable(&self) -> bool {
        is_unavailable(self)
    }
}

/// Runs a read, and again when its connection turned out to be dead ([`is_connection_lost`]),
/// up to [`LOST_CONNECTION_ATTEMPTS`] attempts in all. Each loss is noted first
/// ([`note_connection_lost`]), so the pool checks every connection idle since before handing it
/// out; the next attempt still may meet a connection killed after that check (backends
/// terminated in rounds, a restart under way), which is why one retry is not enough. The last
/// failure is returned.
///
/// Only for statements that are safe to run twice (reads, or a write in a transaction that
/// cannot have committed).
///
/// # Errors
///
/// The attempt's error.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sea_orm::DbErr> {
/// use sea_orm::ConnectionTrait;
///
/// let db = db_connect::connect("sqlite::memory:").await.expect("in memory");
/// let one = db_connect::retry_on_lost_connection(|| async {
///     db.execute_unprepared("SELECT 1").await.map(|_| 1)
/// })
/// .await?;
/// assert_eq!(one, 1);
/// # Ok(())
/// # }
/// ```
pub async fn retry_on_lost_connection<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    E: ConnectionFailure + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = 1;
    loop {
        match attempt().await {
            Err(err) if err.is_connection_lost() && attempts < LOST_CONNECTION_ATTEMPTS => {
                note_connection_lost();
                tracing::info!(error = %err, attempts, "database connection lost; running the read again");
                attempts += 1;
            }
            other => return other,
        }
    }
}

/// How many times [`retry_on_lost_connection`] runs a read whose connections keep dying: the
/// database is then really unreachable or being restarted, and the caller answers so.
pub const LOST_CONNECTION_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Lost;

    impl std::fmt::Display for Lost {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connection lost")
        }
    }

    impl ConnectionFailure for Lost {
        fn is_connection_lost(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_read_outlives_two_dead_connections_and_gives_up_after_the_third() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let twice_dead = retry_on_lost_connection(|| async {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < 2 { Err(Lost) } else { Ok(n) }
        })
        .await;
        assert_eq!(twice_dead.ok(), Some(2));

        let calls = std::sync::atomic::AtomicU32::new(0);
        let always_dead: Result<(), Lost> = retry_on_lost_connection(|| async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(Lost)
        })
        .await;
        assert!(always_dead.is_err());
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            LOST_CONNECTION_ATTEMPTS
        );
    }

    #[test]
    fn only_connections_idle_since_a_loss_are_checked() {
        let after = Duration::from_secs(10);
        assert!(must_ping(Duration::from_secs(11), after));
        note_connection_lost();
        // Idle for longer than the loss is old: it was in the pool when the loss was seen.
        assert!(must_ping(Duration::from_secs(5), after));
        std::thread::sleep(Duration::from_millis(20));
        // Returned to the pool (and pinged by sqlx) after the loss.
        assert!(!must_ping(Duration::from_millis(5), after));
    }

    #[test]
    fn statement_errors_are_not_lost_connections() {
        let custom = DbErr::Custom("no".into());
        assert!(!is_connection_lost(&custom) && !is_unavailable(&custom));
        let io = DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        ))));
        assert!(is_connection_lost(&io) && is_unavailable(&io));
        let timeout = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
        assert!(!is_connection_lost(&timeout) && is_unavailable(&timeout));
        let row = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
            sqlx::Error::RowNotFound,
        )));
        assert!(!is_unavailable(&row));
    }
}
