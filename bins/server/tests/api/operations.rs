//! Freshness of cached answers after writes, and graceful shutdown.

use std::{sync::Arc, time::Duration};

use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use futures::future::join_all;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::harness::*;

async fn a_booking_is_visible_at_once_and_unrelated_entries_stay_warm(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let standard = format!(
        "/api/availability?roomTypeId=1&startDate={}&endDate={}",
        day(4),
        day(6)
    );
    let suite = format!(
        "/api/availability?roomTypeId=2&startDate={}&endDate={}",
        day(4),
        day(6)
    );
    let later = format!(
        "/api/availability?roomTypeId=1&startDate={}&endDate={}",
        day(30),
        day(32)
    );
    for path in [&standard, &suite, &later, &"/api/room-types".to_owned()] {
        json(app.get(path, None).await, StatusCode::OK).await;
    }
    assert_eq!(
        json(app.get(&standard, None).await, StatusCode::OK).await["minAvailable"],
        5
    );

    json(
        app.book(&app.ann, STANDARD, 4, 6, 2).await,
        StatusCode::CREATED,
    )
    .await;
    let hits_before = app.state.hotel.cache().stats().hits;
    assert_eq!(
        json(app.get(&standard, None).await, StatusCode::OK).await["minAvailable"],
        3,
        "no stale read after the booking"
    );
    assert_eq!(
        app.state.hotel.cache().stats().hits,
        hits_before,
        "that read was a miss"
    );
    for path in [&suite, &later, &"/api/room-types".to_owned()] {
        json(app.get(path, None).await, StatusCode::OK).await;
    }
    assert_eq!(
        app.state.hotel.cache().stats().hits,
        hits_before + 3,
        "the other entries stayed cached"
    );
    app.shutdown().await;
}

async fn shutdown_finishes_requests_in_flight(test_db: TestDatabase) {
    let mut app = TestApp::spawn(test_db).await;
    let backend = app.db.backend();
    // Hold the rows (PostgreSQL) or the write lock (SQLite) so bookings wait inside the server.
    let blocker = app.db.connection().begin().await.unwrap();
    match backend {
        Backend::Postgres => {
            blocker
                .execute_unprepared(
                    "SELECT * FROM room_inventory WHERE room_type_id = 1 FOR UPDATE",
                )
                .await
                .unwrap();
        }
        Backend::Sqlite => {
            blocker
                .execute_unprepared(
                    "UPDATE room_inventory SET total_rooms = total_rooms WHERE id = 1",
                )
                .await
                .unwrap();
        }
    }
    let app_ref = Arc::new(app.base.clone());
    let token = app.ann.clone();
    let client = app.client.clone();
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let (client, base, token) = (client.clone(), Arc::clone(&app_ref), token.clone());
            tokio::spawn(async move {
                let body = serde_json::json!({"roomTypeId": 1, "startDate": day(i + 1), "endDate": day(i + 2), "rooms": 1});
                client.post(format!("{base}/api/bookings")).bearer_auth(token).json(&body).send().await.map(|r| r.status())
            })
        })
        .collect();
    // Every request is inside a handler, waiting for the database.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.state.http.summary().in_flight < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    blocker.rollback().await.unwrap();
    let statuses: Vec<_> = join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "every in-flight request finished: {statuses:?}"
    );
    server.await.unwrap().unwrap();
    assert!(
        app.client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}

/// A database with data and a pending migration: the server backs it up, verified, before
/// migrating; when the backup cannot be taken, it migrates nothing and does not start.
async fn start_up_migrates_only_behind_a_verified_backup(test_db: TestDatabase) {
    use migration::{Migrator, MigratorTrait};
    let url = test_db.url().to_owned();
    let db = test_db.connection();
    Migrator::up(db, Some(2)).await.unwrap();
    server::tokens::issue(db, "someone@example.com", None, None)
        .await
        .unwrap();
    let settings = |dir: std::path::PathBuf| server::startup::Settings {
        backup_dir: Some(dir),
        ..server::startup::Settings::new(url.clone())
    };
    let scratch = tempfile::tempdir().unwrap();
    let not_a_dir = scratch.path().join("a-file");
    std::fs::write(&not_a_dir, b"not a directory").unwrap();
    let pending = Migrator::get_pending_migrations(db).await.unwrap().len();
    assert!(pending > 0);
    let refused = server::startup::build_state(&settings(not_a_dir.join("backups"))).await;
    assert!(refused.is_err(), "no backup, no start");
    assert_eq!(
        Migrator::get_pending_migrations(db).await.unwrap().len(),
        pending,
        "nothing was migrated"
    );

    let backups = scratch.path().join("backups");
    let state = server::startup::build_state(&settings(backups.clone()))
        .await
        .unwrap();
    assert!(
        Migrator::get_pending_migrations(db)
            .await
            .unwrap()
            .is_empty()
    );
    let repo = backup::BackupRepository::open(&backups).unwrap();
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups.len(), 1);
    let manifest = &listing.backups[0];
    assert_eq!(manifest.reason, backup::Reason::PreMigration);
    assert!(
        manifest.is_verified(),
        "the backup was verified: {manifest:?}"
    );
    state.primary.close_by_ref().await.unwrap();
}

test_on_backends!(start_up_migrates_only_behind_a_verified_backup);

test_on_backends!(
    multi_thread;
    a_booking_is_visible_at_once_and_unrelated_entries_stay_warm,
    shutdown_finishes_requests_in_flight,
);

async fn synchronous(db: &sea_orm::DatabaseConnection) -> i64 {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "PRAGMA synchronous",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index(0)
    .unwrap()
}

/// Issue 16 item 7: a 201 is a promise, so the server's write path commits with
/// `synchronous = FULL` (2) unless `--sqlite-synchronous normal` trades it away (1).
#[tokio::test]
async fn the_write_path_commits_durably_unless_told_otherwise() {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    assert_eq!(synchronous(&app.state.primary).await, 2, "FULL by default");
    let traded = app
        .another_instance(|settings| settings.durable_commits = false)
        .await;
    assert_eq!(synchronous(&traded.state.primary).await, 1, "NORMAL");
    traded.shutdown().await;
    app.shutdown().await;
}
