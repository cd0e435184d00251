//! The cached helpers: a read right after a write never returns the old answer, and what the
//! write did not change stays cached.

use db_connect::{test_on_backends, testing::TestDatabase};
use entity::BookingStatus;
use optimized_queries::{BookingRequest, Error, HotelCache, UserBookingsQuery};
use query_cache::QueryCache;

use crate::fixture::*;

struct Warm {
    hotel: HotelCache,
    counted: Counted,
}

impl Warm {
    async fn new(test_db: &TestDatabase) -> Self {
        let warm = Self {
            hotel: HotelCache::new(QueryCache::builder().max_entries(1_000).build().unwrap()),
            counted: Counted::open(test_db).await,
        };
        // Fill every kind of entry, then check that reading them again costs nothing.
        for _ in 0..2 {
            warm.read_all().await;
        }
        warm.counted.take();
        warm.read_all().await;
        warm.counted.assert_statements(0, "a warm cache");
        warm
    }

    async fn read_all(&self) {
        let (h, db) = (&self.hotel, &self.counted.db);
        h.availability(db, STANDARD, range(0, 3), rooms(1))
            .await
            .unwrap();
        h.availability(db, STANDARD, range(6, 8), rooms(1))
            .await
            .unwrap();
        h.availability(db, SUITE, range(0, 3), rooms(1))
            .await
            .unwrap();
        h.all_availability(db, range(0, 3), rooms(1)).await.unwrap();
        h.all_availability(db, range(7, 9), rooms(1)).await.unwrap();
        h.room_types(db).await.unwrap();
        h.user_bookings(db, ANN, UserBookingsQuery::default())
            .await
            .unwrap();
        h.user_bookings(db, BOB, UserBookingsQuery::default())
            .await
            .unwrap();
        h.booking_statistics(db, range(0, 10), None).await.unwrap();
        h.occupancy(db, range(0, 10), None).await.unwrap();
    }

    /// Statements issued by one read (0: it came from the cache), and its value.
    async fn cost<T, F: std::future::Future<Output = Result<T, Error>>>(
        &self,
        read: F,
    ) -> (usize, T) {
        self.counted.take();
        let value = read.await.unwrap();
        (self.counted.take().len(), value)
    }
}

async fn create_booking_invalidates_its_nights_guest_and_reports(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let w = Warm::new(&test_db).await;
    let (h, db) = (&w.hotel, &w.counted.db);
    let request = BookingRequest {
        user_id: BOB,
        room_type_id: STANDARD,
        stay: range(0, 3),
        rooms: rooms(1),
        idempotency_key: None,
    };
    let booking = h
        .create_booking(db, &request, today())
        .await
        .unwrap()
        .booking;

    let (cost, a) = w
        .cost(h.availability(db, STANDARD, range(0, 3), rooms(1)))
        .await;
    assert_eq!(
        (cost, a.min_available),
        (1, 1),
        "reloaded with the booking's room taken"
    );
    let (cost, all) = w.cost(h.all_availability(db, range(0, 3), rooms(1))).await;
    assert_eq!((cost, all[0].min_available), (1, 1));
    let (cost, bob) = w
        .cost(h.user_bookings(db, BOB, UserBookingsQuery::default()))
        .await;
    assert_eq!(cost, 1);
    assert_eq!(
        bob[0].id, booking.id,
        "the guest sees the new booking at once"
    );
    let (cost, stats) = w.cost(h.booking_statistics(db, range(0, 10), None)).await;
    assert_eq!((cost, stats.total_bookings), (1, 5));
    let (cost, occupancy) = w.cost(h.occupancy(db, range(0, 10), None)).await;
    assert_eq!((cost, occupancy.room_nights_sold), (1, 12));

    // Not touched by the booking: other nights, other room types, room types, other guests.
    assert_eq!(
        w.cost(h.availability(db, STANDARD, range(6, 8), rooms(1)))
            .await
            .0,
        0
    );
    assert_eq!(
        w.cost(h.availability(db, SUITE, range(0, 3), rooms(1)))
            .await
            .0,
        0
    );
    assert_eq!(
        w.cost(h.all_availability(db, range(7, 9), rooms(1)))
            .await
            .0,
        0
    );
    assert_eq!(w.cost(h.room_types(db)).await.0, 0);
    assert_eq!(
        w.cost(h.user_bookings(db, ANN, UserBookingsQuery::default()))
            .await
            .0,
        0
    );
}

async fn a_refused_booking_invalidates_nothing(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let w = Warm::new(&test_db).await;
    let (h, db) = (&w.hotel, &w.counted.db);
    let request = BookingRequest {
        user_id: BOB,
        room_type_id: STANDARD,
        stay: range(0, 3),
        rooms: rooms(5),
        idempotency_key: None,
    };
    assert!(matches!(
        h.create_booking(db, &request, today()).await,
        Err(Error::NotAvailable { .. })
    ));
    w.counted.take();
    w.read_all().await;
    w.counted
        .assert_statements(0, "reads after a refused booking");
}

async fn cancel_invalidates_once(test_db: TestDatabase) {
    let (test_db, ids) = known_hotel(test_db).await;
    let w = Warm::new(&test_db).await;
    let (h, db) = (&w.hotel, &w.counted.db);
    // Bob's stay holds Standard nights 2 and 3.
    let before = h
        .availability(db, STANDARD, range(0, 3), rooms(1))
        .await
        .unwrap();
    assert_eq!(before.min_available, 2);
    h.cancel_booking(db, ids.bob_standard).await.unwrap();
    let (cost, after) = w
        .cost(h.availability(db, STANDARD, range(0, 3), rooms(1)))
        .await;
    assert_eq!(
        (cost, after.min_available),
        (1, 3),
        "night 2 got its room back"
    );
    let (cost, bob) = w
        .cost(h.user_bookings(db, BOB, UserBookingsQuery::default()))
        .await;
    assert_eq!(cost, 1);
    assert_eq!(
        bob.iter()
            .find(|b| b.id == ids.bob_standard)
            .unwrap()
            .status,
        BookingStatus::Cancelled
    );
    let (cost, stats) = w.cost(h.booking_statistics(db, range(0, 10), None)).await;
    assert_eq!((cost, stats.active_bookings), (1, 2));
    assert_eq!(
        w.cost(h.availability(db, SUITE, range(0, 3), rooms(1)))
            .await
            .0,
        0
    );
    assert_eq!(
        w.cost(h.user_bookings(db, ANN, UserBookingsQuery::default()))
            .await
            .0,
        0
    );

    // Cancelling again changes nothing, so it invalidates nothing.
    w.read_all().await;
    h.cancel_booking(db, ids.bob_standard).await.unwrap();
    w.counted.take();
    w.read_all().await;
    w.counted
        .assert_statements(0, "reads after a repeated cancellation");
}

async fn advance_keeps_availability_cached(test_db: TestDatabase) {
    let (test_db, ids) = known_hotel(test_db).await;
    let w = Warm::new(&test_db).await;
    let (h, db) = (&w.hotel, &w.counted.db);
    h.advance_booking(db, ids.ann_suite, BookingStatus::Confirmed)
        .await
        .unwrap();
    let (cost, ann) = w
        .cost(h.user_bookings(db, ANN, UserBookingsQuery::default()))
        .await;
    assert_eq!(cost, 1);
    assert_eq!(
        ann.iter().find(|b| b.id == ids.ann_suite).unwrap().status,
        BookingStatus::Confirmed
    );
    let (cost, stats) = w.cost(h.booking_statistics(db, range(0, 10), None)).await;
    assert_eq!(cost, 1);
    assert!(
        stats
            .by_status
            .iter()
            .any(|b| b.status == BookingStatus::Confirmed && b.bookings == 1)
    );
    // The rooms stay held: availability and occupancy entries are still right, and cached.
    assert_eq!(
        w.cost(h.availability(db, SUITE, range(0, 3), rooms(1)))
            .await
            .0,
        0
    );
    assert_eq!(
        w.cost(h.all_availability(db, range(0, 3), rooms(1)))
            .await
            .0,
        0
    );
    assert_eq!(
        w.cost(h.user_bookings(db, BOB, UserBookingsQuery::default()))
            .await
            .0,
        0
    );
}

async fn inventory_change_invalidates_its_nights(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let w = Warm::new(&test_db).await;
    let (h, db) = (&w.hotel, &w.counted.db);
    h.update_inventory(db, SUITE, range(0, 3), 4).await.unwrap();
    let (cost, suite) = w
        .cost(h.availability(db, SUITE, range(0, 3), rooms(1)))
        .await;
    assert_eq!(
        (cost, suite.min_available),
        (1, 3),
        "two more rooms each night, one still booked on night 1"
    );
    let (cost, all) = w.cost(h.all_availability(db, range(0, 3), rooms(1))).await;
    assert_eq!((cost, all[1].min_available), (1, 3));
    let (cost, occupancy) = w.cost(h.occupancy(db, range(0, 10), None)).await;
    assert_eq!((cost, occupancy.room_nights_available), (1, 74));
    assert_eq!(
        w.cost(h.availability(db, STANDARD, range(0, 3), rooms(1)))
            .await
            .0,
        0
    );
    assert_eq!(
        w.cost(h.all_availability(db, range(7, 9), rooms(1)))
            .await
            .0,
        0
    );
    assert_eq!(
        w.cost(h.user_bookings(db, ANN, UserBookingsQuery::default()))
            .await
            .0,
        0
    );
    assert_eq!(w.cost(h.room_types(db)).await.0, 0);
}

async fn payments_are_never_cached(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let w = Warm::new(&test_db).await;
    let (h, db) = (&w.hotel, &w.counted.db);
    let query = UserBookingsQuery {
        include_payments: true,
        ..Default::default()
    };
    for _ in 0..3 {
        let (cost, bookings) = w.cost(h.user_bookings(db, ANN, query)).await;
        assert_eq!(
            cost, 1,
            "bookings and payments come from the database every time"
        );
        assert!(bookings.iter().all(|b| b.payments.is_some()));
    }
}

test_on_backends!(
    create_booking_invalidates_its_nights_guest_and_reports,
    a_refused_booking_invalidates_nothing,
    cancel_invalidates_once,
    advance_keeps_availability_cached,
    inventory_change_invalidates_its_nights,
    payments_are_never_cached,
);
