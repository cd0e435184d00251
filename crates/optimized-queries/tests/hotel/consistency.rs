//! The optimized helpers against the naive ones on a generated dataset, and the daily
//! statistics after a run of mixed writes.

use chrono::{Duration, NaiveDate};
use dataset::{DatasetOptions, Scale};
use db_connect::{test_on_backends, testing::TestDatabase};
use migration::Migrator;
use optimized_queries::{
    self as oq, BookingRequest, DateRange, Error, RoomCount, UserBookingsQuery,
};
use query_baselines::naive;

fn reference() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
}

async fn generated(test_db: TestDatabase) -> TestDatabase {
    let test_db = test_db.migrated::<Migrator>().await;
    dataset::generate(
        test_db.connection(),
        &DatasetOptions::new(Scale::Tiny)
            .seed(11)
            .reference_date(reference()),
        &|_| {},
    )
    .await
    .unwrap();
    test_db
}

async fn optimized_and_naive_agree(test_db: TestDatabase) {
    let test_db = generated(test_db).await;
    let db = test_db.connection();
    let spec = Scale::Tiny.spec();
    for offset in [-30, -10, 0, 3, 17, 25] {
        let start = reference() + Duration::days(offset);
        for nights in [1, 3, 7] {
            let range = DateRange::new(start, start + Duration::days(nights)).unwrap();
            for rooms in [1, 2, 4] {
                let rooms = RoomCount::new(rooms).unwrap();
                assert_eq!(
                    oq::all_availability(db, range, rooms).await.unwrap(),
                    naive::all_availability(db, range, rooms).await.unwrap()
                );
            }
            for room_type in 1..=spec.room_types as i64 {
                assert_eq!(
                    oq::availability(db, room_type, range, RoomCount::ONE)
                        .await
                        .unwrap(),
                    naive::availability(db, room_type, range, RoomCount::ONE)
                        .await
                        .unwrap()
                );
            }
        }
        assert_eq!(
            oq::room_types_on(db, start).await.unwrap(),
            naive::room_types_on(db, start).await.unwrap()
        );
    }
    let year = DateRange::new(
        reference() - Duration::days(40),
        reference() + Duration::days(40),
    )
    .unwrap();
    for room_type in [None, Some(1), Some(2)] {
        assert_eq!(
            oq::booking_statistics(db, year, room_type).await.unwrap(),
            naive::booking_statistics(db, year, room_type)
                .await
                .unwrap()
        );
        assert_eq!(
            oq::occupancy(db, year, room_type).await.unwrap(),
            naive::occupancy(db, year, room_type).await.unwrap()
        );
    }
    for user in spec.admins as i64 + 1..spec.admins as i64 + 15 {
        let query = UserBookingsQuery {
            include_payments: true,
            ..Default::default()
        };
        assert_eq!(
            oq::user_bookings(db, user, query).await.unwrap(),
            naive::user_bookings(db, user, query).await.unwrap()
        );
    }
    assert_eq!(
        oq::room_types(db).await.unwrap(),
        naive::room_types(db).await.unwrap()
    );
}

async fn daily_statistics_stay_exact_through_mixed_writes(test_db: TestDatabase) {
    let test_db = generated(test_db).await;
    let db = test_db.connection();
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
    let mut made = Vec::new();
    for i in 0..40_i64 {
        let start = reference() + Duration::days(i % 20);
        let request = BookingRequest {
            user_id: 2 + i % 10,
            room_type_id: 1 + i % 3,
            stay: DateRange::new(start, start + Duration::days(1 + i % 4)).unwrap(),
            rooms: RoomCount::new(1 + i % 2).unwrap(),
            idempotency_key: None,
        };
        match oq::create_booking(db, &request, reference()).await {
            Ok(outcome) => made.push(outcome.booking.id),
            Err(Error::NotAvailable { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(made.len() > 10, "the data left room for some bookings");
    for (i, id) in made.iter().enumerate() {
        match i % 3 {
            0 => drop(oq::cancel_booking(db, *id).await.unwrap()),
            1 => drop(
                oq::advance_booking(db, *id, entity::BookingStatus::Confirmed)
                    .await
                    .unwrap(),
            ),
            _ => {}
        }
    }
    // Naive bookings keep the statistics exact too.
    let start = reference() + Duration::days(27);
    let request = BookingRequest {
        user_id: 3,
        room_type_id: 1,
        stay: DateRange::new(start, start + Duration::days(1)).unwrap(),
        rooms: RoomCount::ONE,
        idempotency_key: None,
    };
    let _ = naive::create_booking(db, &request).await;
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
    let year = DateRange::new(
        reference() - Duration::days(40),
        reference() + Duration::days(40),
    )
    .unwrap();
    assert_eq!(
        oq::booking_statistics(db, year, None).await.unwrap(),
        naive::booking_statistics(db, year, None).await.unwrap()
    );
    assert_eq!(
        oq::occupancy(db, year, None).await.unwrap(),
        naive::occupancy(db, year, None).await.unwrap()
    );
}

test_on_backends!(
    optimized_and_naive_agree,
    daily_statistics_stay_exact_through_mixed_writes
);

async fn hot_queries_are_valid_sql(test_db: TestDatabase) {
    use sea_orm::{ConnectionTrait, Statement};
    let test_db = generated(test_db).await;
    let db = test_db.connection();
    let sample = oq::HotQuerySample {
        room_type_id: 1,
        user_id: 3,
        today: reference(),
    };
    let hot = oq::hot_queries(db, &sample);
    assert!(hot.len() >= 10);
    for query in hot {
        let prefix = match test_db.backend() {
            db_connect::Backend::Sqlite => "EXPLAIN QUERY PLAN ",
            db_connect::Backend::Postgres => "EXPLAIN ",
        };
        let explained = Statement {
            sql: format!("{prefix}{}", query.statement.sql),
            ..query.statement.clone()
        };
        let plan = db
            .query_all_raw(explained)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", query.name));
        assert!(!plan.is_empty(), "{} has no plan", query.name);
    }
}

test_on_backends!(hot_queries_are_valid_sql);

async fn every_workload_operation_runs(test_db: TestDatabase) {
    use query_baselines::workload::{Operation, Variant, Workload};
    let test_db = generated(test_db).await;
    let db = test_db.connection().clone();
    let hotel =
        optimized_queries::HotelCache::new(query_cache::QueryCache::builder().build().unwrap());
    let workload = Workload::prepare(db.clone(), hotel, reference())
        .await
        .unwrap();
    let before = oq::all_availability(
        &db,
        DateRange::new(reference(), reference() + Duration::days(30)).unwrap(),
        RoomCount::ONE,
    )
    .await
    .unwrap();
    for operation in Operation::ALL {
        for variant in Variant::ALL.into_iter().filter(|v| v.applies_to(operation)) {
            for i in 0..3 {
                let made = workload
                    .run(operation, variant, i)
                    .await
                    .unwrap_or_else(|e| panic!("{operation:?} {variant:?}: {e}"));
                assert_eq!(
                    made.is_some(),
                    operation == Operation::CreateBooking && made.is_some()
                );
                workload.undo(made).await.unwrap();
            }
        }
    }
    let after = oq::all_availability(
        &db,
        DateRange::new(reference(), reference() + Duration::days(30)).unwrap(),
        RoomCount::ONE,
    )
    .await
    .unwrap();
    assert_eq!(before, after, "bookings made by the workload were undone");
    assert_eq!(oq::daily_stats_mismatches(&db).await.unwrap(), 0);
}

test_on_backends!(every_workload_operation_runs);
