//! Health monitoring: the right Nagios status for each unhealthy state.

use backup::{
    BackupRepository, Reason, Source, VerifyOptions,
    monitor::{HealthPolicy, Status, assess},
};
use chrono::Utc;
use db_connect::testing::TestDatabase;
use sea_orm::ConnectionTrait;

use crate::support::{Tmpfs, flip_a_byte, repo, seeded, source, verify_options};

async fn status_of(
    repo: &BackupRepository,
    policy: &HealthPolicy,
    now: chrono::DateTime<Utc>,
    check: &str,
) -> Status {
    let report = assess(repo, policy, now).await;
    report
        .checks
        .iter()
        .find(|c| c.name == check)
        .unwrap()
        .status
}

/// Three verified backups of a real database: healthy; then, by moving the clock and
/// damaging things for real, every unhealthy state.
#[tokio::test]
async fn each_unhealthy_state_has_its_exit_code() {
    let db = seeded(TestDatabase::sqlite().await).await;
    // More bookings, so that an emptied database is clearly smaller than its schema alone.
    for _ in 0..4 {
        db.connection()
            .execute_unprepared(
                &crate::support::INSERT_BOOKING
                    .replace("WHERE id = (SELECT min(id) FROM bookings)", ""),
            )
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let none = HealthPolicy {
        min_free_bytes: 0,
        ..HealthPolicy::default()
    };

    // No backup at all.
    let report = assess(&repo, &none, Utc::now()).await;
    assert_eq!(report.status, Status::Critical);
    assert_eq!(report.status.exit_code(), 2);

    let mut ids = Vec::new();
    for _ in 0..3 {
        let m = repo
            .create(&source(&db), Reason::Scheduled, &|_| {})
            .await
            .unwrap();
        repo.verify(&m.id, &VerifyOptions::default(), &|_| {})
            .await
            .unwrap();
        ids.push(m.id);
        // Distinct ids without waiting a second: the second backup of a second gets "-2".
    }
    let newest = repo.manifest(ids.last().unwrap()).await.unwrap();
    let healthy = assess(&repo, &none, Utc::now()).await;
    assert_eq!(healthy.status, Status::Ok, "{}", healthy.nagios_line());
    assert_eq!(healthy.status.exit_code(), 0);
    assert!(
        healthy
            .nagios_line()
            .starts_with("BACKUP OK - newest verified backup")
    );

    // Age: warning after 26 h, critical after 50 h.
    let at = |hours: i64| newest.created_at + chrono::Duration::hours(hours);
    assert_eq!(assess(&repo, &none, at(27)).await.status, Status::Warning);
    assert_eq!(assess(&repo, &none, at(27)).await.status.exit_code(), 1);
    let old = assess(&repo, &none, at(51)).await;
    assert_eq!(old.status, Status::Critical, "{}", old.nagios_line());

    // Fewer backups than the minimum.
    let four = HealthPolicy {
        min_backups: 4,
        ..none.clone()
    };
    assert_eq!(
        status_of(&repo, &four, Utc::now(), "count").await,
        Status::Warning
    );
    assert_eq!(
        assess(&repo, &four, Utc::now()).await.status,
        Status::Warning
    );

    // Free disk space below the threshold.
    let disk = HealthPolicy {
        min_free_bytes: u64::MAX / 4,
        ..none.clone()
    };
    assert_eq!(
        status_of(&repo, &disk, Utc::now(), "disk").await,
        Status::Warning
    );

    // The newest backup is much smaller than the ones before: an empty dump.
    db.connection()
        .execute_unprepared("DELETE FROM payments; DELETE FROM bookings; DELETE FROM notifications; DELETE FROM waitlist_entries; DELETE FROM room_inventory; DELETE FROM api_tokens; DELETE FROM users; VACUUM")
        .await
        .unwrap();
    let small = repo
        .create(&source(&db), Reason::Scheduled, &|_| {})
        .await
        .unwrap();
    let size = assess(&repo, &none, Utc::now()).await;
    assert_eq!(
        size.checks
            .iter()
            .find(|c| c.name == "size")
            .unwrap()
            .status,
        Status::Critical,
        "{}",
        size.nagios_line()
    );
    let report = assess(&repo, &none, Utc::now()).await;
    assert_eq!(report.status, Status::Critical);
    assert!(
        report.nagios_line().contains("smaller"),
        "{}",
        report.nagios_line()
    );

    // ... and unverified for longer than the grace period.
    let later = small.created_at + chrono::Duration::hours(7);
    assert_eq!(
        status_of(&repo, &none, later, "verification").await,
        Status::Warning
    );

    // The newest backup failed verification.
    flip_a_byte(&dir.path().join(&small.file));
    let report = repo
        .verify(&small.id, &VerifyOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(!report.ok);
    assert_eq!(
        status_of(&repo, &none, Utc::now(), "verification").await,
        Status::Critical
    );
    // ... which is also the last run failing.
    assert_eq!(
        status_of(&repo, &none, Utc::now(), "last-run").await,
        Status::Critical
    );

    // A manifest from a newer tool is reported.
    let future = dir.path().join("20991231T000000Z.json");
    std::fs::write(
        &future,
        br#"{"format_version": 9, "id": "20991231T000000Z"}"#,
    )
    .unwrap();
    assert_eq!(
        status_of(&repo, &none, Utc::now(), "manifests").await,
        Status::Warning
    );
    std::fs::remove_file(future).unwrap();

    // The Prometheus file is written whole.
    let prom = dir.path().join("metrics").join("backup.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let report = assess(&repo, &none, Utc::now()).await;
    report.write_prometheus(&prom).unwrap();
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("backup_health_status 2\n"), "{text}");
    assert!(
        text.contains("backup_check_status{check=\"verification\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("backup_last_run_success{operation=\"verify\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("backup_count 3\n"), "{text}");
    assert_eq!(
        std::fs::read_dir(prom.parent().unwrap()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

/// The last create failed (the database file is gone): critical until a create succeeds.
#[tokio::test]
async fn a_failed_last_run_is_critical() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let m = repo
        .create(&source(&db), Reason::Scheduled, &|_| {})
        .await
        .unwrap();
    repo.verify(&m.id, &VerifyOptions::default(), &|_| {})
        .await
        .unwrap();
    let policy = HealthPolicy {
        min_backups: 1,
        min_free_bytes: 0,
        ..HealthPolicy::default()
    };
    assert_eq!(assess(&repo, &policy, Utc::now()).await.status, Status::Ok);

    let missing = Source::sqlite(dir.path().join("gone.sqlite"));
    repo.create(&missing, Reason::Scheduled, &|_| {})
        .await
        .unwrap_err();
    let report = assess(&repo, &policy, Utc::now()).await;
    assert_eq!(report.status, Status::Critical);
    assert!(
        report.nagios_line().contains("the last create failed"),
        "{}",
        report.nagios_line()
    );

    repo.create(&source(&db), Reason::Scheduled, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        assess(&repo, &policy, Utc::now())
            .await
            .checks
            .iter()
            .find(|c| c.name == "last-run")
            .unwrap()
            .status,
        Status::Ok
    );
}

/// A directory that cannot be read: UNKNOWN (exit code 3).
#[tokio::test]
async fn an_unreadable_directory_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(&dir.path().join("backups"));
    std::fs::remove_dir(dir.path().join("backups")).unwrap();
    std::fs::write(dir.path().join("backups"), b"not a directory").unwrap();
    let report = assess(&repo, &HealthPolicy::default(), Utc::now()).await;
    assert_eq!(report.status, Status::Unknown);
    assert_eq!(report.status.exit_code(), 3);
}

/// The next backup would not fit on the disk: critical.
#[tokio::test]
async fn a_disk_too_full_for_the_next_backup_is_critical() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let Some(tmpfs) = Tmpfs::mount("16m") else {
        return;
    };
    let repo = repo(&tmpfs.path());
    let m = repo
        .create(&source(&db), Reason::Scheduled, &|_| {})
        .await
        .unwrap();
    let policy = HealthPolicy {
        min_free_bytes: 0,
        ..HealthPolicy::default()
    };
    let before = assess(&repo, &policy, Utc::now()).await;
    assert_eq!(
        before
            .checks
            .iter()
            .find(|c| c.name == "disk")
            .unwrap()
            .status,
        Status::Ok
    );
    let _filler = tmpfs.fill(m.raw_bytes / 2);
    let report = assess(&repo, &policy, Utc::now()).await;
    let disk = report.checks.iter().find(|c| c.name == "disk").unwrap();
    assert_eq!(disk.status, Status::Critical, "{}", disk.message);
}

/// On PostgreSQL too, a dump of an emptied database is flagged.
#[tokio::test]
async fn an_empty_postgres_dump_is_critical() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let db = seeded(db).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    for _ in 0..3 {
        let m = repo
            .create(&source(&db), Reason::Scheduled, &|_| {})
            .await
            .unwrap();
        repo.verify(&m.id, &verify_options(&db), &|_| {})
            .await
            .unwrap();
    }
    let policy = HealthPolicy {
        min_free_bytes: 0,
        ..HealthPolicy::default()
    };
    assert_eq!(assess(&repo, &policy, Utc::now()).await.status, Status::Ok);
    db.connection()
        .execute_unprepared("TRUNCATE payments, bookings, notifications, waitlist_entries, room_inventory, api_tokens CASCADE")
        .await
        .unwrap();
    repo.create(&source(&db), Reason::Scheduled, &|_| {})
        .await
        .unwrap();
    let report = assess(&repo, &policy, Utc::now()).await;
    assert_eq!(report.status, Status::Critical, "{}", report.nagios_line());
}

/// A repository in an object store is assessed like a directory: healthy after a verified
/// backup, critical once the newest backup fails verification.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_store_repository_is_assessed_like_a_directory() {
    let Some(r) = crate::support::TestRepo::s3() else {
        return;
    };
    let db = seeded(TestDatabase::sqlite().await).await;
    let policy = HealthPolicy {
        min_backups: 1,
        min_free_bytes: 0,
        ..HealthPolicy::default()
    };
    let m = r
        .repo
        .create(&source(&db), Reason::Scheduled, &|_| {})
        .await
        .unwrap();
    r.repo
        .verify(&m.id, &VerifyOptions::default(), &|_| {})
        .await
        .unwrap();
    let report = assess(&r.repo, &policy, Utc::now()).await;
    assert_eq!(report.status, Status::Ok, "{}", report.nagios_line());
    r.flip_a_byte(&m.file);
    let verified = r
        .repo
        .verify(&m.id, &VerifyOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(!verified.ok);
    let report = assess(&r.repo, &policy, Utc::now()).await;
    assert_eq!(report.status, Status::Critical, "{}", report.nagios_line());
}

/// An object store that does not answer: UNKNOWN, naming the repository.
#[cfg(feature = "s3")]
#[tokio::test]
async fn an_unreachable_object_store_is_unknown() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scratch = tempfile::tempdir().unwrap();
    let url = format!("s3://nowhere/db?endpoint=http://127.0.0.1:{port}");
    let repo = BackupRepository::builder(backup::RepositoryLocation::parse(&url).unwrap())
        .s3_settings(crate::support::s3_settings())
        .scratch_dir(scratch.path())
        .open()
        .unwrap();
    let report = assess(&repo, &HealthPolicy::default(), Utc::now()).await;
    assert_eq!(report.status, Status::Unknown, "{}", report.nagios_line());
    assert!(
        report.nagios_line().contains("s3://nowhere/db"),
        "{}",
        report.nagios_line()
    );
}
