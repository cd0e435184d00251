//! Issue 16, item 1: backends terminated under a warm pool (`pg_terminate_backend`, as an
//! administrator or a failover does) do not fail the reads and writes that next use the pool.
//! Before the fix, the next statement on each dead pooled connection failed.

use db_connect::testing::{PostgresCluster, TestDatabase};
use entity::{BookingStatus, prelude::*};
use futures::future::join_all;
use optimized_queries::{self as oq, BookingRequest, UserBookingsQuery};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};

use crate::fixture::*;

/// Opens `n` connections in the pool at once (each holds one for 50 ms), so that they all sit
/// idle in it afterwards.
async fn warm(db: &sea_orm::DatabaseConnection, n: usize) {
    let sleeps = (0..n).map(|_| db.execute_unprepared("SELECT pg_sleep(0.05)"));
    for result in join_all(sleeps).await {
        result.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_survive_terminated_backends() {
    let Some(cluster) = PostgresCluster::start() else {
        return;
    };
    let (test_db, fixture) = known_hotel(TestDatabase::on_cluster(&cluster).await).await;
    let db = test_db.connection();
    let query = UserBookingsQuery {
        status: None,
        limit: 10,
        include_payments: true,
    };

    // Reads: every kind of read helper, right after every pooled connection died.
    for round in 0..3 {
        warm(db, 8).await;
        let terminated = cluster.terminate_backends(test_db.name()).await;
        assert!(
            terminated >= 8,
            "round {round}: {terminated} sessions ended"
        );
        let availability = oq::availability(db, STANDARD, range(0, 3), rooms(1))
            .await
            .unwrap_or_else(|err| panic!("round {round}: availability: {err:?}"));
        assert_eq!(availability.min_available, 2);
        let mine = oq::user_bookings(db, ANN, query)
            .await
            .unwrap_or_else(|err| panic!("round {round}: user bookings: {err:?}"));
        assert_eq!(mine.len(), 2);
        let details = oq::booking_details(db, fixture.ann_standard)
            .await
            .unwrap_or_else(|err| panic!("round {round}: booking details: {err:?}"));
        assert_eq!(details.status, BookingStatus::CheckedIn);
        oq::room_types(db)
            .await
            .unwrap_or_else(|err| panic!("round {round}: room types: {err:?}"));
    }

    // Writes: each one first after its pool's connections died.
    let bookings_before = Booking::find().count(db).await.unwrap();
    let request = BookingRequest {
        user_id: BOB,
        room_type_id: STANDARD,
        stay: range(5, 7),
        rooms: rooms(2),
        idempotency_key: None,
    };
    warm(db, 8).await;
    cluster.terminate_backends(test_db.name()).await;
    let made = oq::create_booking(db, &request, today())
        .await
        .unwrap_or_else(|err| panic!("create booking: {err:?}"));
    assert!(made.created);
    warm(db, 8).await;
    cluster.terminate_backends(test_db.name()).await;
    let cancelled = oq::cancel_booking(db, made.booking.id)
        .await
        .unwrap_or_else(|err| panic!("cancel booking: {err:?}"));
    assert!(cancelled.cancelled_now);
    warm(db, 8).await;
    cluster.terminate_backends(test_db.name()).await;
    let change = oq::update_inventory(db, SUITE, range(0, 3), 3)
        .await
        .unwrap_or_else(|err| panic!("update inventory: {err:?}"));
    assert_eq!(change.nights_updated, 3);

    // Each write happened exactly once.
    assert_eq!(
        Booking::find().count(db).await.unwrap(),
        bookings_before + 1
    );
    let calendar = oq::room_type_calendar(db, STANDARD, range(5, 7))
        .await
        .unwrap();
    assert!(
        calendar.nights.iter().all(|n| n.available_rooms == 5),
        "the cancellation returned the rooms once: {:?}",
        calendar.nights
    );
    assert_eq!(oq::daily_stats_mismatches(db).await.unwrap(), 0);
}
