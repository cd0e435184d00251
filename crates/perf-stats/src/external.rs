//! Statements that reach a database beside sea-orm: a library that runs some of its reads through
//! another executor (SQLite's C API, a PostgreSQL client) reports them here, and the tracker
//! attached to that database's connection records them as if sea-orm had run them.
//!
//! sea-orm keeps a connection's metric callback to itself, so [`QueryTracker::attach`] also
//! notes the tracker against the connection's pool. Statements reported for a
//! `DatabaseConnection` go to the tracker most recently attached to any connection of the same
//! pool (clones share their pool); a pool without a tracker records nothing, at the cost of one
//! shared-lock lookup.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::sync::Arc;
use std::{any::Any, sync::Weak, time::Duration};

use parking_lot::RwLock;
use sea_orm::DatabaseConnection;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use sea_orm::DatabaseConnectionType;

use crate::QueryTracker;

/// A pool, identified by the address of its options (stable while the pool lives), with a weak
/// reference to its connect options: alive while the pool is, and holding the address so that
/// no later pool can take it while the entry exists.
struct Attached {
    pool: usize,
    alive: Weak<dyn Any + Send + Sync>,
    tracker: QueryTracker,
}

static ATTACHED: RwLock<Vec<Attached>> = RwLock::new(Vec::new());

/// The pool of `db`: its identity and a weak reference that dies with it.
fn pool_of(db: &DatabaseConnection) -> Option<(usize, Weak<dyn Any + Send + Sync>)> {
    match &db.inner {
        #[cfg(feature = "sqlite")]
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            let pool = db.get_sqlite_connection_pool();
            let options: Arc<dyn Any + Send + Sync> = pool.connect_options();
            Some((
                std::ptr::from_ref(pool.options()) as usize,
                Arc::downgrade(&options),
            ))
        }
        #[cfg(feature = "postgres")]
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            let options: Arc<dyn Any + Send + Sync> = pool.connect_options();
            Some((
                std::ptr::from_ref(pool.options()) as usize,
                Arc::downgrade(&options),
            ))
        }
        _ => None,
    }
}

fn pool_id(db: &DatabaseConnection) -> Option<usize> {
    match &db.inner {
        #[cfg(feature = "sqlite")]
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            Some(std::ptr::from_ref(db.get_sqlite_connection_pool().options()) as usize)
        }
        #[cfg(feature = "postgres")]
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            Some(std::ptr::from_ref(db.get_postgres_connection_pool().options()) as usize)
        }
        _ => None,
    }
}

/// Notes `tracker` as the one recording statements run beside sea-orm on `db`'s pool.
pub(crate) fn attach(db: &DatabaseConnection, tracker: &QueryTracker) {
    let Some((pool, alive)) = pool_of(db) else {
        return;
    };
    let mut attached = ATTACHED.write();
    attached.retain(|a| a.alive.strong_count() > 0 && a.pool != pool);
    attached.push(Attached {
        pool,
        alive,
        tracker: tracker.clone(),
    });
}

/// Records a statement that ran on `db`'s database through another executor than sea-orm, with
/// the tracker [attached](QueryTracker::attach) to a connection of `db`'s pool, if any: in the
/// tracker's statistics, its slow-query log, and the current [scope](QueryTracker::scope) or
/// [capture](QueryTracker::capture) of the calling task, exactly as a statement sea-orm ran.
///
/// Call it from the task that asked for the statement (not from a thread it was handed to), so
/// that scopes and captures see it. `elapsed` should cover what the caller waited, as sea-orm's
/// own timing does.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
///
/// let tracker = perf_stats::QueryTracker::new();
/// let dir = tempfile::tempdir()?;
/// let mut db = sea_orm::Database::connect(format!("sqlite://{}/x.db?mode=rwc", dir.path().display())).await?;
/// tracker.attach(&mut db);
///
/// let (_, log) = tracker
///     .capture(async {
///         perf_stats::record_external(&db, "SELECT 1", Duration::from_micros(3), false);
///     })
///     .await;
/// assert_eq!(log.len(), 1);
/// assert_eq!(tracker.report().statements, 1);
/// # Ok(())
/// # }
/// ```
pub fn record_external(db: &DatabaseConnection, sql: &str, elapsed: Duration, failed: bool) {
    let Some(pool) = pool_id(db) else {
        return;
    };
    let tracker = ATTACHED
        .read()
        .iter()
        .find(|a| a.pool == pool && a.alive.strong_count() > 0)
        .map(|a| a.tracker.clone());
    if let Some(tracker) = tracker {
        tracker.record(sql, elapsed, failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn file_db(dir: &tempfile::TempDir, name: &str) -> DatabaseConnection {
        db_connect::connect(&format!("sqlite://{}/{name}", dir.path().display()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn statements_reach_the_tracker_of_their_pool_only() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, b) = (file_db(&dir, "a.db").await, file_db(&dir, "b.db").await);
        let tracker = QueryTracker::new();
        tracker.attach(&mut a);
        let clone = a.clone();
        record_external(&clone, "SELECT 1", Duration::from_micros(5), false);
        record_external(&b, "SELECT 2", Duration::from_micros(5), false);
        let report = tracker.report();
        assert_eq!(report.statements, 1);
        assert_eq!(report.queries[0].fingerprint, "SELECT ?");

        // A later tracker on the same pool takes over.
        let second = QueryTracker::new();
        second.attach(&mut a);
        record_external(&a, "SELECT 3", Duration::from_micros(5), true);
        assert_eq!(tracker.report().statements, 1);
        assert_eq!(second.report().errors, 1);
    }

    #[tokio::test]
    async fn a_dropped_pool_leaves_no_entry_behind() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = QueryTracker::new();
        let mut db = file_db(&dir, "gone.db").await;
        tracker.attach(&mut db);
        let pool = pool_id(&db).unwrap();
        db.close().await.unwrap();
        // Attaching anything prunes entries whose pool is gone.
        let mut other = file_db(&dir, "other.db").await;
        QueryTracker::new().attach(&mut other);
        assert!(ATTACHED.read().iter().all(|a| a.pool != pool));
    }
}
