//! Where reads run: on a SQLite file, beside sqlx through SQLite's C API; in a transaction, in
//! that transaction; either way timed by the attached `perf-stats` tracker and never stale.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use optimized_queries::{self as oq, UserBookingsQuery};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

use crate::fixture::*;

async fn five_reads(db: &sea_orm::DatabaseConnection) {
    let year = range(-200, 200);
    let query = UserBookingsQuery {
        include_payments: true,
        ..UserBookingsQuery::default()
    };
    oq::room_types(db).await.unwrap();
    oq::availability(db, STANDARD, range(0, 3), rooms(1))
        .await
        .unwrap();
    oq::user_bookings(db, ANN, query).await.unwrap();
    oq::booking_statistics(db, year, None).await.unwrap();
    oq::occupancy(db, year, Some(SUITE)).await.unwrap();
}

async fn reads_of_a_sqlite_file_run_beside_sqlx_and_are_still_timed(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    // sea-orm's own callback sees what goes through sqlx...
    let mut db = db_connect::connect(test_db.url()).await.unwrap();
    let through_sqlx = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&through_sqlx);
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    five_reads(&db).await;
    let expected = match test_db.backend() {
        // ...none of the reads on a SQLite file...
        Backend::Sqlite => 0,
        // ...and all of them elsewhere.
        Backend::Postgres => 5,
    };
    assert_eq!(through_sqlx.load(Ordering::Relaxed), expected);

    // A perf-stats tracker sees all of them, in its statistics and in a capture.
    let tracker = perf_stats::QueryTracker::new();
    let mut tracked = db_connect::connect(test_db.url()).await.unwrap();
    tracker.attach(&mut tracked);
    let ((), log) = tracker.capture(five_reads(&tracked)).await;
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!(tracker.report().statements, 5);
    assert!(log.statements().iter().all(|s| !s.failed));
}

async fn a_transaction_reads_its_own_writes(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection();
    let before = oq::availability(db, STANDARD, range(5, 6), rooms(1))
        .await
        .unwrap()
        .min_available;
    assert_eq!(before, 5);
    let txn = db.begin().await.unwrap();
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "UPDATE room_inventory SET available_rooms = 1 WHERE room_type_id = $1 AND date = $2",
        [STANDARD.into(), day(5).into()],
    ))
    .await
    .unwrap();
    let inside = oq::availability(&txn, STANDARD, range(5, 6), rooms(1))
        .await
        .unwrap();
    assert_eq!(inside.min_available, 1, "the transaction sees its write");
    let calendar = oq::room_type_calendar(&txn, STANDARD, range(5, 6))
        .await
        .unwrap();
    assert_eq!(calendar.nights[0].available_rooms, 1);
    txn.rollback().await.unwrap();
    let after = oq::availability(db, STANDARD, range(5, 6), rooms(1))
        .await
        .unwrap();
    assert_eq!(after.min_available, 5, "and nobody else did");
}

async fn every_write_is_seen_by_the_next_read(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection().clone();
    // Readers on other tasks keep the read connections busy meanwhile.
    let stop = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                while stop.load(Ordering::Relaxed) == 0 {
                    oq::all_availability(&db, range(0, 10), rooms(1))
                        .await
                        .unwrap();
                    oq::user_bookings(&db, BOB, UserBookingsQuery::default())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let stay = range(6, 8);
    for round in 0..20 {
        let id = book(&db, ANN, STANDARD, stay, 1).await;
        let after_booking = oq::availability(&db, STANDARD, stay, rooms(1))
            .await
            .unwrap();
        assert_eq!(
            after_booking.min_available, 4,
            "round {round}: the booking is seen"
        );
        let mine = oq::user_bookings(&db, ANN, UserBookingsQuery::default())
            .await
            .unwrap();
        assert_eq!(
            mine[0].id, id,
            "round {round}: the newest booking comes first"
        );
        oq::cancel_booking(&db, id).await.unwrap();
        let after_cancel = oq::availability(&db, STANDARD, stay, rooms(1))
            .await
            .unwrap();
        assert_eq!(
            after_cancel.min_available, 5,
            "round {round}: the cancellation is seen"
        );
    }
    stop.store(1, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
}

async fn a_closed_pool_fails_the_read_as_sqlx_does(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = db_connect::connect(test_db.url()).await.unwrap();
    let clone = db.clone();
    oq::room_types(&clone).await.unwrap();
    db.close().await.unwrap();
    assert!(matches!(
        oq::room_types(&clone).await,
        Err(oq::Error::Database(_))
    ));
}

test_on_backends!(
    reads_of_a_sqlite_file_run_beside_sqlx_and_are_still_timed,
    a_transaction_reads_its_own_writes,
    a_closed_pool_fails_the_read_as_sqlx_does,
);
test_on_backends!(multi_thread; every_write_is_seen_by_the_next_read);
