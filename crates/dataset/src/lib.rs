//! Fills a migrated hotel database with deterministic, realistic data.
//!
//! The same [`DatasetOptions`] (scale, seed, reference date) always give the same rows, on
//! SQLite and PostgreSQL alike. The data has the shape of a real hotel's:
//!
//! - inventory nights around the reference date, in the past (history for reports) and the
//!   future (nights to book);
//! - stays of 1 to 14 nights, mostly short, with a bump at a week; one room mostly, up to four;
//! - demand peaking on Friday and Saturday nights, in summer and in December, and thinning out
//!   for nights far ahead; bookings made weeks before the stay, sometimes the same day;
//! - statuses as time has left them: past stays checked out or still marked confirmed, current
//!   ones checked in, future ones mostly confirmed with some provisional; about one booking in
//!   eight cancelled; one payment per booking;
//! - a few administrators, and guests of whom some book often.
//!
//! The inventory is exact: for every room type and night, `available_rooms` is `total_rooms`
//! minus the rooms of the non-cancelled bookings covering that night, and never negative.
//!
//! Rows go in with multi-row INSERTs inside one transaction, while another thread draws the next
//! ones; non-unique indexes are set aside during the load and rebuilt from sorted data after it.
//! A failed generation leaves the database as it was.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dataset::{DatasetOptions, Scale};
//! use migration::MigratorTrait;
//!
//! let db = db_connect::connect("sqlite::memory:").await?;
//! migration::Migrator::up(&db, None).await?;
//! let options = DatasetOptions::new(Scale::Tiny).seed(7);
//! let summary = dataset::generate(&db, &options, &|_| {}).await?;
//! assert_eq!(summary.room_types, 3);
//! assert!(summary.bookings > 250);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod catalog;
mod deferred_indexes;
mod error;
mod generator;
mod loader;
mod scale;
mod single;

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};
use serde::Serialize;

pub use error::{Error, Result};
pub use scale::{Scale, ScaleSpec};
pub use single::insert_room_type;

use crate::{
    deferred_indexes::drop_secondary_indexes,
    error::DbContext,
    generator::Generator,
    loader::{insert_rows, reset_sequences},
};

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 42;

/// Bookings drawn per chunk handed from the drawing thread to the writer.
const CHUNK_BOOKINGS: usize = 25_000;

/// The tables a dataset fills.
const TABLES: [&str; 7] = [
    "users",
    "room_types",
    "room_inventory",
    "bookings",
    "payments",
    "waitlist_entries",
    "notifications",
];

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetOptions {
    /// How much.
    pub scale: Scale,
    /// Seed of the random number generator.
    pub seed: u64,
    /// "Today" for the data: history lies before it, bookable nights after.
    pub reference_date: NaiveDate,
}

impl DatasetOptions {
    /// Options for `scale` with [`DEFAULT_SEED`] and today (UTC) as the reference date.
    pub fn new(scale: Scale) -> Self {
        Self {
            scale,
            seed: DEFAULT_SEED,
            reference_date: chrono::Utc::now().date_naive(),
        }
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the reference date, making the data the same whatever day it is generated.
    pub fn reference_date(mut self, date: NaiveDate) -> Self {
        self.reference_date = date;
        self
    }

    /// Checks what [`generate`] checks of the options before it touches the database.
    ///
    /// # Errors
    ///
    /// [`Error::ReferenceDateOutOfRange`] outside [`EARLIEST_REFERENCE_DATE`] ..=
    /// [`LATEST_REFERENCE_DATE`].
    pub fn check(&self) -> Result<()> {
        if (EARLIEST_REFERENCE_DATE..=LATEST_REFERENCE_DATE).contains(&self.reference_date) {
            Ok(())
        } else {
            Err(Error::ReferenceDateOutOfRange {
                date: self.reference_date,
                earliest: EARLIEST_REFERENCE_DATE,
                latest: LATEST_REFERENCE_DATE,
            })
        }
    }
}

/// Progress of a running generation, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is being written.
    pub phase: &'static str,
    /// Rows written in this phase so far.
    pub done: u64,
    /// Rows this phase will write.
    pub total: u64,
}

/// What a generation wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The scale generated.
    pub scale: Scale,
    /// The seed used.
    pub seed: u64,
    /// The reference date used.
    pub reference_date: NaiveDate,
    /// Users written (guests and admins).
    pub users: usize,
    /// Of which administrators.
    pub admins: usize,
    /// Room types written.
    pub room_types: usize,
    /// Inventory nights written (room types × nights).
    pub inventory_nights: usize,
    /// Bookings written.
    pub bookings: usize,
    /// Payments written.
    pub payments: usize,
    /// Waitlist entries written.
    pub waitlist_entries: usize,
    /// Notifications written.
    pub notifications: usize,
    /// Wall-clock time, statistics refresh included.
    #[serde(with = "duration_millis")]
    pub elapsed: Duration,
}

mod duration_millis {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u128(d.as_millis())
    }
}

/// The earliest reference date [`generate`] accepts: the history before it (at most a year of
/// nights and users created up to about two years earlier) stays after 0001-01-01.
pub const EARLIEST_REFERENCE_DATE: NaiveDate = match NaiveDate::from_ymd_opt(10, 1, 1) {
    Some(date) => date,
    None => NaiveDate::MIN,
};
/// The latest reference date [`generate`] accepts: the bookable nights after it stay before
/// 9999-12-31.
pub const LATEST_REFERENCE_DATE: NaiveDate = match NaiveDate::from_ymd_opt(9990, 12, 31) {
    Some(date) => date,
    None => NaiveDate::MAX,
};

/// Generates the dataset described by `options` into `db`, which must be migrated and empty.
///
/// `progress` is called as rows are written (keep it cheap).
///
/// # Errors
///
/// [`Error::ReferenceDateOutOfRange`] outside [`EARLIEST_REFERENCE_DATE`] ..=
/// [`LATEST_REFERENCE_DATE`], [`Error::NotMigrated`] or [`Error::NotEmpty`], before anything is
/// written; [`Error::Database`] when a statement fails (the transaction being written is rolled
/// back, earlier ones stay).
pub async fn generate(
    db: &DatabaseConnection,
    options: &DatasetOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Summary> {
    let started = Instant::now();
    let phase_done = |phase: &str| {
        tracing::debug!(
            phase,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "dataset phase done"
        );
    };
    options.check()?;
    ensure_empty(db).await?;
    let spec = options.scale.spec();
    let mut generator = Generator::new(spec, options.seed, options.reference_date);
    let users = generator.users();
    let room_types = generator.room_types().to_vec();

    // One transaction: a failed load leaves the database as it was.
    let dedicated = dedicated_loader(db).await?;
    let txn = dedicated
        .as_ref()
        .unwrap_or(db)
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
        .doing("starting a transaction")?;
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        // A page cache that holds the tables' growing B-trees, and helper threads for the
        // sorts of the index rebuild.
        txn.execute_unprepared("PRAGMA cache_size = -524288; PRAGMA threads = 4")
            .await
            .doing("tuning the connection for the load")?;
    }
    let deferred = drop_secondary_indexes(&txn, &TABLES).await?;
    insert_rows(&txn, &room_types).await?;
    insert_rows(&txn, &users).await?;
    phase_done("users");
    progress(Progress {
        phase: "users",
        done: users.len() as u64,
        total: users.len() as u64,
    });

    // Drawing runs on its own thread so the next chunk is ready while this one is written.
    let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
    let drawer = std::thread::spawn(move || {
        while generator.bookings_remaining() > 0 {
            let chunk = generator.next_chunk(CHUNK_BOOKINGS);
            if chunk.bookings.is_empty() || sender.blocking_send(chunk).is_err() {
                break;
            }
        }
        generator.tail()
    });

    let (mut bookings, mut payments) = (0, 0);
    while let Some(chunk) = receiver.recv().await {
        insert_rows(&txn, &chunk.bookings).await?;
        insert_rows(&txn, &chunk.payments).await?;
        bookings += chunk.bookings.len();
        payments += chunk.payments.len();
        progress(Progress {
            phase: "bookings",
            done: bookings as u64,
            total: spec.bookings as u64,
        });
    }
    phase_done("bookings");
    let tail = drawer.join().map_err(|_| Error::GeneratorStopped)?;

    insert_rows(&txn, &tail.inventory).await?;
    insert_rows(&txn, &tail.daily_stats).await?;
    insert_rows(&txn, &tail.waitlist).await?;
    insert_rows(&txn, &tail.notifications).await?;
    progress(Progress {
        phase: "inventory",
        done: tail.inventory.len() as u64,
        total: tail.inventory.len() as u64,
    });
    reset_sequences(&txn, &TABLES).await?;
    phase_done("tail");
    progress(Progress {
        phase: "indexes",
        done: 0,
        total: 1,
    });
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        // Measured: index builds sort fastest in small runs that helper threads sort in
        // parallel, which a small page cache brings about (1.0 s against 2.0 s per index of
        // 1M rows with a 512 MB cache).
        txn.execute_unprepared("PRAGMA cache_size = -4096")
            .await
            .doing("tuning the connection for index builds")?;
    }
    deferred.rebuild(&txn).await?;
    phase_done("rebuilt");
    txn.commit().await.doing("committing the dataset")?;
    if let Some(loader) = dedicated {
        loader
            .close()
            .await
            .doing("closing the loader connection")?;
    }
    phase_done("commit");
    progress(Progress {
        phase: "indexes",
        done: 1,
        total: 1,
    });

    // Fresh planner statistics, so the first queries on the new data use the right indexes.
    // On SQLite, statistics from a sample of each index (as `PRAGMA optimize` takes them): a
    // full ANALYZE reads every index of a large dataset, for no better plans. On PostgreSQL a
    // VACUUM as well: after a bulk load the visibility map is empty, so every index-only scan
    // visits the table's pages until autovacuum comes by, and the database would measure
    // slower than one in steady state.
    let analyze = match db.get_database_backend() {
        DatabaseBackend::Sqlite => "PRAGMA analysis_limit = 1000; ANALYZE",
        _ => "VACUUM (ANALYZE)",
    };
    db.execute_unprepared(analyze)
        .await
        .doing("refreshing planner statistics")?;

    Ok(Summary {
        scale: options.scale,
        seed: options.seed,
        reference_date: options.reference_date,
        users: users.len(),
        admins: spec.admins,
        room_types: room_types.len(),
        inventory_nights: tail.inventory.len(),
        bookings,
        payments,
        waitlist_entries: tail.waitlist.len(),
        notifications: tail.notifications.len(),
        elapsed: started.elapsed(),
    })
}

/// On SQLite, a connection of its own for the load, with foreign-key enforcement off: the
/// generator assigns every id itself, so every reference is valid by construction, and the
/// checks would otherwise cost a third of the load (the tests run `PRAGMA foreign_key_check` on
/// generated data). PostgreSQL loads through `db` and keeps its checks.
async fn dedicated_loader(db: &DatabaseConnection) -> Result<Option<DatabaseConnection>> {
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(None);
    }
    let options = db
        .get_sqlite_connection_pool()
        .connect_options()
        .as_ref()
        .clone()
        .foreign_keys(false);
    let pool = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|err| Error::Database {
            doing: "opening the loader connection",
            source: sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(err.into())),
        })?;
    Ok(Some(DatabaseConnection::from(pool)))
}

/// Fails unless the hotel tables exist and hold no users, room types or bookings.
async fn ensure_empty(db: &DatabaseConnection) -> Result<()> {
    let backend = db.get_database_backend();
    for table in ["users", "room_types", "bookings", "booking_daily_stats"] {
        let exists_sql = match backend {
            DatabaseBackend::Postgres => format!(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
            _ => format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            ),
        };
        if count(db, &exists_sql).await? == 0 {
            return Err(Error::NotMigrated { table });
        }
        let rows = count(db, &format!("SELECT COUNT(*) FROM {table}")).await?;
        if rows > 0 {
            return Err(Error::NotEmpty { table, rows });
        }
    }
    Ok(())
}

async fn count(db: &DatabaseConnection, sql: &str) -> Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .doing("counting rows")?;
    Ok(row
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0))
}
