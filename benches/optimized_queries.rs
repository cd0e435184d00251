//! The original system's before/after table as criterion benchmarks: each operation naive,
//! optimized and cached, with and without the composite indexes, beside its floor (the same
//! statements through the database's own client with cached prepared statements, decoding into
//! the same types), on a generated dataset in SQLite and, when it answers, PostgreSQL.
//!
//! ```text
//! cargo bench --bench optimized_queries
//! HOTEL_BENCH_BACKENDS=sqlite cargo bench --bench optimized_queries -- availability
//! HOTEL_BENCH_SCALE=medium cargo bench --bench optimized_queries -- 'optimized/|floor'
//! ```
//!
//! The SQLite files are generated once under target/bench-data/<scale>.sqlite (about 15 s for
//! large; HOTEL_BENCH_SCALE, default large); the PostgreSQL database `hotel_bench_<scale>` once
//! per server (HOTEL_BENCH_PG_SCALE, default large; a few minutes). Both are migrated to the
//! newest schema when opened. Bench ids:
//! `optimized_queries/<backend>/<operation>/<variant>/<indexes>`, where the variants are
//! `naive`, `optimized`, `cached` and the floors: `floor` (the helpers' own statements),
//! `floor_json` and `floor_two_statements` (the other plans for a guest's bookings) and
//! `floor_daily_rollup` (a report read from the per-day rollups directly). SQLite also gets
//! `optimized_queries/sqlite/hops/*` (what running a statement on sqlx's worker thread, on
//! tokio's blocking pool or inline costs) and a table of Python's `sqlite3` on the same
//! statements, printed at the end.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "floor/mod.rs"]
mod floor;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::NaiveDate;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use dataset::{DatasetOptions, Scale};
use floor::{postgres::PostgresFloor, python, sqlite::SqliteFloor};
use migration::{Migrator, MigratorTrait};
use optimized_queries::{DateRange, HotQuerySample, HotelCache, RoomCount, hot_queries};
use query_baselines::workload::{Operation, Variant, Workload};
use query_cache::QueryCache;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tokio::runtime::Runtime;

const REFERENCE: (i32, u32, u32) = (2026, 11, 25);
/// Distinct parameter sets the floors cycle through, as the workload's runs do.
const PARAMETER_SETS: u64 = 3_000;
const ROOM_TYPES_SQL: &str =
    "SELECT id, name, description, price_per_night, total_rooms FROM room_types ORDER BY id";

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

fn scale(variable: &str) -> Scale {
    std::env::var(variable)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Scale::Large)
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

/// target/bench-data/<scale>.sqlite with every migration, and a copy without the composite
/// indexes.
async fn sqlite_databases(scale: Scale) -> [(PathBuf, &'static str); 2] {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let indexed = dir.join(format!("{scale}.sqlite"));
    let plain = dir.join(format!("{scale}-noindex.sqlite"));
    if !indexed.exists() {
        let db = db_connect::connect(&sqlite_url(&indexed))
            .await
            .expect("create the bench database");
        generate(&db, scale).await;
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .expect("checkpoint");
        db.close().await.expect("close");
    }
    if !plain.exists() {
        std::fs::copy(&indexed, &plain).expect("copy the bench database");
        let db = db_connect::connect(&sqlite_url(&plain))
            .await
            .expect("open the copy");
        migration::drop_composite_indexes(&db)
            .await
            .expect("drop the composite indexes");
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .expect("checkpoint");
        db.close().await.expect("close");
    }
    for path in [&indexed, &plain] {
        let db = db_connect::connect(&sqlite_url(path)).await.expect("open");
        Migrator::up(&db, None)
            .await
            .expect("migrate to the newest schema");
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .expect("checkpoint");
        db.close().await.expect("close");
    }
    [(indexed, "indexed"), (plain, "no-index")]
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// `hotel_bench_<scale>` on the test PostgreSQL server, or `None` when it does not answer.
async fn postgres_database() -> Option<String> {
    let admin_url = std::env::var("HOTEL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let scale = scale("HOTEL_BENCH_PG_SCALE");
    let admin = db_connect::connect(&admin_url).await.ok()?;
    let name = format!("hotel_bench_{scale}");
    let exists = admin
        .query_one_raw(Statement::from_string(
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
    let db = db_connect::connect(&url).await.ok()?;
    Migrator::up(&db, None)
        .await
        .expect("migrate to the newest schema");
    db.close().await.ok()?;
    Some(url)
}

/// The statements the helpers run for the `i`-th parameters of the workload, built by the
/// crate's own code (`hot_queries`), for the floors to run.
struct Statements {
    room_types: Statement,
    availability: Vec<(i64, DateRange, Statement)>,
    user_bookings: Vec<(i64, Statement)>,
    /// The same statements with the page size bound (`LIMIT $n`) instead of written in: what
    /// the helper ran before it wrote the limit into the SQL.
    user_bookings_bound_limit: Vec<(i64, Statement)>,
    report: (Statement, Statement),
    daily_report: (Statement, Statement),
}

impl Statements {
    fn build(db: &DatabaseConnection, workload: &Workload) -> Self {
        let backend = db.get_database_backend();
        let named = |sample: &HotQuerySample, name: &str| {
            hot_queries(db, sample)
                .into_iter()
                .find(|q| q.name == name)
                .expect("a hot query of that name")
                .statement
        };
        let mut availability = Vec::new();
        let mut user_bookings = Vec::new();
        for i in 0..PARAMETER_SETS {
            let week = workload.week(i);
            let sample = HotQuerySample {
                room_type_id: workload.room_type(i),
                user_id: workload.guest(i),
                today: week.start(),
            };
            availability.push((sample.room_type_id, week, named(&sample, "availability")));
            user_bookings.push((sample.user_id, named(&sample, "user_bookings")));
        }
        let user_bookings_bound_limit = user_bookings
            .iter()
            .map(|(user, statement)| (*user, bound_limit(statement)))
            .collect();
        let year = HotQuerySample {
            room_type_id: 1,
            user_id: 1,
            today: reference(),
        };
        let range = workload.year();
        let daily = |sql: &str| {
            Statement::from_sql_and_values(backend, sql, [range.start().into(), range.end().into()])
        };
        Self {
            room_types: Statement::from_string(backend, ROOM_TYPES_SQL),
            availability,
            user_bookings,
            user_bookings_bound_limit,
            report: (
                named(&year, "booking_statistics"),
                named(&year, "occupancy"),
            ),
            daily_report: (
                daily(floor::DAILY_STATISTICS),
                daily(floor::DAILY_OCCUPANCY),
            ),
        }
    }

    fn at<T>(items: &[T], i: u64) -> &T {
        &items[i as usize % items.len()]
    }
}

/// `statement` (a guest's page, its limit written in) with the limit bound as its last value.
fn bound_limit(statement: &Statement) -> Statement {
    let (head, tail) = statement
        .sql
        .split_once(" LIMIT ")
        .expect("the page has a LIMIT");
    let (limit, rest) = tail.split_once(')').expect("the LIMIT ends the page");
    let mut values = statement.values.clone().map_or_else(Vec::new, |v| v.0);
    values.push(limit.parse::<i64>().expect("a written limit").into());
    let sql = format!("{head} LIMIT ${}){rest}", values.len());
    Statement::from_sql_and_values(statement.db_backend, sql, values)
}

/// A floor of one backend.
enum Floor {
    Sqlite(SqliteFloor),
    Postgres(PostgresFloor),
}

/// What one floor variant runs.
#[derive(Clone, Copy)]
enum FloorRun {
    RoomTypes,
    Availability,
    UserBookingsJoin,
    UserBookingsBoundLimit,
    UserBookingsJson,
    UserBookingsTwoStatements,
    Report,
    DailyRollupReport,
}

impl Floor {
    async fn run(&mut self, run: FloorRun, statements: &Statements, workload: &Workload, i: u64) {
        let rooms = RoomCount::ONE;
        match (self, run) {
            (Floor::Sqlite(f), FloorRun::RoomTypes) => drop(f.room_types(&statements.room_types)),
            (Floor::Postgres(f), FloorRun::RoomTypes) => {
                drop(f.room_types(&statements.room_types).await)
            }
            (Floor::Sqlite(f), FloorRun::Availability) => {
                let (rt, week, s) = Statements::at(&statements.availability, i);
                std::hint::black_box(f.availability(s, *rt, *week, rooms));
            }
            (Floor::Postgres(f), FloorRun::Availability) => {
                let (rt, week, s) = Statements::at(&statements.availability, i);
                std::hint::black_box(f.availability(s, *rt, *week, rooms).await);
            }
            (Floor::Sqlite(f), FloorRun::UserBookingsJoin) => {
                drop(f.user_bookings_join(&Statements::at(&statements.user_bookings, i).1))
            }
            (Floor::Postgres(f), FloorRun::UserBookingsJoin) => drop(
                f.user_bookings_join(&Statements::at(&statements.user_bookings, i).1)
                    .await,
            ),
            (Floor::Sqlite(f), FloorRun::UserBookingsBoundLimit) => drop(
                f.user_bookings_join(&Statements::at(&statements.user_bookings_bound_limit, i).1),
            ),
            (Floor::Postgres(f), FloorRun::UserBookingsBoundLimit) => drop(
                f.user_bookings_join(&Statements::at(&statements.user_bookings_bound_limit, i).1)
                    .await,
            ),
            (Floor::Sqlite(f), FloorRun::UserBookingsJson) => {
                drop(f.user_bookings_json(workload.guest(i)))
            }
            (Floor::Postgres(f), FloorRun::UserBookingsJson) => {
                drop(f.user_bookings_json(workload.guest(i)).await)
            }
            (Floor::Sqlite(f), FloorRun::UserBookingsTwoStatements) => {
                drop(f.user_bookings_two_statements(workload.guest(i)))
            }
            (Floor::Postgres(f), FloorRun::UserBookingsTwoStatements) => {
                drop(f.user_bookings_two_statements(workload.guest(i)).await)
            }
            (Floor::Sqlite(f), FloorRun::Report) => {
                let (s, o) = &statements.report;
                drop(f.report(s, o, workload.year()))
            }
            (Floor::Postgres(f), FloorRun::Report) => {
                let (s, o) = &statements.report;
                drop(f.report(s, o, workload.year()).await)
            }
            (Floor::Sqlite(f), FloorRun::DailyRollupReport) => {
                let (s, o) = &statements.daily_report;
                drop(f.report(s, o, workload.year()))
            }
            (Floor::Postgres(f), FloorRun::DailyRollupReport) => {
                let (s, o) = &statements.daily_report;
                drop(f.report(s, o, workload.year()).await)
            }
        }
    }

    /// The floors answer what the helpers answer (checked before anything is timed).
    async fn check(
        &mut self,
        statements: &Statements,
        workload: &Workload,
        db: &DatabaseConnection,
    ) {
        for i in [0, 1, 7, 59] {
            let (rt, week, s) = Statements::at(&statements.availability, i);
            let helper = optimized_queries::availability(db, *rt, *week, RoomCount::ONE)
                .await
                .unwrap();
            let (guest, u) = Statements::at(&statements.user_bookings, i);
            let query = optimized_queries::UserBookingsQuery {
                include_payments: true,
                ..Default::default()
            };
            let bookings = optimized_queries::user_bookings(db, *guest, query)
                .await
                .unwrap();
            match self {
                Floor::Sqlite(f) => {
                    assert_eq!(f.availability(s, *rt, *week, RoomCount::ONE), helper);
                    assert_eq!(f.user_bookings_join(u), bookings);
                    assert_eq!(f.user_bookings_two_statements(*guest), bookings);
                    assert_eq!(f.user_bookings_json(*guest), bookings);
                }
                Floor::Postgres(f) => {
                    assert_eq!(f.availability(s, *rt, *week, RoomCount::ONE).await, helper);
                    assert_eq!(f.user_bookings_join(u).await, bookings);
                    assert_eq!(f.user_bookings_two_statements(*guest).await, bookings);
                    assert_eq!(f.user_bookings_json(*guest).await, bookings);
                }
            }
        }
        let year = workload.year();
        let report = (
            optimized_queries::booking_statistics(db, year, None)
                .await
                .unwrap(),
            optimized_queries::occupancy(db, year, None).await.unwrap(),
        );
        let room_types = optimized_queries::room_types(db).await.unwrap();
        let ((s, o), (ds, dso)) = (&statements.report, &statements.daily_report);
        match self {
            Floor::Sqlite(f) => {
                assert_eq!(f.room_types(&statements.room_types), room_types);
                assert_eq!(f.report(s, o, year), report);
                assert_eq!(f.report(ds, dso, year), report);
            }
            Floor::Postgres(f) => {
                assert_eq!(f.room_types(&statements.room_types).await, room_types);
                assert_eq!(f.report(s, o, year).await, report);
                assert_eq!(f.report(ds, dso, year).await, report);
            }
        }
    }
}

fn floor_runs(operation: Operation) -> &'static [(&'static str, FloorRun)] {
    match operation {
        Operation::RoomTypes => &[("floor", FloorRun::RoomTypes)],
        Operation::Availability => &[("floor", FloorRun::Availability)],
        Operation::UserBookings => &[
            ("floor", FloorRun::UserBookingsJoin),
            ("floor_bound_limit", FloorRun::UserBookingsBoundLimit),
            ("floor_json", FloorRun::UserBookingsJson),
            ("floor_two_statements", FloorRun::UserBookingsTwoStatements),
        ],
        Operation::CreateBooking => &[],
        Operation::Report => &[
            ("floor", FloorRun::Report),
            ("floor_daily_rollup", FloorRun::DailyRollupReport),
        ],
    }
}

async fn open_workload(url: &str) -> Workload {
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
}

fn bench_database(
    c: &mut Criterion,
    runtime: &Runtime,
    backend: &str,
    url: &str,
    indexes: &str,
    mut floor: Option<Floor>,
) {
    let (workload, db) = runtime.block_on(async {
        let workload = open_workload(url).await;
        (workload, db_connect::connect(url).await.expect("connect"))
    });
    let statements = Statements::build(&db, &workload);
    if let Some(floor) = floor.as_mut() {
        runtime.block_on(floor.check(&statements, &workload, &db));
    }
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
        if let Some(floor) = floor.as_mut() {
            for (id, run) in floor_runs(operation) {
                bench_floor(
                    &mut group,
                    runtime,
                    id,
                    indexes,
                    floor,
                    *run,
                    &statements,
                    &workload,
                );
            }
        }
        group.finish();
    }
}

#[allow(clippy::too_many_arguments)]
fn bench_floor(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    id: &str,
    indexes: &str,
    floor: &mut Floor,
    run: FloorRun,
    statements: &Statements,
    workload: &Workload,
) {
    group.bench_function(BenchmarkId::new(id, indexes), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let started = Instant::now();
                    floor.run(run, statements, workload, i).await;
                    total += started.elapsed();
                }
                total
            })
        })
    });
}

/// What each way of reaching SQLite costs around the same statement (7-night availability)
/// and around no work at all: sea-orm on sqlx's worker thread, rusqlite on tokio's blocking
/// pool, rusqlite inline.
fn bench_hops(c: &mut Criterion, runtime: &Runtime, url: &str, path: &Path) {
    let (workload, db) = runtime.block_on(async {
        let workload = open_workload(url).await;
        (workload, db_connect::connect(url).await.expect("connect"))
    });
    let statements = Statements::build(&db, &workload);
    let mmap = mmap_bytes(runtime, &db);
    let inline = SqliteFloor::open(path, mmap);
    let shared = Arc::new(Mutex::new(Some(SqliteFloor::open(path, mmap))));
    let backend = db.get_database_backend();
    let mut group = c.benchmark_group("optimized_queries/sqlite/hops");
    // Each timed loop is the same shape: `iters` awaits of one way of running the statement.
    macro_rules! timed {
        ($name:expr, |$i:ident| $body:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for $i in 0..iters {
                            $body;
                        }
                        started.elapsed()
                    })
                })
            });
        };
    }
    timed!("availability_7n/sea_orm_sqlx_worker", |i| {
        let s = Statements::at(&statements.availability, i).2.clone();
        db.query_one_raw(s).await.unwrap().unwrap()
    });
    timed!("availability_7n/rusqlite_spawn_blocking", |i| {
        let (rt, week, s) = Statements::at(&statements.availability, i).clone();
        let shared = Arc::clone(&shared);
        tokio::task::spawn_blocking(move || {
            let guard = shared.lock().unwrap();
            guard
                .as_ref()
                .unwrap()
                .availability(&s, rt, week, RoomCount::ONE)
        })
        .await
        .unwrap()
    });
    timed!("availability_7n/rusqlite_inline", |i| {
        let (rt, week, s) = Statements::at(&statements.availability, i);
        inline.availability(s, *rt, *week, RoomCount::ONE)
    });
    let select_1 = Statement::from_string(backend, "SELECT 1");
    timed!("select_1/sea_orm_sqlx_worker", |_i| db
        .query_one_raw(select_1.clone())
        .await
        .unwrap()
        .unwrap());
    timed!("nothing/spawn_blocking", |_i| tokio::task::spawn_blocking(
        || ()
    )
    .await
    .unwrap());
    group.finish();
    drop(shared.lock().unwrap().take());
}

/// Room types as `optimized` reads them, but each read after a commit by another connection
/// (not timed): what a read costs when the rows its connection kept are out of date (the
/// statement and its decoding; rows read right after a commit are not kept, and while every
/// read follows a commit most reads skip `PRAGMA data_version`), beside the floor's read after
/// the same commit.
fn bench_room_types_after_commit(c: &mut Criterion, runtime: &Runtime, url: &str, path: &Path) {
    let db = runtime.block_on(db_connect::connect(url)).expect("connect");
    let writer = rusqlite::Connection::open(path).unwrap();
    writer.busy_timeout(Duration::from_secs(5)).unwrap();
    // Untimed, but criterion runs ~10^5 of them: no fsync per commit.
    writer.pragma_update(None, "synchronous", "OFF").unwrap();
    // A commit that changes the file (the header's user_version, between two values) but no
    // table: every other connection's data_version moves. (An UPDATE writing a row's own
    // values back changes no page: SQLite skips identical overwrites, the commit writes
    // nothing and data_version stays, which is how an earlier version of this bench timed the
    // kept rows while calling them "after a commit".)
    let version = std::cell::Cell::new(0_i64);
    let commit = || {
        version.set(1 - version.get());
        writer
            .pragma_update(None, "user_version", 100 + version.get())
            .unwrap()
    };
    // The floor pays the same after a commit (its page cache is dropped too): its own line.
    let workload = runtime.block_on(open_workload(url));
    let mmap = mmap_bytes(runtime, &db);
    let statements = Statements::build(&db, &workload);
    let floor = SqliteFloor::open(path, mmap);
    let mut group = c.benchmark_group("optimized_queries/sqlite/room_types");
    group.bench_function("floor_after_commit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                commit();
                let started = Instant::now();
                std::hint::black_box(floor.room_types(&statements.room_types));
                total += started.elapsed();
            }
            total
        })
    });
    for (id, after_commit) in [
        ("optimized_after_commit", true),
        ("optimized_unchanged", false),
    ] {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        if after_commit {
                            commit();
                        }
                        let started = Instant::now();
                        std::hint::black_box(optimized_queries::room_types(&db).await.unwrap());
                        total += started.elapsed();
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

fn mmap_bytes(runtime: &Runtime, db: &DatabaseConnection) -> i64 {
    runtime.block_on(async {
        db.query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA mmap_size",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
    })
}

/// Python's sqlite3 on the same file and statements, printed as a table.
fn python_reference(runtime: &Runtime, url: &str, path: &Path) {
    let (workload, db) = runtime.block_on(async {
        let workload = open_workload(url).await;
        (workload, db_connect::connect(url).await.expect("connect"))
    });
    let statements = Statements::build(&db, &workload);
    let mmap = mmap_bytes(runtime, &db);
    let take = |n: usize| -> Vec<u64> { (0..n as u64).collect() };
    let cases = vec![
        python::Case::Statements {
            name: "room_types".into(),
            iterations: 20_000,
            runs: vec![vec![statements.room_types.clone()]],
        },
        python::Case::Statements {
            name: "availability_7n".into(),
            iterations: 20_000,
            runs: take(600)
                .iter()
                .map(|i| vec![Statements::at(&statements.availability, *i).2.clone()])
                .collect(),
        },
        python::Case::Statements {
            name: "user_bookings (one statement, join)".into(),
            iterations: 10_000,
            runs: take(256)
                .iter()
                .map(|i| vec![Statements::at(&statements.user_bookings, *i).1.clone()])
                .collect(),
        },
        python::Case::UserTwoStatements {
            name: "user_bookings (two statements)".into(),
            iterations: 10_000,
            guests: take(256).iter().map(|i| workload.guest(*i)).collect(),
        },
        python::Case::Statements {
            name: "report_1y (monthly + daily rollups)".into(),
            iterations: 200,
            runs: vec![vec![
                statements.report.0.clone(),
                statements.report.1.clone(),
            ]],
        },
        python::Case::Statements {
            name: "report_1y (daily rollups directly)".into(),
            iterations: 50,
            runs: vec![vec![
                statements.daily_report.0.clone(),
                statements.daily_report.1.clone(),
            ]],
        },
    ];
    if let Some((version, medians)) = python::run(path, mmap, &cases) {
        println!(
            "\nPython sqlite3 (SQLite {version}) on {}, median per run:",
            path.display()
        );
        for (name, us) in medians {
            println!("  {name:<40} {us:>10.1} µs");
        }
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
        let databases = runtime.block_on(sqlite_databases(scale("HOTEL_BENCH_SCALE")));
        for (path, indexes) in &databases {
            let url = sqlite_url(path);
            let floor = (*indexes == "indexed").then(|| {
                let db = runtime
                    .block_on(db_connect::connect(&url))
                    .expect("connect");
                Floor::Sqlite(SqliteFloor::open(path, mmap_bytes(&runtime, &db)))
            });
            bench_database(c, &runtime, "sqlite", &url, indexes, floor);
        }
        let (path, _) = &databases[0];
        bench_hops(c, &runtime, &sqlite_url(path), path);
        bench_room_types_after_commit(c, &runtime, &sqlite_url(path), path);
        python_reference(&runtime, &sqlite_url(path), path);
    }
    if wanted.iter().any(|b| b == "postgres") {
        match runtime.block_on(postgres_database()) {
            Some(url) => {
                let floor = runtime.block_on(PostgresFloor::connect(&url));
                bench_database(
                    c,
                    &runtime,
                    "postgres",
                    &url,
                    "indexed",
                    Some(Floor::Postgres(floor)),
                );
                runtime.block_on(async {
                    let db = db_connect::connect(&url).await.expect("connect");
                    migration::drop_composite_indexes(&db)
                        .await
                        .expect("drop the composite indexes");
                    db.execute_unprepared("ANALYZE").await.expect("analyze");
                });
                bench_database(c, &runtime, "postgres", &url, "no-index", None);
                runtime.block_on(async {
                    let db = db_connect::connect(&url).await.expect("connect");
                    migration::create_composite_indexes(&db)
                        .await
                        .expect("restore the composite indexes");
                    db.execute_unprepared("ANALYZE").await.expect("analyze");
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
