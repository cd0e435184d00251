//! A small data set whose every figure is known, and a connection that counts statements.

use chrono::{Duration, NaiveDate, Utc};
use db_connect::testing::TestDatabase;
use entity::{BookingStatus, PaymentStatus, UserRole, payment, user};
use migration::Migrator;
use optimized_queries::{BookingRequest, DateRange, RoomCount};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, NotSet};

/// "Today" for the fixture: every stay is in its future.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2030, 1, 10).unwrap()
}

/// The night `n` days after [`today`].
pub fn day(n: i64) -> NaiveDate {
    today() + Duration::days(n)
}

pub fn range(from: i64, to: i64) -> DateRange {
    DateRange::new(day(from), day(to)).unwrap()
}

pub fn rooms(n: i64) -> RoomCount {
    RoomCount::new(n).unwrap()
}

pub const STANDARD: i64 = 1;
pub const SUITE: i64 = 2;
pub const ATTIC: i64 = 3;
pub const ANN: i64 = 2;
pub const BOB: i64 = 3;

/// Booking ids of the fixture.
pub struct Bookings {
    /// Ann, Standard, nights 0..3, 2 rooms, checked in. 60 000.
    pub ann_standard: i64,
    /// Ann, Suite, night 1, 1 room, provisional. 30 000.
    pub ann_suite: i64,
    /// Bob, Standard, nights 2..4, 1 room, provisional. 20 000.
    pub bob_standard: i64,
    /// Bob, Standard, night 0, 1 room, cancelled. 10 000.
    pub bob_cancelled: i64,
}

pub async fn insert_user(db: &DatabaseConnection, name: &str, email: &str, role: UserRole) -> i64 {
    user::ActiveModel {
        id: NotSet,
        name: Set(name.to_owned()),
        email: Set(email.to_owned()),
        phone: Set(None),
        role: Set(role),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .unwrap()
    .id
}

/// The one room-type fixture of the workspace's tests.
pub async fn insert_room_type(db: &DatabaseConnection, name: &str, price: i64, total: i32) -> i64 {
    dataset::insert_room_type(db, name, price, total)
        .await
        .unwrap()
}

pub async fn book(
    db: &DatabaseConnection,
    user_id: i64,
    room_type_id: i64,
    stay: DateRange,
    n: i64,
) -> i64 {
    let request = BookingRequest {
        user_id,
        room_type_id,
        stay,
        rooms: rooms(n),
        idempotency_key: None,
    };
    optimized_queries::create_booking(db, &request, today())
        .await
        .unwrap()
        .booking
        .id
}

async fn pay(
    db: &DatabaseConnection,
    booking_id: i64,
    user_id: i64,
    amount: i64,
    status: PaymentStatus,
) {
    payment::ActiveModel {
        id: NotSet,
        booking_id: Set(booking_id),
        user_id: Set(user_id),
        amount: Set(amount),
        status: Set(status),
        provider: Set("stripe".to_owned()),
        paid_at: Set((status == PaymentStatus::Paid).then(Utc::now)),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .unwrap();
}

/// Migrates `test_db` and fills it:
/// - room types Standard (10 000/night, 5 rooms, nights 0..10), Suite (30 000/night, 2 rooms,
///   nights 0..10 but night 5 missing), Attic (5 000/night, 1 room, no inventory);
/// - users admin (1), Ann (2), Bob (3);
/// - the bookings of [`Bookings`], made through the write helpers, and three payments.
pub async fn known_hotel(test_db: TestDatabase) -> (TestDatabase, Bookings) {
    let test_db = test_db.migrated::<Migrator>().await;
    let db = test_db.connection();
    insert_user(db, "Admin", "admin@hotel.example", UserRole::Admin).await;
    assert_eq!(
        insert_user(db, "Ann", "ann@example.com", UserRole::Guest).await,
        ANN
    );
    assert_eq!(
        insert_user(db, "Bob", "bob@example.com", UserRole::Guest).await,
        BOB
    );
    assert_eq!(insert_room_type(db, "Standard", 10_000, 5).await, STANDARD);
    assert_eq!(insert_room_type(db, "Suite", 30_000, 2).await, SUITE);
    assert_eq!(insert_room_type(db, "Attic", 5_000, 1).await, ATTIC);
    optimized_queries::update_inventory(db, STANDARD, range(0, 10), 5)
        .await
        .unwrap();
    optimized_queries::update_inventory(db, SUITE, range(0, 5), 2)
        .await
        .unwrap();
    optimized_queries::update_inventory(db, SUITE, range(6, 10), 2)
        .await
        .unwrap();

    let ann_standard = book(db, ANN, STANDARD, range(0, 3), 2).await;
    let ann_suite = book(db, ANN, SUITE, range(1, 2), 1).await;
    let bob_standard = book(db, BOB, STANDARD, range(2, 4), 1).await;
    let bob_cancelled = book(db, BOB, STANDARD, range(0, 1), 1).await;
    optimized_queries::cancel_booking(db, bob_cancelled)
        .await
        .unwrap();
    optimized_queries::advance_booking(db, ann_standard, BookingStatus::Confirmed)
        .await
        .unwrap();
    optimized_queries::advance_booking(db, ann_standard, BookingStatus::CheckedIn)
        .await
        .unwrap();

    pay(db, ann_standard, ANN, 12_000, PaymentStatus::Paid).await;
    pay(db, ann_suite, ANN, 6_000, PaymentStatus::Pending).await;
    pay(db, bob_standard, BOB, 4_000, PaymentStatus::Paid).await;
    (
        test_db,
        Bookings {
            ann_standard,
            ann_suite,
            bob_standard,
            bob_cancelled,
        },
    )
}

/// A second connection to the test database whose every statement a `perf-stats` tracker
/// records, whichever way it reaches the database (sea-orm, or the crate's own SQLite reader).
pub struct Counted {
    pub db: DatabaseConnection,
    tracker: perf_stats::QueryTracker,
}

impl Counted {
    pub async fn open(test_db: &TestDatabase) -> Self {
        let mut db = db_connect::connect(test_db.url()).await.unwrap();
        let tracker = perf_stats::QueryTracker::new();
        tracker.attach(&mut db);
        Self { db, tracker }
    }

    /// The shapes of the statements run since the last call, one entry per statement,
    /// forgetting them.
    pub fn take(&self) -> Vec<String> {
        let report = self.tracker.report();
        self.tracker.reset();
        report
            .queries
            .iter()
            .flat_map(|q| std::iter::repeat_n(q.fingerprint.clone(), q.calls as usize))
            .collect()
    }

    /// Asserts that exactly `expected` statements ran since the last call.
    #[track_caller]
    pub fn assert_statements(&self, expected: usize, what: &str) {
        let statements = self.take();
        assert_eq!(
            statements.len(),
            expected,
            "{what} issued {} statements, expected {expected}:\n{}",
            statements.len(),
            statements
                .iter()
                .enumerate()
                .map(|(i, s)| format!("  {}. {s}", i + 1))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
