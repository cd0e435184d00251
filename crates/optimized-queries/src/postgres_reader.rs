//! Reads from PostgreSQL on a few connections the crate holds, beside the
//! `DatabaseConnection`'s sqlx pool.
//!
//! Why: sqlx gives a pooled connection back from a task it spawns when the connection is
//! dropped, and that task pings the server before the connection is idle again
//! (`PoolConnection::return_to_pool`). Every read through sea-orm therefore costs its
//! statement's round trip plus a spawned task, a wake-up of another thread and a second round
//! trip; nothing in sea-orm's or sqlx's options turns the ping off. A connection held here runs
//! the statement and goes back on a list: one round trip, no task (the crate docs give the
//! measurements).
//!
//! The connections come out of the pool itself (an idle one, pinged once, then detached), so
//! they carry the pool's options: credentials, TLS, statement cache, session settings. They are
//! read-only in effect: every statement given to them is a single `SELECT` outside any
//! transaction, so under PostgreSQL's read committed each one sees every transaction committed
//! before it starts, exactly as a pooled connection would.
//!
//! - **Bounded**: at most [`MAX_OPEN`] per pool, on top of the pool's own `max_connections`. A
//!   read that finds them all busy, or the pool without an idle connection to take, runs
//!   through sea-orm; a reader never waits for a connection.
//! - **Faults**: a connection idle long enough for a server, proxy or firewall to have dropped
//!   it, or since a lost connection was noticed, is pinged before use, by the pool's own rule
//!   (`db_connect::must_ping`). A statement whose connection fails (socket, protocol, a
//!   terminated backend) is run again through sea-orm, which retries on a checked connection
//!   ([`db_connect::retry_on_lost_connection`]); a statement the server rejects fails as it
//!   would through sea-orm. A read whose future is dropped midway closes its connection, which
//!   may hold half a response.
//! - **Lifetime**: the connections close when the pool is closed, and are dropped with the
//!   reader once the pool is gone.

use std::{
    any::Any,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseConnectionType, DbErr, QueryResult, RuntimeErr,
    Statement, Values,
    sqlx::{self, Connection, PgConnection, PgPool},
};
use sea_query_sqlx::SqlxValues;

use crate::{
    Error, Result,
    columns::Decode,
    executor::{Fetch, Ran},
    reader_registry::Registry,
};

/// Connections a reader holds at most, idle or in use, besides its pool's.
pub(crate) const MAX_OPEN: usize = 4;

/// An idle connection is pinged before use after this long (the pool's default rule).
const PING_IDLE_AFTER: Duration = db_connect::DEFAULT_PING_IDLE_AFTER;

static REGISTRY: Registry<PostgresReader> = Registry::new();

/// Runs `statement` on a connection held for `db`'s pool, or hands it back when `db` is not a
/// PostgreSQL pool, no connection is free, or the connection failed: the caller then runs it
/// through sea-orm.
pub(crate) async fn query<T: Decode + Send + 'static>(
    db: &(impl ConnectionTrait + 'static),
    statement: Statement,
    fetch: Fetch,
) -> std::result::Result<Result<Vec<T>>, Statement> {
    let Some(connection) = (db as &dyn Any).downcast_ref::<DatabaseConnection>() else {
        return Err(statement);
    };
    let DatabaseConnectionType::SqlxPostgresPoolConnection(_) = &connection.inner else {
        return Err(statement);
    };
    let pool = connection.get_postgres_connection_pool();
    let Some(mut held) = PostgresReader::of(pool).checkout(pool).await else {
        return Err(statement);
    };
    let started = Instant::now();
    match held.run::<T>(&statement, fetch).await {
        Ran::Rows(rows) => {
            let elapsed = started.elapsed();
            held.give_back();
            perf_stats::record_external(connection, &statement.sql, elapsed, rows.is_err());
            Ok(rows)
        }
        // The connection is closed as `held` drops.
        Ran::Elsewhere => Err(statement),
    }
}

/// The connections held for one pool.
pub(crate) struct PostgresReader {
    idle: Mutex<Vec<IdleConnection>>,
    /// Connections held, idle or in use.
    open: AtomicUsize,
    /// Set once the pool is closed: a connection given back after that is closed instead.
    closed: AtomicBool,
}

struct IdleConnection {
    connection: PgConnection,
    since: Instant,
}

impl PostgresReader {
    /// The reader of `pool`, made on first use.
    fn of(pool: &PgPool) -> Arc<Self> {
        if let Some(Some(known)) = REGISTRY.find(pool) {
            return known;
        }
        let reader = Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        // Its connections close with the pool: a closed pool's database may be dropped next,
        // which PostgreSQL refuses while anything is connected to it.
        // (sqlx's PostgreSQL driver runs on tokio, so a runtime is at hand; without one the
        // connections close when the reader is dropped with its pool.)
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let closed = pool.close_event();
            let weak = Arc::downgrade(&reader);
            runtime.spawn(async move {
                closed.await;
                if let Some(reader) = weak.upgrade() {
                    reader.closed.store(true, Ordering::Relaxed);
                    let closed = reader.idle().drain(..).count();
                    reader.open.fetch_sub(closed, Ordering::Relaxed);
                }
            });
        }
        REGISTRY.insert(pool, Some(reader.clone()));
        reader
    }

    fn idle(&self) -> MutexGuard<'_, Vec<IdleConnection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection to run a statement on: an idle one (pinged first when the pool would ping
    /// it), or one taken from the pool's idle connections while fewer than [`MAX_OPEN`] are
    /// held; `None` when neither is at hand.
    async fn checkout(self: Arc<Self>, pool: &PgPool) -> Option<Held> {
        if pool.is_closed() {
            return None;
        }
        loop {
            let Some(idle) = self.idle().pop() else {
                break;
            };
            let mut held = Held {
                reader: self.clone(),
                connection: Some(idle.connection),
                counted: true,
            };
            if !db_connect::must_ping(idle.since.elapsed(), PING_IDLE_AFTER) || held.ping().await {
                return Some(held);
            }
        }
        if self.open.fetch_add(1, Ordering::Relaxed) >= MAX_OPEN {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let mut held = Held {
            reader: self,
            connection: None,
            counted: true,
        };
        // The pool's idle connections are handed out unchecked by `try_acquire`: ping it once,
        // as it is about to be held for as long as it works.
        held.connection = Some(pool.try_acquire()?.detach());
        held.ping().await.then_some(held)
    }
}

/// A connection checked out of a reader: given back after a statement that completed, closed
/// otherwise (dropped midway, or broken).
struct Held {
    reader: Arc<PostgresReader>,
    /// `None` while being opened, or once found broken.
    connection: Option<PgConnection>,
    /// Whether this checkout counts as one of the reader's open connections: until it is
    /// given back to the idle list, which counts it from then on.
    counted: bool,
}

impl Held {
    /// Whether the connection answers a ping; a dead one is noted, as the pool notes it.
    async fn ping(&mut self) -> bool {
        let Some(connection) = self.connection.as_mut() else {
            return false;
        };
        match connection.ping().await {
            Ok(()) => true,
            Err(error) => {
                db_connect::note_connection_lost();
                tracing::info!(target: "optimized_queries", %error, "dead read connection closed");
                self.connection = None;
                false
            }
        }
    }

    async fn run<T: Decode>(&mut self, statement: &Statement, fetch: Fetch) -> Ran<T> {
        let Some(connection) = self.connection.as_mut() else {
            return Ran::Elsewhere;
        };
        let values = statement.values.clone().unwrap_or(Values(Vec::new()));
        let query = sqlx::query_with(
            sqlx::AssertSqlSafe(statement.sql.as_str()),
            SqlxValues(values),
        );
        let rows = match fetch {
            Fetch::One => query
                .fetch_optional(&mut *connection)
                .await
                .map(|row| row.into_iter().collect()),
            Fetch::All => query.fetch_all(&mut *connection).await,
        };
        match rows {
            Ok(rows) => Ran::Rows(
                rows.into_iter()
                    .map(|row| T::decode(&QueryResult::from(row)))
                    .collect(),
            ),
            Err(err) => {
                let rejected = matches!(err, sqlx::Error::Database(_));
                // As sea-orm reports it.
                let err = DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)));
                let lost = db_connect::is_connection_lost(&err);
                if rejected && !lost {
                    // The server rejected the statement; the connection is fine.
                    return Ran::Rows(Err(Error::Database(err)));
                }
                // Lost, or in a state nothing here can vouch for: closed, and the statement
                // runs through sea-orm, which reports what it finds.
                if lost {
                    db_connect::note_connection_lost();
                }
                tracing::debug!(target: "optimized_queries", error = %err, "read connection closed");
                self.connection = None;
                Ran::Elsewhere
            }
        }
    }

    /// Back on the idle list (or closed, when as many are idle as may be open, or the pool is
    /// closed).
    fn give_back(mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        let mut idle = self.reader.idle();
        // (The flag is read under the idle list's lock, which the close watcher takes after
        // setting it: a connection is either drained by the watcher or not put back.)
        if idle.len() < MAX_OPEN && !self.reader.closed.load(Ordering::Relaxed) {
            idle.push(IdleConnection {
                connection,
                since: Instant::now(),
            });
            self.counted = false;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.counted {
            // Closed (its connection, if any, drops with it).
            self.reader.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use db_connect::testing::TestDatabase;
    use sea_orm::{ConnectionTrait, DbBackend};

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Text(String);

    impl Decode for Text {
        fn decode(row: &impl crate::columns::Row) -> Result<Self> {
            Ok(Text(row.get(0)?))
        }
    }

    fn statement(sql: &str) -> Statement {
        Statement::from_string(DbBackend::Postgres, sql)
    }

    async fn read(db: &DatabaseConnection, sql: &str) -> Option<Result<Vec<Text>>> {
        query::<Text>(db, statement(sql), Fetch::All).await.ok()
    }

    /// As [`read`], once the pool has an idle connection to lend (sqlx gives connections back
    /// from a task of its own, a moment after a statement returns).
    async fn read_held(db: &DatabaseConnection, sql: &str) -> Result<Vec<Text>> {
        for _ in 0..100 {
            if let Some(rows) = read(db, sql).await {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the pool never had an idle connection to lend");
    }

    fn reader(db: &DatabaseConnection) -> Arc<PostgresReader> {
        PostgresReader::of(db.get_postgres_connection_pool())
    }

    /// Sessions connected to `test_db`'s database, as the server counts them.
    async fn sessions(test_db: &TestDatabase) -> i64 {
        let admin = db_connect::connect(&db_connect::testing::postgres_admin_url())
            .await
            .unwrap();
        let row = admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                [test_db.name().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        let _ = admin.close().await;
        row.try_get_by_index(0).unwrap()
    }

    #[tokio::test]
    async fn a_read_runs_on_a_held_connection_and_gives_it_back() {
        let Some(test_db) = TestDatabase::postgres().await else {
            return;
        };
        let db = test_db.connection();
        for _ in 0..3 {
            let rows = read_held(db, "SELECT 'one'::text").await;
            assert_eq!(rows.unwrap(), [Text("one".into())]);
        }
        let reader = reader(db);
        assert_eq!(reader.open.load(Ordering::Relaxed), 1);
        assert_eq!(reader.idle().len(), 1);
    }

    #[tokio::test]
    async fn a_read_dropped_midway_closes_its_connection() {
        let Some(test_db) = TestDatabase::postgres().await else {
            return;
        };
        let db = test_db.connection();
        // Connections for the pool to lend: the reader takes only idle ones.
        let sleeps = (0..3).map(|_| db.execute_unprepared("SELECT pg_sleep(0.05)"));
        for slept in futures::future::join_all(sleeps).await {
            slept.unwrap();
        }
        read_held(db, "SELECT 'warm'::text").await.unwrap();
        let slow = read(db, "SELECT pg_sleep(0.5)::text");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slow)
                .await
                .is_err()
        );
        let reader = reader(db);
        assert_eq!(reader.open.load(Ordering::Relaxed), 0);
        assert!(reader.idle().is_empty());
        // The next read gets a whole answer of its own, not the dropped one's.
        let rows = read_held(db, "SELECT 'next'::text").await;
        assert_eq!(rows.unwrap(), [Text("next".into())]);
    }

    #[tokio::test]
    async fn a_rejected_statement_fails_as_through_sea_orm_and_keeps_its_connection() {
        let Some(test_db) = TestDatabase::postgres().await else {
            return;
        };
        let db = test_db.connection();
        read_held(db, "SELECT 'warm'::text").await.unwrap();
        let Some(Err(Error::Database(here))) = read(db, "SELECT name FROM nowhere").await else {
            panic!("the statement should fail on the held connection");
        };
        let through_sea_orm = db
            .query_all_raw(statement("SELECT name FROM nowhere"))
            .await
            .unwrap_err();
        assert_eq!(here.to_string(), through_sea_orm.to_string());
        assert_eq!(reader(db).idle().len(), 1);
        read_held(db, "SELECT 'after'::text").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_reads_at_once_hold_at_most_max_open_connections() {
        let Some(test_db) = TestDatabase::postgres().await else {
            return;
        };
        let db = test_db.connection();
        let reads = (0..3 * MAX_OPEN).map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                match query::<Text>(&db, statement("SELECT pg_sleep(0.1)::text"), Fetch::All).await
                {
                    Ok(rows) => rows.map(|_| ()),
                    // Beyond the reader: through sea-orm.
                    Err(statement) => db
                        .query_all_raw(statement)
                        .await
                        .map(|_| ())
                        .map_err(Into::into),
                }
            })
        });
        for read in futures::future::join_all(reads).await {
            read.unwrap().unwrap();
        }
        let reader = reader(db);
        assert!(reader.open.load(Ordering::Relaxed) <= MAX_OPEN);
        assert!(reader.idle().len() <= MAX_OPEN);
    }

    #[tokio::test]
    async fn held_connections_close_with_the_pool() {
        let Some(test_db) = TestDatabase::postgres().await else {
            return;
        };
        let db = db_connect::connect(test_db.url()).await.unwrap();
        read_held(&db, "SELECT 'held'::text").await.unwrap();
        assert_eq!(reader(&db).idle().len(), 1);
        db.close().await.unwrap();
        // The test database's own pool keeps its connections: only ours must go.
        let own = test_db.connection().get_postgres_connection_pool().size();
        let mut left = i64::MAX;
        for _ in 0..50 {
            left = sessions(&test_db).await;
            if left <= i64::from(own) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            left <= i64::from(own),
            "{left} sessions left, the pool had {own}"
        );
    }
}
