//! The reports read whole months from the monthly rollups and the days around them from the
//! daily ones: they must answer exactly what the naive computation from the bookings and the
//! inventory answers, on any range, room type and mix of statuses, and stay exact while
//! bookings and cancellations run at once.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use chrono::{Duration, NaiveDate};
use dataset::{DatasetOptions, Scale};
use db_connect::{test_on_backends, testing::TestDatabase};
use entity::BookingStatus;
use migration::Migrator;
use optimized_queries::{self as oq, BookingRequest, DateRange, Error, RoomCount};
use query_baselines::naive;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{ConnectionTrait, DatabaseConnection, IsolationLevel, Statement, TransactionTrait};

/// Mid-month, so that ranges around it start and end inside months.
fn reference() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 17).unwrap()
}

async fn generated(test_db: TestDatabase) -> TestDatabase {
    let test_db = test_db.migrated::<Migrator>().await;
    dataset::generate(
        test_db.connection(),
        &DatasetOptions::new(Scale::Tiny)
            .seed(23)
            .reference_date(reference()),
        &|_| {},
    )
    .await
    .unwrap();
    test_db
}

/// A range of 1 to 100 nights starting within the data's 30 past and 30 future nights (and a
/// little outside them).
fn random_range(rng: &mut ChaCha8Rng) -> DateRange {
    let start = reference() + Duration::days(rng.random_range(-45..35));
    let nights = if rng.random_bool(0.3) {
        rng.random_range(1..10)
    } else {
        rng.random_range(10..100)
    };
    DateRange::new(start, start + Duration::days(nights)).unwrap()
}

fn random_room_type(rng: &mut ChaCha8Rng) -> Option<i64> {
    let room_types = Scale::Tiny.spec().room_types as i64;
    rng.random_bool(0.6)
        .then(|| rng.random_range(1..=room_types + 1))
}

async fn assert_reports_match_naive(
    db: &DatabaseConnection,
    range: DateRange,
    room_type: Option<i64>,
) {
    assert_eq!(
        oq::booking_statistics(db, range, room_type).await.unwrap(),
        naive::booking_statistics(db, range, room_type)
            .await
            .unwrap(),
        "booking statistics over {range}, room type {room_type:?}"
    );
    assert_eq!(
        oq::occupancy(db, range, room_type).await.unwrap(),
        naive::occupancy(db, range, room_type).await.unwrap(),
        "occupancy over {range}, room type {room_type:?}"
    );
}

/// Books, cancels and moves bookings along at random; returns how many bookings it made.
async fn mixed_writes(db: &DatabaseConnection, seed: u64, rounds: usize) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let spec = Scale::Tiny.spec();
    let mut made = 0;
    for _ in 0..rounds {
        let start = reference() + Duration::days(rng.random_range(0..28));
        let request = BookingRequest {
            user_id: rng.random_range(2..2 + spec.guests as i64),
            room_type_id: rng.random_range(1..=spec.room_types as i64),
            stay: DateRange::new(start, start + Duration::days(rng.random_range(1..5))).unwrap(),
            rooms: RoomCount::new(rng.random_range(1..3)).unwrap(),
            idempotency_key: None,
        };
        let id = match oq::create_booking(db, &request, reference()).await {
            Ok(outcome) => outcome.booking.id,
            Err(Error::NotAvailable { .. }) => continue,
            Err(other) => panic!("create_booking: {other:?}"),
        };
        made += 1;
        let outcome = match rng.random_range(0..4) {
            0 => oq::cancel_booking(db, id).await.map(drop),
            1 => oq::advance_booking(db, id, BookingStatus::Confirmed)
                .await
                .map(drop),
            2 => match oq::advance_booking(db, id, BookingStatus::Confirmed).await {
                Ok(_) => oq::advance_booking(db, id, BookingStatus::CheckedIn)
                    .await
                    .map(drop),
                Err(err) => Err(err),
            },
            _ => Ok(()),
        };
        outcome.unwrap();
    }
    made
}

async fn reports_match_the_naive_computation_on_random_ranges(test_db: TestDatabase) {
    let test_db = generated(test_db).await;
    let db = test_db.connection();
    assert!(mixed_writes(db, 1, 30).await > 5);
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for _ in 0..40 {
        let range = random_range(&mut rng);
        let room_type = random_room_type(&mut rng);
        assert_reports_match_naive(db, range, room_type).await;
    }
    // Whole months exactly, and a range with no whole month in it.
    let first = |m| NaiveDate::from_ymd_opt(2026, m, 1).unwrap();
    for (start, end) in [
        (first(5), first(7)),
        (first(6), first(7)),
        (reference(), first(7)),
    ] {
        assert_reports_match_naive(db, DateRange::new(start, end).unwrap(), None).await;
    }
}

/// The report from the rollups and the report from the daily tables alone, in one snapshot.
async fn report_against_daily_rollup_in_one_snapshot(db: &DatabaseConnection, range: DateRange) {
    let isolation = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => Some(IsolationLevel::RepeatableRead),
        _ => None,
    };
    let txn = db.begin_with_config(isolation, None).await.unwrap();
    let statistics = oq::booking_statistics(&txn, range, None).await.unwrap();
    let occupancy = oq::occupancy(&txn, range, None).await.unwrap();
    let daily = |sql: &str| {
        Statement::from_sql_and_values(
            txn.get_database_backend(),
            sql,
            [range.start().into(), range.end().into()],
        )
    };
    let bookings: i64 = txn
        .query_one_raw(daily(
            "SELECT CAST(COALESCE(SUM(bookings), 0) AS BIGINT) FROM booking_daily_stats \
             WHERE arrival_date >= $1 AND arrival_date < $2",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let sold: i64 = txn
        .query_one_raw(daily(
            "SELECT CAST(COALESCE(SUM(total_rooms - available_rooms), 0) AS BIGINT) \
             FROM room_inventory WHERE date >= $1 AND date < $2",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(statistics.total_bookings, bookings, "over {range}");
    assert_eq!(occupancy.room_nights_sold, sold, "over {range}");
}

async fn reports_stay_exact_under_concurrent_bookings_and_cancellations(test_db: TestDatabase) {
    let test_db = generated(test_db).await;
    let db = test_db.connection().clone();
    let writers: Vec<_> = (0..4)
        .map(|seed| {
            let db = db.clone();
            tokio::spawn(async move { mixed_writes(&db, 100 + seed, 20).await })
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let checker = {
        let (db, done) = (db.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let mut checks = 0;
            loop {
                // One statement: every grain of the rollups agrees at one commit.
                assert_eq!(oq::daily_stats_mismatches(&db).await.unwrap(), 0);
                report_against_daily_rollup_in_one_snapshot(&db, random_range(&mut rng)).await;
                checks += 1;
                if checks >= 5 && done.load(Ordering::Acquire) {
                    return checks;
                }
            }
        })
    };
    let mut made = 0;
    for writer in writers {
        made += writer.await.unwrap();
    }
    done.store(true, Ordering::Release);
    let checks = checker.await.unwrap();
    assert!(made > 10, "the writers booked ({made})");
    assert!(checks >= 5);
    assert_eq!(oq::daily_stats_mismatches(&db).await.unwrap(), 0);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..15 {
        assert_reports_match_naive(&db, random_range(&mut rng), random_room_type(&mut rng)).await;
    }
}

test_on_backends!(reports_match_the_naive_computation_on_random_ranges);
test_on_backends!(multi_thread; reports_stay_exact_under_concurrent_bookings_and_cancellations);

/// `up` of the monthly-rollup migration sums what the daily tables hold, and `down` removes
/// the tables and their triggers.
async fn the_migration_fills_the_rollups_and_comes_down(test_db: TestDatabase) {
    use migration::MigratorTrait;
    let test_db = generated(test_db).await;
    let db = test_db.connection();
    assert!(mixed_writes(db, 3, 10).await > 0);
    Migrator::down(db, Some(1)).await.unwrap();
    // Without the triggers, writes leave no monthly trace: `up` must rebuild them from scratch.
    assert!(mixed_writes(db, 4, 10).await > 0);
    Migrator::up(db, None).await.unwrap();
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..5 {
        assert_reports_match_naive(db, random_range(&mut rng), random_room_type(&mut rng)).await;
    }
}

test_on_backends!(the_migration_fills_the_rollups_and_comes_down);
