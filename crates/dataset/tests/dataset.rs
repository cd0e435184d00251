//! The generator on real SQLite and PostgreSQL databases.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use chrono::NaiveDate;
use dataset::{DatasetOptions, Error, Scale};
use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use entity::prelude::*;
use migration::{EXPECTED_INDEXES, Migrator};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Statement};

fn options(seed: u64) -> DatasetOptions {
    DatasetOptions::new(Scale::Tiny)
        .seed(seed)
        .reference_date(NaiveDate::from_ymd_opt(2026, 3, 15).unwrap())
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// Every row of every table, in id order.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Vec<entity::user::Model>,
    room_types: Vec<entity::room_type::Model>,
    inventory: Vec<entity::room_inventory::Model>,
    bookings: Vec<entity::booking::Model>,
    payments: Vec<entity::payment::Model>,
    waitlist: Vec<entity::waitlist_entry::Model>,
    notifications: Vec<entity::notification::Model>,
}

async fn snapshot(db: &DatabaseConnection) -> Snapshot {
    Snapshot {
        users: User::find()
            .order_by_asc(entity::user::Column::Id)
            .all(db)
            .await
            .unwrap(),
        room_types: RoomType::find()
            .order_by_asc(entity::room_type::Column::Id)
            .all(db)
            .await
            .unwrap(),
        inventory: RoomInventory::find()
            .order_by_asc(entity::room_inventory::Column::Id)
            .all(db)
            .await
            .unwrap(),
        bookings: Booking::find()
            .order_by_asc(entity::booking::Column::Id)
            .all(db)
            .await
            .unwrap(),
        payments: Payment::find()
            .order_by_asc(entity::payment::Column::Id)
            .all(db)
            .await
            .unwrap(),
        waitlist: WaitlistEntry::find()
            .order_by_asc(entity::waitlist_entry::Column::Id)
            .all(db)
            .await
            .unwrap(),
        notifications: Notification::find()
            .order_by_asc(entity::notification::Column::Id)
            .all(db)
            .await
            .unwrap(),
    }
}

async fn inventory_matches_the_bookings(test_db: TestDatabase) {
    let test_db = test_db.migrated::<Migrator>().await;
    let db = test_db.connection();
    let summary = dataset::generate(db, &options(1), &|_| {}).await.unwrap();
    let spec = Scale::Tiny.spec();
    assert_eq!(summary.room_types, spec.room_types);
    assert_eq!(summary.users, spec.guests + spec.admins);
    assert_eq!(
        summary.inventory_nights as i64,
        spec.room_types as i64 * spec.nights()
    );
    assert!(
        summary.bookings as f64 >= spec.bookings as f64 * 0.95,
        "only {} bookings",
        summary.bookings
    );
    assert_eq!(summary.payments, summary.bookings);
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM bookings").await,
        summary.bookings as i64
    );

    // available = total - rooms of non-cancelled bookings covering the night, for every night.
    let mismatches = scalar(
        db,
        "SELECT COUNT(*) FROM room_inventory i WHERE i.available_rooms <> i.total_rooms - COALESCE((\
            SELECT SUM(b.rooms_booked) FROM bookings b WHERE b.room_type_id = i.room_type_id \
            AND b.status <> 'CANCELLED' AND b.start_date <= i.date AND b.end_date > i.date), 0)",
    )
    .await;
    assert_eq!(
        mismatches, 0,
        "inventory nights disagreeing with the bookings"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM room_inventory WHERE available_rooms < 0"
        )
        .await,
        0
    );
    // Every booked night has an inventory row, and stays last 1 to 14 nights.
    let nights = match test_db.backend() {
        Backend::Sqlite => "CAST(julianday(b.end_date) - julianday(b.start_date) AS INTEGER)",
        Backend::Postgres => "(b.end_date - b.start_date)",
    };
    let uncovered = scalar(
        db,
        &format!(
            "SELECT COUNT(*) FROM bookings b WHERE {nights} <> (SELECT COUNT(*) FROM room_inventory i \
             WHERE i.room_type_id = b.room_type_id AND i.date >= b.start_date AND i.date < b.end_date)"
        ),
    )
    .await;
    assert_eq!(uncovered, 0, "bookings with nights outside the inventory");
    assert_eq!(
        scalar(
            db,
            &format!("SELECT COUNT(*) FROM bookings b WHERE {nights} NOT BETWEEN 1 AND 14")
        )
        .await,
        0
    );
    // The daily statistics are exactly the bookings, summed.
    let rollup_mismatches = scalar(
        db,
        &format!(
            "SELECT COUNT(*) FROM (SELECT start_date, room_type_id, status, COUNT(*) AS n, SUM(rooms_booked) AS r, \
             SUM(rooms_booked * {nights}) AS rn, SUM(total_price) AS v FROM bookings b GROUP BY start_date, room_type_id, status) a \
             FULL OUTER JOIN booking_daily_stats s ON s.arrival_date = a.start_date AND s.room_type_id = a.room_type_id AND s.status = a.status \
             WHERE a.n IS NULL OR s.bookings IS NULL OR a.n <> s.bookings OR a.r <> s.rooms OR a.rn <> s.room_nights OR a.v <> s.revenue"
        ),
    )
    .await;
    assert_eq!(
        rollup_mismatches, 0,
        "booking_daily_stats rows disagreeing with the bookings"
    );
    assert!(scalar(db, "SELECT COUNT(*) FROM booking_daily_stats").await > 0);

    // Some nights sell out, most do not: the data is neither empty nor saturated.
    let sold = scalar(
        db,
        "SELECT SUM(total_rooms - available_rooms) FROM room_inventory",
    )
    .await;
    let total = scalar(db, "SELECT SUM(total_rooms) FROM room_inventory").await;
    let occupancy = sold as f64 / total as f64;
    assert!((0.3..0.95).contains(&occupancy), "occupancy {occupancy}");

    // The shape the docs promise.
    let cancelled = scalar(
        db,
        "SELECT COUNT(*) FROM bookings WHERE status = 'CANCELLED'",
    )
    .await;
    let confirmed = scalar(
        db,
        "SELECT COUNT(*) FROM bookings WHERE status = 'CONFIRMED'",
    )
    .await;
    let provisional = scalar(
        db,
        "SELECT COUNT(*) FROM bookings WHERE status = 'PROVISIONAL'",
    )
    .await;
    assert!(cancelled > 0 && provisional > 0 && confirmed > cancelled && confirmed > provisional);
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM users WHERE role = 'admin'").await,
        spec.admins as i64
    );
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM bookings WHERE rooms_booked NOT BETWEEN 1 AND 4"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(db, &format!("SELECT COUNT(*) FROM bookings b WHERE b.total_price <> b.rooms_booked * {nights} * \
                    (SELECT price_per_night FROM room_types r WHERE r.id = b.room_type_id)")).await,
        0,
        "every booking is priced nights × rooms × price"
    );
}

async fn references_are_valid_and_indexes_are_back(test_db: TestDatabase) {
    let test_db = test_db.migrated::<Migrator>().await;
    let db = test_db.connection();
    dataset::generate(db, &options(2), &|_| {}).await.unwrap();
    if test_db.backend() == Backend::Sqlite {
        // The load runs without foreign-key enforcement on SQLite; the data must not need it.
        let violations = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "PRAGMA foreign_key_check",
            ))
            .await
            .unwrap();
        assert!(
            violations.is_empty(),
            "{} foreign key violations",
            violations.len()
        );
    }
    let index_sql = match test_db.backend() {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'index'",
        Backend::Postgres => "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'",
    };
    let names: Vec<String> = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), index_sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    for spec in EXPECTED_INDEXES {
        assert!(
            names.iter().any(|n| n == spec.name),
            "{} missing after the load",
            spec.name
        );
    }
    // Ids continue after the generated rows.
    let now = "'2026-03-15 12:00:00+00:00'";
    db.execute_unprepared(&format!(
        "INSERT INTO users (name, email, role, created_at) VALUES ('New', 'new@example.com', 'guest', {now})"
    ))
    .await
    .unwrap();
}

async fn the_same_seed_gives_the_same_rows(test_db: TestDatabase) {
    let test_db = test_db.migrated::<Migrator>().await;
    dataset::generate(test_db.connection(), &options(3), &|_| {})
        .await
        .unwrap();
    let first = snapshot(test_db.connection()).await;

    // Again into a fresh SQLite database: the same rows, whichever backend wrote the first.
    let again = TestDatabase::sqlite().await.migrated::<Migrator>().await;
    dataset::generate(again.connection(), &options(3), &|_| {})
        .await
        .unwrap();
    assert!(
        first == snapshot(again.connection()).await,
        "same seed, different rows"
    );

    let other = TestDatabase::sqlite().await.migrated::<Migrator>().await;
    dataset::generate(other.connection(), &options(4), &|_| {})
        .await
        .unwrap();
    assert!(
        first.bookings != snapshot(other.connection()).await.bookings,
        "another seed must give other bookings"
    );
}

async fn refuses_a_database_with_data_or_without_schema(test_db: TestDatabase) {
    let err = dataset::generate(test_db.connection(), &options(5), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotMigrated { .. }), "{err}");

    let test_db = test_db.migrated::<Migrator>().await;
    dataset::generate(test_db.connection(), &options(5), &|_| {})
        .await
        .unwrap();
    let before = scalar(test_db.connection(), "SELECT COUNT(*) FROM bookings").await;
    let err = dataset::generate(test_db.connection(), &options(5), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotEmpty { table: "users", .. }),
        "{err}"
    );
    assert_eq!(
        scalar(test_db.connection(), "SELECT COUNT(*) FROM bookings").await,
        before
    );
}

test_on_backends!(
    inventory_matches_the_bookings,
    references_are_valid_and_indexes_are_back,
    the_same_seed_gives_the_same_rows,
    refuses_a_database_with_data_or_without_schema,
);
