//! What durable commits cost on the write path: `create_booking` on SQLite with
//! `synchronous = FULL` (the default: every commit is on disk before it returns) beside
//! `synchronous = NORMAL` (`durable_commits: false`, `hotel-server --sqlite-synchronous
//! normal`: synced at WAL checkpoints only), in one run, one booking per iteration.
//!
//! ```text
//! cargo bench --bench durable_commits
//! ```
//!
//! Bench ids: `optimized_queries/create_booking_sqlite/{full,normal}`. Each setting gets a fresh
//! database under target/bench-data (on the disk, not a tmpfs, where an fsync would cost
//! nothing) with one room type of 10 000 rooms on 700 nights; iteration `i` books one room on
//! night `i mod 700`, so no night runs out and every booking takes the same path.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use chrono::{Days, NaiveDate, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use db_connect::ConnectionSettings;
use entity::{UserRole, room_type, user};
use migration::{Migrator, MigratorTrait};
use optimized_queries::{BookingRequest, DateRange, RoomCount};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, NotSet};
use tokio::runtime::Runtime;

const NIGHTS: u64 = 700;
const ROOMS: i32 = 10_000;

fn first_night() -> NaiveDate {
    NaiveDate::from_ymd_opt(2030, 1, 1).expect("a valid date")
}

fn night(i: u64) -> NaiveDate {
    first_night() + Days::new(i % NIGHTS)
}

/// A fresh hotel in `dir`: one guest (id 1) and one room type (id 1) with inventory.
async fn hotel(dir: &tempfile::TempDir, durable_commits: bool) -> DatabaseConnection {
    let url = format!("sqlite://{}", dir.path().join("hotel.sqlite").display());
    let settings = ConnectionSettings {
        durable_commits,
        ..ConnectionSettings::default()
    };
    let db = db_connect::connect_with(&url, &settings)
        .await
        .expect("create the bench database");
    Migrator::up(&db, None).await.expect("migrate");
    user::ActiveModel {
        id: NotSet,
        name: Set("Guest".to_owned()),
        email: Set("guest@example.com".to_owned()),
        phone: Set(None),
        role: Set(UserRole::Guest),
        created_at: Set(Utc::now()),
    }
    .insert(&db)
    .await
    .expect("a guest");
    room_type::ActiveModel {
        id: NotSet,
        name: Set("Standard".to_owned()),
        description: Set("Standard room".to_owned()),
        price_per_night: Set(10_000),
        total_rooms: Set(ROOMS),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(&db)
    .await
    .expect("a room type");
    let nights = DateRange::new(first_night(), night(NIGHTS - 1) + Days::new(1)).unwrap();
    optimized_queries::update_inventory(&db, 1, nights, ROOMS)
        .await
        .expect("inventory");
    db
}

fn durable_commits(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a runtime");
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&base).expect("create target/bench-data");
    let today = first_night();
    let mut group = c.benchmark_group("optimized_queries/create_booking_sqlite");
    group.throughput(Throughput::Elements(1));
    for (id, durable) in [("full", true), ("normal", false)] {
        let dir = tempfile::tempdir_in(&base).expect("a bench directory");
        let db = runtime.block_on(hotel(&dir, durable));
        let mut next = 0_u64;
        group.bench_function(id, |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iterations {
                        let request = BookingRequest {
                            user_id: 1,
                            room_type_id: 1,
                            stay: DateRange::new(night(next), night(next) + Days::new(1)).unwrap(),
                            rooms: RoomCount::new(1).unwrap(),
                            idempotency_key: None,
                        };
                        next += 1;
                        let outcome = optimized_queries::create_booking(&db, &request, today)
                            .await
                            .expect("a booking");
                        std::hint::black_box(outcome);
                    }
                    start.elapsed()
                })
            });
        });
        runtime.block_on(db.close()).expect("close");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = durable_commits
}
criterion_main!(benches);
