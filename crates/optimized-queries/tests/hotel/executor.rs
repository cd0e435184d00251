//! Where reads run: on a SQLite file, beside sqlx through SQLite's C API; on PostgreSQL, on
//! connections held beside sqlx's pool; in a transaction, in that transaction; either way timed
//! by the attached `perf-stats` tracker and never stale.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use db_connect::{test_on_backends, testing::TestDatabase};
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

/// Waits until `db`'s PostgreSQL pool has an idle connection (sqlx gives each back from a task
/// of its own, a moment after its statement): the PostgreSQL reader takes only idle ones.
async fn until_idle(db: &sea_orm::DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let pool = db.get_postgres_connection_pool();
    for _ in 0..100 {
        if pool.num_idle() > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the pool never had an idle connection");
}

async fn reads_run_beside_sqlx_and_are_still_timed(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    // sea-orm's own callback sees what goes through sqlx: none of the reads, on a SQLite file
    // (the C API) or on PostgreSQL (a connection held beside the pool, taken from it once).
    let mut db = db_connect::connect(test_db.url()).await.unwrap();
    let through_sqlx = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&through_sqlx);
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    until_idle(&db).await;
    five_reads(&db).await;
    assert_eq!(through_sqlx.load(Ordering::Relaxed), 0);

    // A perf-stats tracker sees all of them, in its statistics and in a capture.
    let tracker = perf_stats::QueryTracker::new();
    let mut tracked = db_connect::connect(test_db.url()).await.unwrap();
    tracker.attach(&mut tracked);
    until_idle(&tracked).await;
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
    let readers = BusyReaders::start(&db, |db| async move {
        oq::all_availability(&db, range(0, 10), rooms(1))
            .await
            .unwrap();
        oq::user_bookings(&db, BOB, UserBookingsQuery::default())
            .await
            .unwrap();
    });
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
    readers.stop().await;
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

/// Room types as the next read returns them, by name.
async fn room_type_names(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    oq::room_types(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

async fn rename_room_type(db: &impl ConnectionTrait, id: i64, name: &str) {
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE room_types SET name = $1 WHERE id = $2",
        [name.into(), id.into()],
    ))
    .await
    .unwrap();
}

/// The environment variables that make [`writer_process`] rename a room type.
const WRITER_URL: &str = "HOTEL_TEST_WRITER_URL";
const WRITER_NAME: &str = "HOTEL_TEST_WRITER_NAME";

/// Renames room type 3 from another process: this test binary again, running only
/// [`writer_process`].
fn rename_attic_from_another_process(url: &str, name: &str) {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "executor::writer_process",
            "--ignored",
            "--quiet",
        ])
        .env(WRITER_URL, url)
        .env(WRITER_NAME, name)
        .status()
        .unwrap();
    assert!(status.success(), "the writer process failed: {status}");
}

/// The other process of [`rename_attic_from_another_process`] (ignored: it only runs there).
#[test]
#[ignore = "run by rename_attic_from_another_process in a process of its own"]
fn writer_process() {
    let url = std::env::var(WRITER_URL).expect("run by rename_attic_from_another_process");
    let name = std::env::var(WRITER_NAME).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = db_connect::connect(&url).await.unwrap();
        rename_room_type(&db, ATTIC, &name).await;
        db.close().await.unwrap();
    });
}

/// On a SQLite file each read connection keeps the room types until the database changes: a
/// commit through the same pool, through another pool and from another process is each seen
/// by the very next read, and so is a change that keeps every count and size.
async fn room_types_are_never_older_than_the_last_commit(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection();
    assert_eq!(room_type_names(db).await, ["Standard", "Suite", "Attic"]);
    // Read twice: the second answer may come from what the first kept.
    assert_eq!(room_type_names(db).await, ["Standard", "Suite", "Attic"]);

    rename_room_type(db, STANDARD, "Standarx").await;
    assert_eq!(room_type_names(db).await, ["Standarx", "Suite", "Attic"]);
    assert_eq!(room_type_names(db).await, ["Standarx", "Suite", "Attic"]);

    let other_pool = db_connect::connect(test_db.url()).await.unwrap();
    rename_room_type(&other_pool, SUITE, "Suitx").await;
    assert_eq!(room_type_names(db).await, ["Standarx", "Suitx", "Attic"]);

    rename_attic_from_another_process(test_db.url(), "Attix");
    assert_eq!(room_type_names(db).await, ["Standarx", "Suitx", "Attix"]);

    // A new row, then the same row count as before with a write in between.
    let id = insert_room_type(&other_pool, "Loft", 8_000, 2).await;
    assert_eq!(
        room_type_names(db).await,
        ["Standarx", "Suitx", "Attix", "Loft"]
    );
    rename_attic_from_another_process(test_db.url(), "Attic");
    assert_eq!(
        room_type_names(db).await,
        ["Standarx", "Suitx", "Attic", "Loft"]
    );
    assert!(id > ATTIC);
}

/// Reads on other tasks keep several read connections in use (each keeping its own room
/// types): after every rename, whichever connection the next read gets, it sees the rename.
async fn every_rename_is_seen_by_the_next_read_on_any_connection(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let db = test_db.connection().clone();
    let readers = BusyReaders::start(&db, |db| async move {
        assert_eq!(oq::room_types(&db).await.unwrap().len(), 3);
    });
    for round in 0..40 {
        let name = format!("Standard {round}");
        rename_room_type(&db, STANDARD, &name).await;
        for _ in 0..3 {
            assert_eq!(
                room_type_names(&db).await[0],
                name,
                "round {round}: the rename is seen"
            );
        }
    }
    readers.stop().await;
}

/// Tasks that read in a loop, keeping several read connections in use, until stopped.
struct BusyReaders {
    stop: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BusyReaders {
    /// Three tasks, each running `read` over and over on its own clone of `db`.
    fn start<F, Fut>(db: &sea_orm::DatabaseConnection, read: F) -> Self
    where
        F: Fn(sea_orm::DatabaseConnection) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let stop = Arc::new(AtomicUsize::new(0));
        let tasks = (0..3)
            .map(|_| {
                let (db, stop, read) = (db.clone(), Arc::clone(&stop), read.clone());
                tokio::spawn(async move {
                    while stop.load(Ordering::Relaxed) == 0 {
                        read(db.clone()).await;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops the tasks; a read that failed in one of them fails the test here.
    async fn stop(self) {
        self.stop.store(1, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

test_on_backends!(
    reads_run_beside_sqlx_and_are_still_timed,
    a_transaction_reads_its_own_writes,
    a_closed_pool_fails_the_read_as_sqlx_does,
    room_types_are_never_older_than_the_last_commit,
);
test_on_backends!(multi_thread; every_write_is_seen_by_the_next_read, every_rename_is_seen_by_the_next_read_on_any_connection);
