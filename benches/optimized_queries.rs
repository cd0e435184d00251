//! The original system's before/after table as criterion benchmarks: each operation naive,
//! optimized and cached, with and without the composite-index migration, on the large dataset
//! (1M bookings) in SQLite and, when it answers, PostgreSQL.
//!
//! ```text
//! cargo bench --bench optimized_queries
//! HOTEL_BENCH_BACKENDS=sqlite cargo bench --bench optimized_queries -- availability
//! ```
//!
//! The SQLite files are generated once under target/bench-data/ (about 15 s each); the
//! PostgreSQL database `hotel_bench_<scale>` once per server (HOTEL_BENCH_PG_SCALE, default
//! large; a few minutes). Bench ids: `optimized_queries/<backend>/<operation>/<variant>/<indexes>`.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dataset::{DatasetOptions, Scale};
use migration::{Migrator, MigratorTrait};
use optimized_queries::{
    HotelCache,
    workload::{Operation, Variant, Workload},
};
use query_cache::QueryCache;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::runtime::Runtime;

const REFERENCE: (i32, u32, u32) = (2026, 11, 25);

fn reference() -> NaiveDate {
    NaiveDate::from_ymd_opt(REFERENCE.0, REFERENCE.1, REFERENCE.2).expect("a valid date")
}

fn backends() -> Vec<String> {
    std::env::var("HOTEL_BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".to_owned())
        .split(',')
        .map(str::to_owned)
        .collect()
}

async fn generate(db: &DatabaseConnection, scale: Scale) {
    Migrator::up(db, None)
        .await
        .expect("migrate the bench database");
    eprintln!("generating the {scale} dataset (once)...");
    dataset::generate(
        db,
        &DatasetOptions::new(scale).reference_date(reference()),
        &|_| {},
    )
    .await
    .expect("generate the bench dataset");
}

/// target/bench-data/large.sqlite with every migration, and a copy without the composite
/// indexes.
async fn sqlite_databases() -> [(String, &'static str); 2] {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let indexed = dir.join("large.sqlite");
    let plain = dir.join("large-noindex.sqlite");
    let url = |path: &PathBuf| format!("sqlite://{}", path.display());
    if !indexed.exists() {
        let db = db_connect::connect(&url(&indexed))
            .await
            .expect("create the bench database");
        generate(&db, Scale::Large).await;
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .expect("checkpoint");
        db.close().await.expect("close");
    }
    if !plain.exists() {
        std::fs::copy(&indexed, &plain).expect("copy the bench database");
        let db = db_connect::connect(&url(&plain))
            .await
            .expect("open the copy");
        Migrator::down(&db, Some(1))
            .await
            .expect("drop the composite indexes");
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .expect("checkpoint");
        db.close().await.expect("close");
    }
    [(url(&indexed), "indexed"), (url(&plain), "no-index")]
}

/// `hotel_bench_<scale>` on the test PostgreSQL server, or `None` when it does not answer.
async fn postgres_database() -> Option<String> {
    let admin_url = std::env::var("HOTEL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let scale: Scale = std::env::var("HOTEL_BENCH_PG_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Scale::Large);
    let admin = db_connect::connect(&admin_url).await.ok()?;
    let name = format!("hotel_bench_{scale}");
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        ))
        .await
        .ok()?
        .is_some();
    let url = format!(
        "{}/{name}",
        admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base)
    );
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .ok()?;
        let db = db_connect::connect(&url).await.ok()?;
        generate(&db, scale).await;
        db.close().await.ok()?;
    }
    Some(url)
}

fn bench_database(c: &mut Criterion, runtime: &Runtime, backend: &str, url: &str, indexes: &str) {
    let workload = runtime.block_on(async {
        let db = db_connect::connect(url)
            .await
            .expect("connect to the bench database");
        let hotel = HotelCache::new(
            QueryCache::builder()
                .max_entries(100_000)
                .build()
                .expect("a cache"),
        );
        Workload::prepare(db, hotel, reference())
            .await
            .expect("a generated dataset")
    });
    for operation in Operation::ALL {
        let mut group =
            c.benchmark_group(format!("optimized_queries/{backend}/{}", operation.id()));
        if matches!(operation, Operation::Report) {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        for variant in Variant::ALL {
            // The cache does not care about indexes: measure it once.
            if !variant.applies_to(operation)
                || (variant == Variant::Cached && indexes != "indexed")
            {
                continue;
            }
            if variant == Variant::Cached {
                for i in 0..256 {
                    runtime
                        .block_on(workload.run(operation, variant, i))
                        .expect("warm the cache");
                }
            }
            group.bench_function(BenchmarkId::new(variant.id(), indexes), |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let mut total = Duration::ZERO;
                        for i in 0..iters {
                            let started = Instant::now();
                            let made = workload
                                .run(operation, variant, i)
                                .await
                                .expect("the operation runs");
                            total += started.elapsed();
                            // Not timed: keeps repeated bookings from draining the inventory.
                            workload.undo(made).await.expect("undo the booking");
                        }
                        total
                    })
                })
            });
        }
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let wanted = backends();
    if wanted.iter().any(|b| b == "sqlite") {
        for (url, indexes) in runtime.block_on(sqlite_databases()) {
            bench_database(c, &runtime, "sqlite", &url, indexes);
        }
    }
    if wanted.iter().any(|b| b == "postgres") {
        match runtime.block_on(postgres_database()) {
            Some(url) => {
                bench_database(c, &runtime, "postgres", &url, "indexed");
                runtime.block_on(async {
                    let db = db_connect::connect(&url).await.expect("connect");
                    Migrator::down(&db, Some(1))
                        .await
                        .expect("drop the composite indexes");
                    db.execute_unprepared("ANALYZE").await.expect("analyze");
                });
                bench_database(c, &runtime, "postgres", &url, "no-index");
                runtime.block_on(async {
                    let db = db_connect::connect(&url).await.expect("connect");
                    Migrator::up(&db, None)
                        .await
                        .expect("restore the composite indexes");
                });
            }
            None => eprintln!(
                "SKIP postgres: no PostgreSQL at HOTEL_TEST_POSTGRES_URL / 127.0.0.1:5432"
            ),
        }
    }
}

criterion_group! {
    name = optimized_queries;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(optimized_queries);
