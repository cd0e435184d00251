//! Migrations on real SQLite and PostgreSQL databases.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use migration::{EXPECTED_INDEXES, Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

async fn index_names(db: &DatabaseConnection) -> Vec<String> {
    let sql = match Backend::of_connection(db) {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'seaql_migrations'"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    names.sort();
    names
}

async fn table_names(db: &DatabaseConnection) -> Vec<String> {
    let sql = match Backend::of_connection(db) {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'"
        }
        Backend::Postgres => {
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'seaql_migrations'"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    names.sort();
    names
}

const TABLES: [&str; 11] = [
    "api_tokens",
    "booking_daily_stats",
    "booking_monthly_stats",
    "bookings",
    "notifications",
    "payments",
    "room_inventory",
    "room_inventory_monthly",
    "room_types",
    "users",
    "waitlist_entries",
];

async fn up_down_up_leaves_the_full_schema(test_db: TestDatabase) {
    let db = test_db.connection();
    Migrator::up(db, None).await.unwrap();
    assert_eq!(table_names(db).await, TABLES);
    assert!(
        Migrator::get_pending_migrations(db)
            .await
            .unwrap()
            .is_empty()
    );

    Migrator::down(db, None).await.unwrap();
    assert!(
        table_names(db).await.is_empty(),
        "down must drop every table"
    );
    assert!(
        index_names(db).await.is_empty(),
        "down must drop every index"
    );

    Migrator::up(db, None).await.unwrap();
    assert_eq!(table_names(db).await, TABLES);
    assert_eq!(
        Migrator::get_applied_migrations(db).await.unwrap().len(),
        Migrator::migrations().len()
    );
}

async fn index_migration_creates_and_drops_exactly_its_indexes(test_db: TestDatabase) {
    let db = test_db.connection();
    let its_indexes: Vec<_> =
        migration::indexes::created_by("m20261125_000003_composite_indexes").collect();
    assert!(!its_indexes.is_empty(), "the registry names the migration");
    Migrator::up(db, Some(2)).await.unwrap();
    let before = index_names(db).await;
    for spec in &its_indexes {
        assert!(
            !before.contains(&spec.name.to_owned()),
            "{} exists before its migration",
            spec.name
        );
    }

    Migrator::up(db, Some(1)).await.unwrap();
    let after_up = index_names(db).await;
    for spec in &its_indexes {
        assert!(
            after_up.contains(&spec.name.to_owned()),
            "{} missing after up: {after_up:?}",
            spec.name
        );
    }
    let added: Vec<_> = after_up.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(
        added.len(),
        its_indexes.len(),
        "up created other indexes too: {added:?}"
    );

    Migrator::down(db, Some(1)).await.unwrap();
    assert_eq!(
        index_names(db).await,
        before,
        "down must drop exactly what up created"
    );
}

async fn composite_indexes_cover_the_listed_columns(test_db: TestDatabase) {
    let db = test_db.connection();
    Migrator::up(db, None).await.unwrap();
    for spec in EXPECTED_INDEXES {
        let columns: Vec<String> = match test_db.backend() {
            Backend::Sqlite => db
                .query_all_raw(Statement::from_string(
                    db.get_database_backend(),
                    format!(
                        "SELECT name FROM pragma_index_info('{}') ORDER BY seqno",
                        spec.name
                    ),
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get_by_index(0).unwrap())
                .collect(),
            Backend::Postgres => db
                .query_all_raw(Statement::from_sql_and_values(
                    db.get_database_backend(),
                    "SELECT a.attname FROM pg_index i \
                     JOIN pg_class c ON c.oid = i.indexrelid \
                     JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE c.relname = $1 ORDER BY k.ord",
                    [spec.name.into()],
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get_by_index(0).unwrap())
                .collect(),
        };
        assert_eq!(columns, spec.columns, "columns of {}", spec.name);
    }
}

async fn exec(db: &DatabaseConnection, sql: &str) -> Result<(), sea_orm::DbErr> {
    db.execute_unprepared(sql).await.map(|_| ())
}

async fn constraints_reject_bad_rows(test_db: TestDatabase) {
    let db = test_db.connection();
    Migrator::up(db, None).await.unwrap();
    let now = "'2026-01-01 00:00:00+00:00'";
    exec(db, &format!("INSERT INTO users (name, email, role, created_at) VALUES ('Ann', 'ann@example.com', 'guest', {now})")).await.unwrap();
    exec(db, &format!("INSERT INTO room_types (name, description, price_per_night, total_rooms, created_at, updated_at) VALUES ('Double', 'Two beds', 12000, 10, {now}, {now})")).await.unwrap();
    exec(db, "INSERT INTO room_inventory (room_type_id, date, total_rooms, available_rooms) VALUES (1, '2026-02-01', 10, 10)").await.unwrap();

    let rejected = [
        ("availability below zero", "INSERT INTO room_inventory (room_type_id, date, total_rooms, available_rooms) VALUES (1, '2026-02-02', 10, -1)".to_owned()),
        ("availability above total", "INSERT INTO room_inventory (room_type_id, date, total_rooms, available_rooms) VALUES (1, '2026-02-03', 10, 11)".to_owned()),
        ("two rows for one night", "INSERT INTO room_inventory (room_type_id, date, total_rooms, available_rooms) VALUES (1, '2026-02-01', 10, 9)".to_owned()),
        ("inventory of an unknown room type", "INSERT INTO room_inventory (room_type_id, date, total_rooms, available_rooms) VALUES (99, '2026-02-01', 10, 9)".to_owned()),
        ("end before start", format!("INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at) VALUES (1, 1, '2026-02-05', '2026-02-04', 1, 'CONFIRMED', 100, 0, false, {now}, {now})")),
        ("end equal to start", format!("INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at) VALUES (1, 1, '2026-02-05', '2026-02-05', 1, 'CONFIRMED', 100, 0, false, {now}, {now})")),
        ("zero rooms", format!("INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at) VALUES (1, 1, '2026-02-05', '2026-02-06', 0, 'CONFIRMED', 100, 0, false, {now}, {now})")),
        ("unknown booking status", format!("INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at) VALUES (1, 1, '2026-02-05', '2026-02-06', 1, 'LOST', 100, 0, false, {now}, {now})")),
        ("booking by an unknown user", format!("INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at) VALUES (42, 1, '2026-02-05', '2026-02-06', 1, 'CONFIRMED', 100, 0, false, {now}, {now})")),
        ("duplicate email", format!("INSERT INTO users (name, email, role, created_at) VALUES ('Ann 2', 'ann@example.com', 'guest', {now})")),
        ("unknown role", format!("INSERT INTO users (name, email, role, created_at) VALUES ('Bob', 'bob@example.com', 'root', {now})")),
    ];
    for (what, sql) in rejected {
        assert!(exec(db, &sql).await.is_err(), "the schema accepted {what}");
    }

    // A booking the constraints allow, and an update that would break one.
    exec(db, &format!("INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, idempotency_key, created_at, updated_at) VALUES (1, 1, '2026-02-01', '2026-02-02', 1, 'CONFIRMED', 12000, 0, false, 'k1', {now}, {now})")).await.unwrap();
    assert!(
        exec(db, "UPDATE room_inventory SET available_rooms = available_rooms - 11 WHERE room_type_id = 1").await.is_err(),
        "an update below zero must fail"
    );
    assert!(
        exec(db, &format!("INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, idempotency_key, created_at, updated_at) VALUES (1, 1, '2026-02-01', '2026-02-02', 1, 'CONFIRMED', 12000, 0, false, 'k1', {now}, {now})")).await.is_err(),
        "a duplicate idempotency key must fail"
    );
}

async fn daily_stats_migration_sums_existing_bookings(test_db: TestDatabase) {
    let db = test_db.connection();
    Migrator::up(db, Some(1)).await.unwrap();
    let now = "'2026-01-01 00:00:00+00:00'";
    exec(db, &format!("INSERT INTO users (name, email, role, created_at) VALUES ('Ann', 'ann@example.com', 'guest', {now})")).await.unwrap();
    exec(db, &format!("INSERT INTO room_types (name, description, price_per_night, total_rooms, created_at, updated_at) VALUES ('Double', 'Two beds', 10000, 10, {now}, {now})")).await.unwrap();
    for (start, end, rooms, status, price) in [
        ("2026-02-01", "2026-02-03", 1, "CONFIRMED", 20000),
        ("2026-02-01", "2026-02-04", 2, "CONFIRMED", 60000),
        ("2026-02-01", "2026-02-02", 1, "CANCELLED", 10000),
        ("2026-02-05", "2026-02-06", 1, "CONFIRMED", 10000),
    ] {
        exec(db, &format!("INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at) VALUES (1, 1, '{start}', '{end}', {rooms}, '{status}', {price}, 0, false, {now}, {now})")).await.unwrap();
    }
    Migrator::up(db, None).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(arrival_date AS TEXT), status, bookings, rooms, room_nights, revenue FROM booking_daily_stats ORDER BY 1, 2",
        ))
        .await
        .unwrap();
    let rows: Vec<(String, String, i64, i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
                r.try_get_by_index(3).unwrap(),
                r.try_get_by_index(4).unwrap(),
                r.try_get_by_index(5).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "2026-02-01".to_owned(),
                "CANCELLED".to_owned(),
                1,
                1,
                1,
                10000
            ),
            (
                "2026-02-01".to_owned(),
                "CONFIRMED".to_owned(),
                2,
                3,
                8,
                80000
            ),
            (
                "2026-02-05".to_owned(),
                "CONFIRMED".to_owned(),
                1,
                1,
                1,
                10000
            ),
        ]
    );
}

/// What the rebuild of `bookings` must keep: every table's, index's and trigger's definition
/// (SQLite), or the constraints and indexes of `bookings` (PostgreSQL).
async fn bookings_schema(db: &DatabaseConnection) -> Vec<String> {
    let sql = match Backend::of_connection(db) {
        Backend::Sqlite => {
            "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master \
             WHERE name <> 'seaql_migrations' ORDER BY type, name"
        }
        Backend::Postgres => {
            "SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = 'bookings'::regclass \
             UNION ALL SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE tablename = 'bookings' \
             ORDER BY 1"
        }
    };
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect()
}

fn booking_sql(user: i64, key: &str) -> String {
    format!(
        "INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, \
         total_price, deposit_amount, is_deposit_paid, idempotency_key, created_at, updated_at) \
         VALUES ({user}, 1, '2026-02-01', '2026-02-02', 1, 'CONFIRMED', 12000, 0, false, '{key}', \
         '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"
    )
}

async fn booking_ids(db: &DatabaseConnection) -> Vec<i64> {
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT id FROM bookings ORDER BY id",
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get_by_index(0).unwrap())
    .collect()
}

/// Issue 16 item 8: after the newest migration two users may send the same idempotency key and
/// one user may not use it twice; the rebuild keeps rows, ids, foreign keys and indexes; `down`
/// refuses while a key is shared and otherwise gives back exactly the old schema.
async fn idempotency_keys_become_unique_per_user_and_down_restores_them(test_db: TestDatabase) {
    let db = test_db.connection();
    let newest = Migrator::migrations().len() as u32;
    Migrator::up(db, Some(newest - 1)).await.unwrap();
    let before = bookings_schema(db).await;
    let now = "'2026-01-01 00:00:00+00:00'";
    for who in ["ann", "bob"] {
        exec(db, &format!("INSERT INTO users (name, email, role, created_at) VALUES ('{who}', '{who}@example.com', 'guest', {now})")).await.unwrap();
    }
    exec(db, &format!("INSERT INTO room_types (name, description, price_per_night, total_rooms, created_at, updated_at) VALUES ('Double', 'Two beds', 12000, 10, {now}, {now})")).await.unwrap();
    exec(db, &booking_sql(1, "k1")).await.unwrap();
    exec(db, &format!("INSERT INTO payments (booking_id, user_id, amount, status, provider, created_at) VALUES (1, 1, 100, 'PAID', 'card', {now})")).await.unwrap();
    exec(db, &booking_sql(1, "k2")).await.unwrap();
    exec(db, "DELETE FROM bookings WHERE id = 2").await.unwrap();
    assert!(
        exec(db, &booking_sql(2, "k1")).await.is_err(),
        "before: keys are unique across users"
    );

    Migrator::up(db, None).await.unwrap();
    assert_eq!(booking_ids(db).await, [1], "rows kept");
    exec(db, &booking_sql(2, "k1"))
        .await
        .expect("another user may use the same key");
    assert!(
        exec(db, &booking_sql(1, "k1")).await.is_err(),
        "one user may not use a key twice"
    );
    let ids = booking_ids(db).await;
    assert!(
        ids.len() == 2 && ids[0] == 1 && ids[1] > 2,
        "the id of a deleted booking is never handed out again: {ids:?}"
    );
    assert!(
        exec(db, &format!("INSERT INTO payments (booking_id, user_id, amount, status, provider, created_at) VALUES (99, 1, 100, 'PAID', 'card', {now})")).await.is_err(),
        "foreign keys are still enforced"
    );
    assert!(
        exec(db, "DELETE FROM bookings WHERE id = 1").await.is_err(),
        "the payment still protects its booking"
    );
    let after = bookings_schema(db).await;
    for index in [
        "idx_bookings_user_status_created",
        "uq_bookings_user_idempotency_key",
    ] {
        assert!(
            after.iter().any(|line| line.contains(index)),
            "{index} missing: {after:#?}"
        );
    }

    let refused = Migrator::down(db, Some(1)).await.unwrap_err();
    assert!(
        refused.to_string().contains("more than one user"),
        "{refused}"
    );
    assert_eq!(
        bookings_schema(db).await,
        after,
        "a refused down changes nothing"
    );
    assert_eq!(booking_ids(db).await, ids);

    exec(db, &format!("DELETE FROM bookings WHERE id = {}", ids[1]))
        .await
        .unwrap();
    Migrator::down(db, Some(1)).await.unwrap();
    assert_eq!(
        bookings_schema(db).await,
        before,
        "down restores the old schema"
    );
    assert!(
        exec(db, &booking_sql(2, "k1")).await.is_err(),
        "after down: keys are unique across users again"
    );
    Migrator::up(db, None).await.unwrap();
    assert_eq!(bookings_schema(db).await, after, "up again");
}

test_on_backends!(
    daily_stats_migration_sums_existing_bookings,
    up_down_up_leaves_the_full_schema,
    index_migration_creates_and_drops_exactly_its_indexes,
    composite_indexes_cover_the_listed_columns,
    constraints_reject_bad_rows,
    idempotency_keys_become_unique_per_user_and_down_restores_them,
);

/// Several instances starting at once on one PostgreSQL database: each migration is applied
/// once, and every instance's call succeeds. (With `Migrator::up` in place of
/// `apply_pending` this test fails: the second instance's `CREATE TABLE` finds the table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_apply_each_migration_once() {
    let Some(test_db) = TestDatabase::postgres().await else {
        return;
    };
    let db = test_db.connection();
    let starts = (0..4).map(|_| migration::apply_pending(db, None));
    for result in futures::future::join_all(starts).await {
        result.expect("every instance starts");
    }
    let applied = Migrator::get_applied_migrations(db).await.unwrap();
    assert_eq!(applied.len(), Migrator::migrations().len());
    let recorded = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM seaql_migrations",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(recorded as usize, Migrator::migrations().len());
    assert!(index_names(db).await.len() >= EXPECTED_INDEXES.len());
}
