//! perf-stats: what recording a statement costs, next to what a fast statement costs.
//!
//! `cargo bench --bench perf_stats`. The figures are in docs/PERFORMANCE.md under `## perf-stats`.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{
    hint::black_box,
    time::{Duration, Instant, SystemTime},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perf_stats::{QueryTracker, fingerprint};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// What sea-orm sends for a typical entity lookup.
const SQL: &str = r#"SELECT "bookings"."id", "bookings"."user_id", "bookings"."room_type_id", "bookings"."start_date", "bookings"."end_date", "bookings"."rooms_booked", "bookings"."status", "bookings"."total_price", "bookings"."deposit_amount", "bookings"."is_deposit_paid", "bookings"."idempotency_key", "bookings"."created_at", "bookings"."updated_at" FROM "bookings" WHERE "bookings"."user_id" = ? AND "bookings"."status" = ? ORDER BY "bookings"."created_at" DESC LIMIT ?"#;

/// Seeded, realistic spread of durations: mostly tens of microseconds.
fn durations(n: usize) -> Vec<Duration> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..n)
        .map(|_| Duration::from_nanos(rng.random_range(5_000..200_000)))
        .collect()
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("perf-stats");
    group.throughput(Throughput::Elements(1));
    let elapsed = durations(1024);

    let tracker = QueryTracker::new();
    let mut i = 0;
    group.bench_function("record", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            tracker.record(black_box(SQL), elapsed[i], false);
        })
    });

    // Everything an attached connection adds per statement: sea-orm reads the clock before and
    // after the statement once a callback is set, then calls the tracker.
    let tracker = QueryTracker::new();
    group.bench_function("record_with_clock", |b| {
        b.iter(|| {
            let start = SystemTime::now();
            let elapsed = start.elapsed().unwrap_or_default();
            tracker.record(black_box(SQL), elapsed, false);
        })
    });

    // 50 shapes, as a service has: the cache and the entries are no longer hot in L1.
    let shapes: Vec<String> = (0..50)
        .map(|n| {
            SQL.replace(
                "\"status\" = ?",
                &format!("\"status\" = ? AND \"c{n}\" = ?"),
            )
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let order: Vec<usize> = (0..1024)
        .map(|_| rng.random_range(0..shapes.len()))
        .collect();
    let tracker = QueryTracker::new();
    group.bench_function("record_50_shapes", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            tracker.record(black_box(&shapes[order[i]]), elapsed[i], false);
        })
    });

    // Inside a scope (what a server does per request): the task-local and the scope's counts.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let tracker = QueryTracker::new();
    group.bench_function("record_in_scope", |b| {
        runtime.block_on(tracker.scope("bench", async {
            b.iter(|| {
                i = (i + 1) & 1023;
                tracker.record(black_box(SQL), elapsed[i], false);
            })
        }));
    });

    // Two threads recording the same shape at once (the machine has two cores).
    let tracker = QueryTracker::new();
    group.bench_function("record_same_shape_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let tracker = &tracker;
                    let elapsed = &elapsed;
                    s.spawn(move || {
                        for n in 0..iters {
                            tracker.record(black_box(SQL), elapsed[(n & 1023) as usize], false);
                        }
                    });
                }
            });
            // Per recorded statement: both threads' work, done in parallel.
            start.elapsed() / 2
        })
    });

    // The cold path, paid once per distinct SQL string.
    group.bench_function("fingerprint_uncached", |b| {
        b.iter(|| fingerprint(black_box(SQL)))
    });
    group.finish();
}

async fn lookup(db: &DatabaseConnection, id: i64) {
    let statement = Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT id, name FROM rooms WHERE id = ?",
        [id.into()],
    );
    black_box(db.query_one_raw(statement).await.expect("lookup"));
}

/// A primary-key lookup on SQLite in memory, with and without a tracker: the overhead in
/// context.
fn query(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let plain = runtime.block_on(async {
        let db = db_connect::connect("sqlite::memory:")
            .await
            .expect("SQLite");
        db.execute_unprepared(
            "CREATE TABLE rooms (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO rooms SELECT i, 'room ' || i FROM n;",
        )
        .await
        .expect("schema");
        db
    });
    let tracker = QueryTracker::new();
    let mut tracked = plain.clone();
    tracker.attach(&mut tracked);

    let mut group = c.benchmark_group("perf-stats");
    group.throughput(Throughput::Elements(1));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    group.bench_function("sqlite_pk_lookup_untracked", |b| {
        b.iter(|| runtime.block_on(lookup(&plain, rng.random_range(1..=1000))))
    });
    group.bench_function("sqlite_pk_lookup_tracked", |b| {
        b.iter(|| runtime.block_on(lookup(&tracked, rng.random_range(1..=1000))))
    });
    group.finish();
}

criterion_group!(benches, record, query);
criterion_main!(benches);
