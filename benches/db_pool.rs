//! What checking pooled PostgreSQL connections costs on the hot path, side by side in one run
//! (issue 16, item 1):
//!
//! - `db_connect/pool_check/<operation>/unchecked`: the pool as it was before (no check: a
//!   connection whose backend died fails the statement that uses it);
//! - `…/db_connect`: `db_connect::connect`'s pool, which pings only connections idle for
//!   10 s or since a lost connection was noticed (an atomic load otherwise), and reads that run
//!   again once on a lost connection;
//! - `…/ping_every_acquire`: sqlx's `test_before_acquire`, a ping on every checkout.
//!
//! and `db_connect/write_txn/<variant>`: a booking-sized write transaction with and without
//! the `SELECT txid_current()` that lets the write path learn a transaction's fate when its
//! connection is lost during `COMMIT`.
//!
//! ```text
//! cargo bench --bench db_pool
//! ```
//!
//! Needs the PostgreSQL at `HOTEL_TEST_POSTGRES_URL` (default 127.0.0.1:5432); prints a SKIP
//! line without it.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::time::Duration;

use chrono::NaiveDate;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use db_connect::testing::TestDatabase;
use migration::Migrator;
use optimized_queries::{DateRange, RoomCount};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, NotSet, Statement, TransactionTrait,
};
use tokio::runtime::Runtime;

const NIGHTS: i64 = 365;

fn first_night() -> NaiveDate {
    NaiveDate::from_ymd_opt(2030, 1, 1).expect("a valid date")
}

/// One room type with a year of inventory.
async fn seed(db: &DatabaseConnection) {
    let now = chrono::Utc::now();
    entity::room_type::ActiveModel {
        id: NotSet,
        name: Set("Standard".to_owned()),
        description: Set("Standard room".to_owned()),
        price_per_night: Set(10_000),
        total_rooms: Set(100),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    let year = DateRange::new(
        first_night(),
        first_night() + chrono::Duration::days(NIGHTS),
    )
    .unwrap();
    optimized_queries::update_inventory(db, 1, year, 100)
        .await
        .unwrap();
}

/// A pool opened by sea-orm directly, with or without sqlx's ping on every checkout.
async fn plain_pool(url: &str, ping_every_acquire: bool) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .max_connections(10)
        .test_before_acquire(ping_every_acquire);
    Database::connect(options).await.unwrap()
}

fn benches(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let Some(test_db) = runtime.block_on(TestDatabase::postgres()) else {
        eprintln!("SKIP db_pool: no PostgreSQL");
        return;
    };
    let test_db = runtime.block_on(test_db.migrated::<Migrator>());
    runtime.block_on(seed(test_db.connection()));
    let url = test_db.url().to_owned();
    let pools = runtime.block_on(async {
        [
            ("unchecked", plain_pool(&url, false).await),
            ("db_connect", db_connect::connect(&url).await.unwrap()),
            ("ping_every_acquire", plain_pool(&url, true).await),
        ]
    });

    let mut group = c.benchmark_group("db_connect/pool_check");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for (name, db) in &pools {
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        group.bench_function(format!("availability/{name}"), |b| {
            b.to_async(&runtime).iter(|| {
                let start = first_night() + chrono::Duration::days(rng.random_range(0..NIGHTS - 3));
                let stay = DateRange::new(start, start + chrono::Duration::days(3)).unwrap();
                async move {
                    optimized_queries::availability(db, 1, stay, RoomCount::ONE)
                        .await
                        .unwrap()
                }
            });
        });
    }
    group.finish();

    let db = &pools[1].1;
    let mut group = c.benchmark_group("db_connect/write_txn");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for with_xid in [false, true] {
        let name = if with_xid {
            "with_txid"
        } else {
            "without_txid"
        };
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let night = first_night() + chrono::Duration::days(rng.random_range(0..NIGHTS));
                async move {
                    let txn = db.begin().await.unwrap();
                    if with_xid {
                        txn.query_one_raw(Statement::from_string(
                            txn.get_database_backend(),
                            "SELECT txid_current()",
                        ))
                        .await
                        .unwrap();
                    }
                    // Take a room and give it back: the table stays as it was.
                    for delta in [-1, 1] {
                        txn.execute_raw(Statement::from_sql_and_values(
                            txn.get_database_backend(),
                            "UPDATE room_inventory SET available_rooms = available_rooms + $1 \
                             WHERE room_type_id = 1 AND date = $2",
                            [delta.into(), night.into()],
                        ))
                        .await
                        .unwrap();
                    }
                    txn.commit().await.unwrap();
                }
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = db_pool;
    config = Criterion::default().sample_size(50);
    targets = benches
}
criterion_main!(db_pool);
