//! Memory per cached entry, for sizing `CACHE_MAX_ENTRIES`: the hotel's real entries
//! (availability of one room type, availability of every room type, a guest's bookings)
//! loaded through `HotelCache` from the small dataset in SQLite, with dhat's allocator counting
//! the bytes that stay allocated per entry (value, key, tags, tag index and the cache's
//! bookkeeping). Then, when Redis answers (`HOTEL_TEST_REDIS_URL`, default
//! redis://127.0.0.1:6379), the Redis memory per availability entry of the shared tier, from
//! `INFO memory` before and after, under a prefix of its own that is deleted afterwards. Prints
//! tables; this measures bytes, not time.
//!
//! `cargo bench --bench cache_memory`

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use chrono::{Days, NaiveDate};
use dataset::{DatasetOptions, Scale};
use db_connect::testing::RedisPrefix;
use migration::{Migrator, MigratorTrait};
use optimized_queries::{DateRange, HotelCache, RoomCount, UserBookingsQuery};
use query_cache::{QueryCache, RedisConfig};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

// dhat's allocator counts the bytes the process holds (its profiler runs in testing mode: no
// file is written).
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

fn live_bytes() -> isize {
    dhat::HeapStats::get().curr_bytes as isize
}

const REFERENCE: (i32, u32, u32) = (2026, 11, 25);

/// One kind of entry measured: its name, how many were stored and the bytes they keep.
struct Measured {
    kind: &'static str,
    entries: u64,
    bytes: isize,
}

/// Runs `fill` (which stores entries in `hotel`) and measures what stays allocated.
async fn measure<F, Fut>(hotel: &HotelCache, kind: &'static str, fill: F) -> Measured
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let entries_before = hotel.cache().stats().entries;
    let before = live_bytes();
    fill().await;
    let bytes = live_bytes() - before;
    let entries = hotel.cache().stats().entries - entries_before;
    Measured {
        kind,
        entries,
        bytes,
    }
}

fn redis_used_memory(connection: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(connection)
        .expect("INFO memory");
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("used_memory in INFO")
}

/// Caches the availability of every room type for stays of 1 to 7 nights starting on each of
/// the `days` days from `from`.
async fn fill_availability(
    hotel: &HotelCache,
    db: &DatabaseConnection,
    room_types: &[i64],
    from: NaiveDate,
    days: u64,
) {
    let one_room = RoomCount::new(1).expect("one room");
    for &room_type in room_types {
        for day in 0..days {
            for nights in 1..=7 {
                let start = from + Days::new(day);
                let range = DateRange::new(start, start + Days::new(nights)).expect("a range");
                hotel
                    .availability(db, room_type, range, one_room)
                    .await
                    .expect("availability");
            }
        }
    }
}

async fn ids(db: &DatabaseConnection, sql: &str) -> Vec<i64> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("read ids")
        .iter()
        .map(|row| row.try_get_by_index::<i64>(0).expect("an id"))
        .collect()
}

fn main() {
    // Under `cargo test --all-targets` (no --bench) only a few entries of each kind.
    let full = std::env::args().any(|a| a == "--bench");
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("memory.sqlite").display());
        let db = db_connect::connect(&url)
            .await
            .expect("create the database");
        Migrator::up(&db, None).await.expect("migrate");
        let reference =
            NaiveDate::from_ymd_opt(REFERENCE.0, REFERENCE.1, REFERENCE.2).expect("a date");
        dataset::generate(
            &db,
            &DatasetOptions::new(Scale::Small).reference_date(reference),
            &|_| {},
        )
        .await
        .expect("generate the small dataset");

        let days = if full { 90 } else { 2 };
        let room_types = ids(&db, "SELECT id FROM room_types ORDER BY id").await;
        let mut users = ids(&db, "SELECT id FROM users ORDER BY id").await;
        if !full {
            users.truncate(10);
        }
        let cache = QueryCache::builder()
            .max_entries(1_000_000)
            .build()
            .expect("a cache");
        let hotel = HotelCache::new(cache);
        let one_room = RoomCount::new(1).expect("one room");
        let range = |day: u64, nights: u64| {
            let start = reference + Days::new(day);
            DateRange::new(start, start + Days::new(nights)).expect("a range")
        };
        // Warm every pooled connection's statement cache, so that it is not counted.
        for _ in 0..32 {
            hotel.cache().invalidate_all();
            hotel
                .availability(&db, room_types[0], range(0, 1), one_room)
                .await
                .expect("availability");
            hotel
                .all_availability(&db, range(0, 1), one_room)
                .await
                .expect("all availability");
            hotel
                .user_bookings(&db, users[0], UserBookingsQuery::default())
                .await
                .expect("user bookings");
        }
        hotel.cache().invalidate_all();

        let mut table = Vec::new();
        table.push(
            measure(&hotel, "availability (one room type, 1-7 nights)", || {
                fill_availability(&hotel, &db, &room_types, reference, days)
            })
            .await,
        );
        table.push(
            measure(
                &hotel,
                "availability (every room type, 1-7 nights)",
                || async {
                    for day in 0..days {
                        for nights in 1..=7 {
                            hotel
                                .all_availability(&db, range(day, nights), one_room)
                                .await
                                .expect("all availability");
                        }
                    }
                },
            )
            .await,
        );
        table.push(
            measure(&hotel, "a guest's bookings (limit 20)", || async {
                for &user in &users {
                    hotel
                        .user_bookings(&db, user, UserBookingsQuery::default())
                        .await
                        .expect("user bookings");
                }
            })
            .await,
        );

        println!(
            "memory per cached entry (small dataset: {} room types, {} guests)",
            room_types.len(),
            users.len()
        );
        println!("| entry | entries | bytes kept | bytes per entry |");
        println!("| --- | ---: | ---: | ---: |");
        for m in &table {
            let per_entry = if m.entries == 0 {
                0
            } else {
                m.bytes / m.entries as isize
            };
            println!(
                "| {} | {} | {} | {} |",
                m.kind, m.entries, m.bytes, per_entry
            );
        }

        let Some(redis_url) = benches::redis_url() else {
            println!("\nSKIP Redis: no Redis answers at HOTEL_TEST_REDIS_URL");
            db.close().await.expect("close");
            return;
        };
        // Its keys are deleted when `namespace` is dropped, at the end of the bench.
        let namespace = RedisPrefix::new(&redis_url, "bench:cache-memory");
        let mut connection = redis::Client::open(redis_url.as_str())
            .and_then(|c| c.get_connection())
            .expect("a Redis connection");
        let cache = QueryCache::builder()
            .max_entries(1_000_000)
            .redis(RedisConfig::new(&redis_url, namespace.prefix()).expect("a Redis config"))
            .build()
            .expect("a cache");
        assert!(
            cache
                .wait_for_redis(std::time::Duration::from_secs(2))
                .await
        );
        let hotel = HotelCache::new(cache);
        let before = redis_used_memory(&mut connection);
        fill_availability(&hotel, &db, &room_types, reference, days).await;
        let after = redis_used_memory(&mut connection);
        let values = namespace.keys("v:*").len();
        let all = namespace.keys("*");
        println!("\nRedis memory of the shared tier (`INFO memory` used_memory before and after)");
        println!("| entry | values | Redis keys in all | bytes | bytes per value |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        println!(
            "| availability (one room type, 1-7 nights) | {values} | {} | {} | {} |",
            all.len(),
            after - before,
            (after - before) / values.max(1) as i64
        );
        db.close().await.expect("close");
    });
}
