//! Writes: validation, exactness, idempotency, and the typed errors.

use db_connect::{test_on_backends, testing::TestDatabase};
use entity::{BookingStatus, prelude::*};
use optimized_queries::{self as oq, BookingRequest, DateRange, Error, IdempotencyKey};
use sea_orm::EntityTrait;

use crate::fixture::*;

fn request(user_id: i64, room_type_id: i64, stay: DateRange, n: i64) -> BookingRequest {
    BookingRequest {
        user_id,
        room_type_id,
        stay,
        rooms: rooms(n),
        idempotency_key: None,
    }
}

async fn available_nights(
    db: &sea_orm::DatabaseConnection,
    room_type_id: i64,
    from: i64,
    to: i64,
) -> Vec<i32> {
    oq::room_type_calendar(db, room_type_id, range(from, to))
        .await
        .unwrap()
        .nights
        .iter()
        .map(|n| n.available_rooms)
        .collect()
}

async fn create_booking_takes_rooms_and_prices_the_stay(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection();
    assert_eq!(available_nights(db, STANDARD, 3, 6).await, [4, 5, 5]);
    let outcome = oq::create_booking(db, &request(BOB, STANDARD, range(3, 6), 4), today())
        .await
        .unwrap();
    assert!(outcome.created);
    let b = outcome.booking;
    assert_eq!(
        (
            b.status,
            b.total_price,
            b.deposit_amount,
            b.is_deposit_paid,
            b.rooms_booked
        ),
        (BookingStatus::Provisional, 120_000, 24_000, false, 4)
    );
    assert_eq!(available_nights(db, STANDARD, 3, 6).await, [0, 1, 1]);
    assert_eq!(
        Booking::find_by_id(b.id).one(db).await.unwrap().unwrap(),
        b,
        "the returned booking is what was stored"
    );
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
}

async fn create_booking_refuses_bad_requests_and_changes_nothing(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection();
    let before = available_nights(db, STANDARD, 0, 10).await;
    let bookings_before = Booking::find().all(db).await.unwrap().len();

    let err = oq::create_booking(db, &request(ANN, STANDARD, range(2, 5), 3), today())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotAvailable { room_type_id: STANDARD, night, available: 2, requested: 3 } if night == day(2)),
        "{err:?}"
    );
    let err = oq::create_booking(db, &request(ANN, SUITE, range(4, 7), 1), today())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotAvailable { night, available: 0, .. } if night == day(5)),
        "a night without inventory: {err:?}"
    );
    let err = oq::create_booking(db, &request(ANN, STANDARD, range(8, 12), 1), today())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotAvailable { night, .. } if night == day(10)),
        "{err:?}"
    );
    let err = oq::create_booking(db, &request(ANN, 99, range(1, 2), 1), today())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: "room type",
                id: 99
            }
        ),
        "{err:?}"
    );
    let err = oq::create_booking(db, &request(12_345, STANDARD, range(6, 7), 1), today())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: "user",
                id: 12_345
            }
        ),
        "{err:?}"
    );
    let err = oq::create_booking(db, &request(ANN, STANDARD, range(-2, 1), 1), today())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidRange(ref m) if m.contains("past")),
        "{err:?}"
    );
    let err = oq::create_booking(db, &request(ANN, STANDARD, range(0, 31), 1), today())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidRange(ref m) if m.contains("30")),
        "{err:?}"
    );
    assert!(DateRange::new(day(3), day(3)).is_err());
    assert!(oq::RoomCount::new(0).is_err() && oq::RoomCount::new(51).is_err());
    assert!(
        IdempotencyKey::new("").is_err()
            && IdempotencyKey::new("has space").is_err()
            && IdempotencyKey::new("x".repeat(256)).is_err()
    );

    assert_eq!(
        available_nights(db, STANDARD, 0, 10).await,
        before,
        "a refused booking takes no room"
    );
    assert_eq!(
        Booking::find().all(db).await.unwrap().len(),
        bookings_before
    );
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
}

async fn idempotency_key_returns_the_first_booking(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection();
    let mut first = request(BOB, SUITE, range(6, 8), 1);
    first.idempotency_key = Some(IdempotencyKey::new("retry-me-1").unwrap());
    let a = oq::create_booking(db, &first, today()).await.unwrap();
    let b = oq::create_booking(db, &first, today()).await.unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.booking, b.booking);
    assert_eq!(
        available_nights(db, SUITE, 6, 8).await,
        [1, 1],
        "booked once"
    );

    let mut different = request(BOB, SUITE, range(6, 9), 1);
    different.idempotency_key = first.idempotency_key.clone();
    let err = oq::create_booking(db, &different, today())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ref m) if m.contains("idempotency")),
        "{err:?}"
    );
    assert_eq!(available_nights(db, SUITE, 6, 9).await, [1, 1, 2]);
}

/// Issue 16 item 8: a key is the user's own. Bob sending the key Ann used books for Bob (before
/// the fix: 409 naming Ann's booking), and a conflict on Bob's own key names only his booking.
async fn an_idempotency_key_is_scoped_to_its_user(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection();
    let key = Some(IdempotencyKey::new("checkout-1").unwrap());
    let mut ann = request(ANN, SUITE, range(6, 8), 1);
    ann.idempotency_key = key.clone();
    let anns = oq::create_booking(db, &ann, today()).await.unwrap();
    assert!(anns.created);

    let mut bob = request(BOB, STANDARD, range(5, 7), 2);
    bob.idempotency_key = key.clone();
    let bobs = oq::create_booking(db, &bob, today()).await.unwrap();
    assert!(bobs.created, "Bob's first use of the key books");
    assert_eq!(
        (bobs.booking.user_id, bobs.booking.room_type_id),
        (BOB, STANDARD)
    );
    assert_ne!(bobs.booking.id, anns.booking.id);
    assert_eq!(available_nights(db, STANDARD, 5, 7).await, [3, 3]);
    assert_eq!(available_nights(db, SUITE, 6, 8).await, [1, 1]);

    // The same details as Ann's, under her key, from Bob: still Bob's own (replayed) request.
    let mut bob_as_ann = ann.clone();
    bob_as_ann.user_id = BOB;
    let err = oq::create_booking(db, &bob_as_ann, today())
        .await
        .unwrap_err();
    let Error::Conflict(message) = err else {
        panic!("a different request under Bob's key is a conflict: {err:?}");
    };
    assert!(
        message.contains(&format!("booking {}", bobs.booking.id))
            && !message.contains(&format!("booking {}", anns.booking.id)),
        "the conflict names Bob's booking only: {message}"
    );

    let replay = oq::create_booking(db, &bob, today()).await.unwrap();
    assert!(!replay.created);
    assert_eq!(replay.booking, bobs.booking);
    let replay = oq::create_booking(db, &ann, today()).await.unwrap();
    assert_eq!(replay.booking, anns.booking);
    assert_eq!(
        available_nights(db, STANDARD, 5, 7).await,
        [3, 3],
        "booked once"
    );
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
}

/// A replay after the booking was cancelled returns the cancelled booking and books nothing.
async fn a_replay_after_cancellation_returns_the_cancelled_booking(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection();
    let mut first = request(ANN, SUITE, range(6, 8), 2);
    first.idempotency_key = Some(IdempotencyKey::new("cancel-then-retry").unwrap());
    let made = oq::create_booking(db, &first, today()).await.unwrap();
    assert_eq!(available_nights(db, SUITE, 6, 8).await, [0, 0]);
    oq::cancel_booking(db, made.booking.id).await.unwrap();
    let replay = oq::create_booking(db, &first, today()).await.unwrap();
    assert!(!replay.created);
    assert_eq!(
        (replay.booking.id, replay.booking.status),
        (made.booking.id, BookingStatus::Cancelled)
    );
    assert_eq!(
        available_nights(db, SUITE, 6, 8).await,
        [2, 2],
        "the replay booked nothing"
    );
}

async fn cancel_returns_rooms_exactly_once(test_db: TestDatabase) {
    let (test_db, ids) = known_hotel(test_db).await;
    let db = test_db.connection();
    assert_eq!(available_nights(db, STANDARD, 2, 4).await, [2, 4]);
    let first = oq::cancel_booking(db, ids.bob_standard).await.unwrap();
    assert!(first.cancelled_now);
    assert_eq!(
        (first.previous_status, first.booking.status),
        (BookingStatus::Provisional, BookingStatus::Cancelled)
    );
    assert_eq!(available_nights(db, STANDARD, 2, 4).await, [3, 5]);
    let again = oq::cancel_booking(db, ids.bob_standard).await.unwrap();
    assert!(!again.cancelled_now);
    assert_eq!(
        available_nights(db, STANDARD, 2, 4).await,
        [3, 5],
        "cancelling twice changes nothing"
    );

    let err = oq::cancel_booking(db, ids.ann_standard).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(_)),
        "a checked-in stay cannot be cancelled: {err:?}"
    );
    assert!(matches!(
        oq::cancel_booking(db, 9_999).await,
        Err(Error::NotFound {
            what: "booking",
            ..
        })
    ));
    let stats = oq::booking_statistics(db, range(0, 10), None)
        .await
        .unwrap();
    assert_eq!((stats.active_bookings, stats.revenue), (2, 90_000));
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
}

async fn advance_follows_the_booking_life(test_db: TestDatabase) {
    let (test_db, ids) = known_hotel(test_db).await;
    let db = test_db.connection();
    let confirmed = oq::advance_booking(db, ids.ann_suite, BookingStatus::Confirmed)
        .await
        .unwrap();
    assert_eq!(
        (confirmed.status, confirmed.is_deposit_paid),
        (BookingStatus::Confirmed, true)
    );
    assert!(matches!(
        oq::advance_booking(db, ids.ann_suite, BookingStatus::CheckedOut).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        oq::advance_booking(db, ids.bob_cancelled, BookingStatus::Confirmed).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        oq::advance_booking(db, ids.ann_suite, BookingStatus::Confirmed)
            .await
            .unwrap()
            .status,
        BookingStatus::Confirmed
    );
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
}

async fn update_inventory_keeps_booked_rooms(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection();
    // Standard has 2 booked on nights 0-1, 3 on night 2, 1 on night 3.
    let err = oq::update_inventory(db, STANDARD, range(0, 4), 2)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ref m) if m.contains(&day(2).to_string())),
        "{err:?}"
    );
    assert_eq!(
        available_nights(db, STANDARD, 0, 4).await,
        [3, 3, 2, 4],
        "a refused change changes nothing"
    );

    let change = oq::update_inventory(db, STANDARD, range(0, 4), 3)
        .await
        .unwrap();
    assert_eq!((change.nights_updated, change.nights_created), (4, 0));
    assert_eq!(available_nights(db, STANDARD, 0, 4).await, [1, 1, 0, 2]);

    let change = oq::update_inventory(db, SUITE, range(4, 7), 4)
        .await
        .unwrap();
    assert_eq!(
        (change.nights_updated, change.nights_created),
        (2, 1),
        "night 5 is created"
    );
    assert_eq!(available_nights(db, SUITE, 4, 7).await, [4, 4, 4]);
    assert!(matches!(
        oq::update_inventory(db, 99, range(0, 1), 1).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        oq::update_inventory(db, SUITE, range(0, 1), -1).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        oq::update_inventory(db, SUITE, range(0, 1), 10_001).await,
        Err(Error::InvalidInput(_))
    ));
}

test_on_backends!(
    create_booking_takes_rooms_and_prices_the_stay,
    create_booking_refuses_bad_requests_and_changes_nothing,
    idempotency_key_returns_the_first_booking,
    an_idempotency_key_is_scoped_to_its_user,
    a_replay_after_cancellation_returns_the_cancelled_booking,
    cancel_returns_rooms_exactly_once,
    advance_follows_the_booking_life,
    update_inventory_keeps_booked_rooms,
);
