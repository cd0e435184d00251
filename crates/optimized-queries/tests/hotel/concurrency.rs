//! Many writers at once: no overbooking, no database error instead of an answer.

use std::sync::Arc;

use db_connect::{test_on_backends, testing::TestDatabase};
use entity::prelude::*;
use optimized_queries::{self as oq, BookingRequest, Error, IdempotencyKey};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::fixture::*;

async fn hundred_callers_for_five_rooms(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection().clone();
    // Nights 5..8 of Standard have 5 rooms free.
    let stay = range(5, 8);
    assert_eq!(
        oq::availability(&db, STANDARD, stay, rooms(1))
            .await
            .unwrap()
            .min_available,
        5
    );
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let request = BookingRequest {
                    user_id: if i % 2 == 0 { ANN } else { BOB },
                    room_type_id: STANDARD,
                    stay,
                    rooms: rooms(1),
                    idempotency_key: None,
                };
                oq::create_booking(&db, &request, today()).await
            })
        })
        .collect();
    let mut booked = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(outcome) => {
                assert!(outcome.created);
                booked += 1;
            }
            Err(Error::NotAvailable { .. }) => {}
            Err(other) => panic!("a caller got {other:?} instead of an answer"),
        }
    }
    assert_eq!(booked, 5, "exactly the five free rooms are sold");
    let nights = oq::room_type_calendar(&db, STANDARD, stay)
        .await
        .unwrap()
        .nights;
    assert_eq!(
        nights.iter().map(|n| n.available_rooms).collect::<Vec<_>>(),
        [0, 0, 0],
        "every night ends at zero"
    );
    assert_eq!(oq::daily_stats_mismatches(&db).await.unwrap(), 0);
}

async fn concurrent_retries_with_one_key_book_once(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection().clone();
    let request = Arc::new(BookingRequest {
        user_id: ANN,
        room_type_id: STANDARD,
        stay: range(6, 9),
        rooms: rooms(2),
        idempotency_key: Some(IdempotencyKey::new("checkout-7f3a").unwrap()),
    });
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (db, request) = (db.clone(), Arc::clone(&request));
            tokio::spawn(async move { oq::create_booking(&db, &request, today()).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let outcome = task.await.unwrap().expect("every retry gets the booking");
        created += usize::from(outcome.created);
        ids.push(outcome.booking.id);
    }
    assert_eq!(created, 1, "one request books, the others get its booking");
    ids.dedup();
    assert_eq!(ids.len(), 1);
    let with_key = Booking::find()
        .filter(entity::booking::Column::IdempotencyKey.eq("checkout-7f3a"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(with_key.len(), 1);
    let nights = oq::room_type_calendar(&db, STANDARD, range(6, 9))
        .await
        .unwrap()
        .nights;
    assert_eq!(
        nights.iter().map(|n| n.available_rooms).collect::<Vec<_>>(),
        [3, 3, 3],
        "two rooms taken once"
    );
}

async fn concurrent_cancels_return_rooms_once(test_db: TestDatabase) {
    let (test_db, ids) = known_hotel(test_db).await;
    let db = test_db.connection().clone();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            let id = ids.bob_standard;
            tokio::spawn(async move { oq::cancel_booking(&db, id).await })
        })
        .collect();
    let mut now = 0;
    for task in tasks {
        now += usize::from(task.await.unwrap().unwrap().cancelled_now);
    }
    assert_eq!(now, 1);
    let nights = oq::room_type_calendar(&db, STANDARD, range(2, 4))
        .await
        .unwrap()
        .nights;
    assert_eq!(
        nights.iter().map(|n| n.available_rooms).collect::<Vec<_>>(),
        [3, 5]
    );
}

test_on_backends!(
    multi_thread;
    hundred_callers_for_five_rooms,
    concurrent_retries_with_one_key_book_once,
    concurrent_cancels_return_rooms_once,
);
