//! perf-stats on real SQLite and PostgreSQL databases.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::NaiveDate;
use dataset::{DatasetOptions, Scale};
use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use entity::{BookingStatus, booking, prelude::*, room_inventory, room_type};
use migration::{EXPECTED_INDEXES, Migrator};
use perf_stats::{
    ExpectedIndex, HotQuery, MetricsRegistry, PlanOptions, PlanVerdict, QueryTracker,
    assert_max_queries, assert_queries, check_plans, compare_indexes,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, LoaderTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
};
use tracing_subscriber::{Layer, layer::SubscriberExt};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A clone of the test database's connection with `tracker` attached.
fn tracked(db: &TestDatabase, tracker: &QueryTracker) -> DatabaseConnection {
    let mut connection = db.connection().clone();
    tracker.attach(&mut connection);
    connection
}

/// SQL with `?` placeholders rewritten as `$1, $2…` on PostgreSQL.
fn native(backend: Backend, sql: &str) -> String {
    match backend {
        Backend::Sqlite => sql.to_owned(),
        Backend::Postgres => {
            let mut n = 0;
            sql.chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
    }
}

async fn migrated_with_data(db: TestDatabase) -> TestDatabase {
    let db = db.migrated::<Migrator>().await;
    let options = DatasetOptions::new(Scale::Tiny)
        .seed(1)
        .reference_date(NaiveDate::from_ymd_opt(2026, 3, 15).unwrap());
    dataset::generate(db.connection(), &options, &|_| {})
        .await
        .unwrap();
    db
}

/// One tracing event's fields, rendered as text.
type Fields = Vec<(String, String)>;

/// Tracing events of one test.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Fields>>>);

impl Events {
    /// Warnings with target `perf_stats` whose message contains `needle`.
    fn warnings(&self, needle: &str) -> Vec<Fields> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|fields| {
                fields
                    .iter()
                    .any(|(k, v)| k == "message" && v.contains(needle))
            })
            .cloned()
            .collect()
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

impl<S: tracing::Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Visitor(Vec<(String, String)>);
        impl tracing::field::Visit for Visitor {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push((field.name().to_owned(), value.to_owned()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN
            && event.metadata().target() == "perf_stats"
        {
            let mut visitor = Visitor(Vec::new());
            event.record(&mut visitor);
            self.0.lock().unwrap().push(visitor.0);
        }
    }
}

/// Collects this thread's perf-stats warnings until the guard drops. The tests run on a
/// current-thread runtime, so the callback fires on this thread.
fn capture_warnings() -> (Events, tracing::subscriber::DefaultGuard) {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    (events, guard)
}

// ---------------------------------------------------------------------------------------------
// Fingerprints of statements really run

async fn one_shape_per_query_on_both_dialects(db: TestDatabase) {
    let db = db.migrated::<Migrator>().await;
    let tracker = QueryTracker::new();
    let conn = tracked(&db, &tracker);
    conn.execute_unprepared("CREATE TABLE scratch (a INTEGER, b TEXT)")
        .await
        .unwrap();
    let backend = conn.get_database_backend();

    // Each group: statements that must share one fingerprint, and its expected text. The
    // expected texts are the same constants on both backends.
    let room_types_in = |ids: Vec<i64>| {
        RoomType::find()
            .filter(room_type::Column::Id.is_in(ids))
            .build(backend)
    };
    let groups: Vec<(Vec<Statement>, &str)> = vec![
        (
            vec![room_types_in(vec![1]), room_types_in(vec![1, 2, 3, 4, 5])],
            "SELECT room_types.id, room_types.name, room_types.description, \
             room_types.price_per_night, room_types.total_rooms, room_types.created_at, \
             room_types.updated_at FROM room_types WHERE room_types.id IN (...)",
        ),
        (
            vec![
                Statement::from_sql_and_values(
                    backend,
                    native(
                        db.backend(),
                        "INSERT INTO scratch (a, b) VALUES (?, ?), (?, ?)",
                    ),
                    [1.into(), "x".into(), 2.into(), "y".into()],
                ),
                Statement::from_sql_and_values(
                    backend,
                    native(
                        db.backend(),
                        "insert into scratch (a,b) values (?,?),(?,?),(?,?) -- batch",
                    ),
                    [
                        3.into(),
                        "x".into(),
                        4.into(),
                        "y".into(),
                        5.into(),
                        "z".into(),
                    ],
                ),
            ],
            "INSERT INTO scratch(a, b) VALUES (?, ?), ...",
        ),
        (
            vec![
                Statement::from_string(
                    backend,
                    "SELECT count(*) FROM scratch WHERE a > 1 AND b = 'x'",
                ),
                Statement::from_sql_and_values(
                    backend,
                    native(
                        db.backend(),
                        "SELECT COUNT(*)\n  FROM scratch\n WHERE a > ? AND b = ?",
                    ),
                    [2.into(), "y".into()],
                ),
            ],
            "SELECT COUNT(*) FROM scratch WHERE a > ? AND b = ?",
        ),
    ];
    for (statements, expected) in &groups {
        for statement in statements {
            conn.query_all_raw(statement.clone()).await.unwrap();
        }
        let stats = tracker
            .stats_for(&statements[0].sql)
            .unwrap_or_else(|| panic!("nothing recorded for {}", statements[0].sql));
        assert_eq!(stats.fingerprint, *expected, "{}", db.backend());
        assert_eq!(stats.calls, statements.len() as u64, "{expected}");
    }
    assert_eq!(tracker.report().queries.len(), groups.len());
}

// ---------------------------------------------------------------------------------------------
// What the metric callback covers

async fn attach_covers_clones_made_after_it_and_transactions(db: TestDatabase) {
    let tracker = QueryTracker::new();
    let before = db.connection().clone();
    let conn = tracked(&db, &tracker);
    let after = conn.clone();
    let backend = conn.get_database_backend();
    let select = |n: i32| {
        Statement::from_sql_and_values(
            backend,
            native(db.backend(), "SELECT ? + 1 AS n"),
            [n.into()],
        )
    };

    before.query_one_raw(select(1)).await.unwrap();
    assert_eq!(
        tracker.report().statements,
        0,
        "a clone made before attach records nothing"
    );

    after.query_one_raw(select(2)).await.unwrap();
    let txn = conn.begin().await.unwrap();
    txn.query_one_raw(select(3)).await.unwrap();
    txn.commit().await.unwrap();
    let stats = tracker.stats_for("SELECT ? + 1 AS n").unwrap();
    assert_eq!(
        stats.calls, 2,
        "a clone made after attach and a transaction both record"
    );
    assert_eq!(
        tracker.report().statements,
        2,
        "BEGIN and COMMIT are not reported by sea-orm's callback"
    );

    // Raw unprepared SQL bypasses the callback (documented on QueryTracker::attach).
    conn.execute_unprepared("SELECT 1").await.unwrap();
    assert_eq!(tracker.report().statements, 2);

    // A failing statement counts as an error.
    let bad = Statement::from_string(backend, "SELECT * FROM no_such_table");
    assert!(conn.query_all_raw(bad).await.is_err());
    let stats = tracker.stats_for("SELECT * FROM no_such_table").unwrap();
    assert_eq!((stats.calls, stats.errors), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// Slow queries

async fn slow_statements_are_logged_counted_and_kept(db: TestDatabase) {
    let threshold = Duration::from_millis(40);
    let tracker = QueryTracker::builder()
        .slow_threshold(threshold)
        .build()
        .unwrap();
    let conn = tracked(&db, &tracker);
    let backend = conn.get_database_backend();
    let slow_sql = match db.backend() {
        // Counting to two million in a recursive CTE takes a few hundred milliseconds.
        Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) \
             SELECT count(*) FROM c"
        }
        Backend::Postgres => "SELECT pg_sleep(0.1)",
    };
    let (events, _guard) = capture_warnings();
    conn.query_all_raw(Statement::from_string(backend, "SELECT 1"))
        .await
        .unwrap();
    conn.query_all_raw(Statement::from_string(backend, slow_sql))
        .await
        .unwrap();

    let report = tracker.report();
    assert_eq!(report.statements, 2);
    assert_eq!(report.slow_statements, 1, "only the slow one");
    let slow = &report.slow_queries[0];
    assert!(slow.duration >= threshold, "{:?}", slow.duration);
    let fingerprint = perf_stats::fingerprint(slow_sql);
    // The statement has no value list, so its masked SQL is its fingerprint.
    assert_eq!(slow.sql, fingerprint.text());
    assert_eq!(slow.fingerprint_id, fingerprint.id());

    let warnings = events.warnings("slow query");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(field(&warnings[0], "fingerprint"), fingerprint.text());
    let logged_ms: f64 = field(&warnings[0], "duration_ms").parse().unwrap();
    assert!(logged_ms >= 40.0, "{logged_ms}");

    let mut metrics = MetricsRegistry::new();
    metrics.register_tracker(&tracker);
    let text = metrics.encode().unwrap();
    let line = format!(
        "db_slow_queries_total{{operation=\"select\",fingerprint=\"{}\"}} 1",
        fingerprint.id()
    );
    assert!(text.contains(&line), "missing {line} in\n{text}");
}

// ---------------------------------------------------------------------------------------------
// N+1 detection and query budgets

/// Bookings, then each booking's room type one query at a time.
async fn naive_room_types(conn: &DatabaseConnection) -> usize {
    let bookings = Booking::find()
        .order_by_asc(booking::Column::Id)
        .limit(12)
        .all(conn)
        .await
        .unwrap();
    let mut found = 0;
    for b in &bookings {
        if RoomType::find_by_id(b.room_type_id)
            .one(conn)
            .await
            .unwrap()
            .is_some()
        {
            found += 1;
        }
    }
    found
}

async fn n_plus_one_fires_on_a_naive_loop_and_stays_quiet_on_a_join(db: TestDatabase) {
    let db = migrated_with_data(db).await;
    let tracker = QueryTracker::new();
    let conn = tracked(&db, &tracker);
    let (events, _guard) = capture_warnings();

    let (found, naive) = tracker
        .scope("GET /bookings (naive)", naive_room_types(&conn))
        .await;
    assert_eq!(found, 12);
    assert_eq!(naive.statements, 13);
    assert!(naive.has_n_plus_one());
    assert_eq!(naive.repeated.len(), 1);
    let repeated = &naive.repeated[0];
    assert_eq!(repeated.count, 12);
    assert!(
        repeated
            .fingerprint
            .ends_with("FROM room_types WHERE room_types.id = ? LIMIT ?"),
        "{}",
        repeated.fingerprint
    );

    let warnings = events.warnings("likely N+1");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(field(&warnings[0], "count"), "12");
    assert_eq!(field(&warnings[0], "scope"), "GET /bookings (naive)");
    assert_eq!(field(&warnings[0], "fingerprint"), repeated.fingerprint);

    // The fix: one JOIN.
    let (joined, join_scope) = tracker
        .scope("GET /bookings (join)", async {
            Booking::find()
                .find_also_related(RoomType)
                .order_by_asc(booking::Column::Id)
                .limit(12)
                .all(&conn)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(joined.iter().filter(|(_, r)| r.is_some()).count(), 12);
    assert_eq!(join_scope.statements, 1);
    assert!(!join_scope.has_n_plus_one());
    assert_eq!(events.warnings("likely N+1").len(), 1, "no new warning");

    let report = tracker.report();
    assert_eq!(report.n_plus_one.len(), 1);
    assert_eq!(report.n_plus_one[0].scope, "GET /bookings (naive)");
    assert_eq!(report.n_plus_one[0].max_repeats, 12);
    let rendered = report.to_string();
    assert!(rendered.contains("WARNING 12 ×"), "{rendered}");

    let mut metrics = MetricsRegistry::new();
    metrics.register_tracker(&tracker);
    let text = metrics.encode().unwrap();
    let line = format!(
        "db_n_plus_one_detections_total{{operation=\"select\",fingerprint=\"{}\"}} 1",
        repeated.fingerprint_id
    );
    assert!(text.contains(&line), "missing {line} in\n{text}");
}

async fn query_budgets_count_and_fail_readably(db: TestDatabase) {
    let db = migrated_with_data(db).await;
    let tracker = QueryTracker::new();
    let conn = tracked(&db, &tracker);

    // Batched loading: the bookings, then all their room types in one IN query.
    let (loaded, batched) = tracker
        .capture(async {
            let bookings = Booking::find()
                .order_by_asc(booking::Column::Id)
                .limit(12)
                .all(&conn)
                .await
                .unwrap();
            bookings.load_one(RoomType, &conn).await.unwrap()
        })
        .await;
    assert_eq!(loaded.iter().flatten().count(), 12);
    assert_queries!(batched, 2, "bookings and their room types");
    assert!(batched.statements()[1].fingerprint.contains("IN (...)"));
    batched.assert_no_repeats(2, None);

    let (_, naive) = tracker.capture(naive_room_types(&conn)).await;
    assert_max_queries!(naive, 13);
    let err = catch_unwind(AssertUnwindSafe(|| {
        assert_max_queries!(naive, 2, "bookings page");
    }))
    .expect_err("13 statements exceed a budget of 2");
    let message = err.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with(
            "query budget (bookings page): expected at most 2 statements, but 13 ran:\n    1. ["
        ),
        "{message}"
    );
    assert!(message.contains("\n   13. ["), "{message}");
    assert!(
        message.contains("repeated shapes:\n  12 × SELECT room_types.id"),
        "{message}"
    );
    // The SQL in the message is what ran, placeholders included.
    let placeholder = match db.backend() {
        Backend::Sqlite => "\"room_types\".\"id\" = ?",
        Backend::Postgres => "\"room_types\".\"id\" = $1",
    };
    assert!(message.contains(placeholder), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Indexes and plans

fn expected_indexes() -> Vec<ExpectedIndex> {
    EXPECTED_INDEXES
        .iter()
        .map(|spec| ExpectedIndex::new(spec.name, spec.table, spec.columns.iter().copied()))
        .collect()
}

/// Hot queries the composite indexes are meant to serve, and one that filters nothing.
fn hot_queries(backend: sea_orm::DbBackend) -> Vec<HotQuery> {
    let from = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
    vec![
        HotQuery::new(
            "confirmed bookings overlapping a week",
            Booking::find()
                .filter(booking::Column::Status.eq(BookingStatus::Confirmed))
                .filter(booking::Column::StartDate.lt(to))
                .filter(booking::Column::EndDate.gt(from))
                .build(backend),
        ),
        HotQuery::new(
            "a user's confirmed bookings, newest first",
            Booking::find()
                .filter(booking::Column::UserId.eq(3))
                .filter(booking::Column::Status.eq(BookingStatus::Confirmed))
                .order_by_desc(booking::Column::CreatedAt)
                .build(backend),
        ),
        HotQuery::new(
            "inventory of a room type for a week",
            RoomInventory::find()
                .filter(room_inventory::Column::RoomTypeId.eq(1))
                .filter(room_inventory::Column::Date.between(from, to))
                .build(backend),
        ),
        HotQuery::new("all room types", RoomType::find().build(backend)),
    ]
}

async fn index_check_reports_missing_indexes_after_down_and_is_clean_after_up(db: TestDatabase) {
    let db = migrated_with_data(db).await;
    let conn = db.connection();
    let backend = conn.get_database_backend();
    let expected = expected_indexes();
    let queries = hot_queries(backend);

    let clean = compare_indexes(conn, &expected).await.unwrap();
    assert!(clean.is_clean(), "{clean}");
    assert_eq!(clean.present.len(), EXPECTED_INDEXES.len());
    assert!(
        clean
            .constraints
            .iter()
            .any(|i| i.name == "uq_room_inventory_room_type_date" && i.unique),
        "{:?}",
        clean.constraints
    );
    let plans = check_plans(conn, &queries, &PlanOptions::default())
        .await
        .unwrap();
    assert!(!plans.has_problems(), "{plans}");
    assert_eq!((plans.indexed, plans.filtered), (3, 3), "{plans}");
    assert_eq!(plans.share_indexed, 1.0);
    assert_eq!(plans.queries[3].verdict, PlanVerdict::Unfiltered);
    let user_bookings = &plans.queries[1];
    assert_eq!(
        user_bookings.indexes_used,
        ["idx_bookings_user_status_created"],
        "{plans}"
    );
    if db.backend() == Backend::Sqlite {
        assert!(
            !user_bookings.temp_sort,
            "the index gives the order: {plans}"
        );
    }

    // Without the composite-index migration.
    migration::drop_composite_indexes(conn).await.unwrap();
    let comparison = compare_indexes(conn, &expected).await.unwrap();
    assert!(!comparison.is_clean());
    let mut missing: Vec<&str> = comparison.missing.iter().map(|i| i.name.as_str()).collect();
    missing.sort_unstable();
    let mut all: Vec<&str> = EXPECTED_INDEXES.iter().map(|s| s.name).collect();
    all.sort_unstable();
    assert_eq!(missing, all);
    assert!(comparison.present.is_empty() && comparison.unexpected.is_empty());
    assert!(comparison.to_string().contains(
        "MISSING     idx_bookings_user_status_created ON bookings (user_id, status, created_at)"
    ));

    let plans = check_plans(conn, &queries, &PlanOptions::default())
        .await
        .unwrap();
    assert!(plans.has_problems());
    // A user's bookings still find an index: the unique constraint on (user_id,
    // idempotency_key) leads with user_id. It cannot give the order, so they sort.
    assert_eq!((plans.indexed, plans.filtered), (2, 3), "{plans}");
    assert_eq!(plans.queries[1].verdict, PlanVerdict::Indexed, "{plans}");
    {
        let spec = "idx_bookings_status_start_end";
        let report = &plans.queries[0];
        assert_eq!(report.verdict, PlanVerdict::FullScan, "{plans}");
        assert_eq!(report.full_scans, ["bookings"]);
        // The suggestion is exactly the index the migration declares for this query.
        let declared = EXPECTED_INDEXES.iter().find(|s| s.name == spec).unwrap();
        assert_eq!(report.suggestions[0].columns, declared.columns, "{plans}");
        assert!(report.suggestions[0].migration.contains("Index::create()"));
    }
    if db.backend() == Backend::Sqlite {
        assert!(
            plans.queries[1].temp_sort,
            "ORDER BY needs a temporary B-tree: {plans}"
        );
    }
    let rendered = plans.to_string();
    assert!(rendered.contains("FULL SCAN"), "{rendered}");
    assert!(
        rendered.contains("hot queries served by an index: 2/3 (66.7 %"),
        "{rendered}"
    );

    // And back.
    migration::create_composite_indexes(conn).await.unwrap();
    assert!(compare_indexes(conn, &expected).await.unwrap().is_clean());
    assert!(
        !check_plans(conn, &queries, &PlanOptions::default())
            .await
            .unwrap()
            .has_problems()
    );
}

async fn pool_gauges_are_exported(db: TestDatabase) {
    let mut metrics = MetricsRegistry::new();
    metrics.register_pool(db.connection());
    db.connection()
        .execute_unprepared("SELECT 1")
        .await
        .unwrap();
    let text = metrics.encode().unwrap();
    assert!(text.contains("# TYPE db_pool_connections gauge"), "{text}");
    let open: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("db_pool_connections "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(open >= 1.0, "{text}");
}

test_on_backends!(
    one_shape_per_query_on_both_dialects,
    attach_covers_clones_made_after_it_and_transactions,
    slow_statements_are_logged_counted_and_kept,
    n_plus_one_fires_on_a_naive_loop_and_stays_quiet_on_a_join,
    query_budgets_count_and_fail_readably,
    index_check_reports_missing_indexes_after_down_and_is_clean_after_up,
    pool_gauges_are_exported,
);
