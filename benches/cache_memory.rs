//! Memory per cached entry, for sizing `CACHE_MAX_ENTRIES`: the hotel's real entries
//! (availability of one room type, availability of every room type, a guest's bookings)
//! loaded through `HotelCache` from the small dataset in SQLite, with a counting allocator
//! measuring the bytes that stay allocated per entry (value, key, tags, tag index and the
//! cache's bookkeeping). Prints a table; this measures bytes, not time.
//!
//! `cargo bench --bench cache_memory`

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicIsize, Ordering},
};

use chrono::{Days, NaiveDate};
use dataset::{DatasetOptions, Scale};
use migration::{Migrator, MigratorTrait};
use optimized_queries::{DateRange, HotelCache, RoomCount, UserBookingsQuery};
use query_cache::QueryCache;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// Counts the bytes currently allocated by the process.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only
// observes sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
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
            measure(
                &hotel,
                "availability (one room type, 1-7 nights)",
                || async {
                    for &room_type in &room_types {
                        for day in 0..days {
                            for nights in 1..=7 {
                                hotel
                                    .availability(&db, room_type, range(day, nights), one_room)
                                    .await
                                    .expect("availability");
                            }
                        }
                    }
                },
            )
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
        db.close().await.expect("close");
    });
}
