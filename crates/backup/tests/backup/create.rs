//! Taking backups.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use backup::{DatabaseKind, Error, PgTools, Reason, SnapshotMethod, Source};
use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use sea_orm::{ConnectionTrait, TransactionTrait};
use sha2::{Digest, Sha256};

use crate::support::{
    INSERT_BOOKING, TestRepo, counts, files, repo, scalar, seeded, source, test_on_repositories,
    verify_options,
};

async fn create_records_a_complete_manifest(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let live = counts(db.connection()).await;

    let manifest = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();

    assert_eq!(manifest.format_version, backup::FORMAT_VERSION);
    assert_eq!(manifest.tables, live, "the manifest counts every table");
    assert!(manifest.tables["bookings"] > 100);
    assert_eq!(
        manifest.migration_version.as_deref(),
        Some(crate::support::latest_migration().as_str())
    );
    assert_eq!(manifest.reason, Reason::Manual);
    assert_eq!(manifest.compression.level, 3);
    assert!(manifest.tool_version.starts_with("backup "));
    assert!(manifest.verification.is_none());
    assert!(manifest.compressed_bytes < manifest.raw_bytes);
    let data = r.read(&manifest.file);
    assert_eq!(data.len() as u64, manifest.compressed_bytes);
    assert_eq!(manifest.sha256, hex::encode(Sha256::digest(&data)));
    match db.backend() {
        Backend::Sqlite => {
            assert_eq!(manifest.database, DatabaseKind::Sqlite);
            assert_eq!(manifest.snapshot_method, SnapshotMethod::SqlitePageStream);
            // The page stream copies the whole file.
            let file_len = std::fs::metadata(db.sqlite_path().unwrap()).unwrap().len();
            assert!(manifest.raw_bytes <= file_len.max(manifest.raw_bytes));
        }
        Backend::Postgres => {
            assert_eq!(manifest.database, DatabaseKind::Postgres);
            assert_eq!(manifest.snapshot_method, SnapshotMethod::PgDumpCustom);
            assert!(manifest.source.starts_with("postgres://"));
        }
    }
    assert_eq!(
        r.top_keys(),
        [
            format!("{}.json", manifest.id),
            manifest.file.clone(),
            "repository.json".to_owned(),
        ]
    );
    // The manifest is sealed JSON: plain to read, and any change to it is detected.
    let sealed: serde_json::Value =
        serde_json::from_slice(&r.read(&format!("{}.json", manifest.id))).unwrap();
    assert_eq!(sealed["sealed_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(sealed["sha256"], manifest.sha256.as_str());
    let identity = repo.identity().await.unwrap().unwrap();
    assert_eq!(identity.database, source(&db).identity_name().unwrap());
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups, std::slice::from_ref(&manifest));
    assert!(listing.ignored.is_empty());

    let report = repo
        .verify(&manifest.id, &verify_options(&db), &|_| {})
        .await
        .unwrap();
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.tables, live);
    let recorded = repo.manifest(&manifest.id).await.unwrap();
    assert!(recorded.is_verified());
    assert_eq!(repo.last_runs().await.unwrap().failures().len(), 0);
    // The verification is a record of its own; the manifest is never rewritten.
    assert!(
        r.keys()
            .iter()
            .any(|k| k.starts_with(&format!("verifications/{}/", manifest.id))),
        "{:?}",
        r.keys()
    );
}

/// Writers insert bookings (and notifications, in the same transactions) as fast as they can
/// while backups are taken: every backup must restore to a database that passes the integrity
/// check with exactly the row counts of its manifest, and the writers must have been seen.
async fn backup_under_concurrent_writers_is_consistent(db: TestDatabase) {
    let db = seeded(db).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let conn = db_connect::connect(db.url()).await.unwrap();
        let (stop, inserted) = (stop.clone(), inserted.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let txn = conn.begin().await.unwrap();
                txn.execute_unprepared(INSERT_BOOKING).await.unwrap();
                txn.execute_unprepared(
                    "INSERT INTO notifications (user_id, kind, status, scheduled_at) \
                     SELECT user_id, 'booking_confirmed', status, scheduled_at FROM notifications \
                     WHERE id = (SELECT min(id) FROM notifications)",
                )
                .await
                .unwrap();
                txn.commit().await.unwrap();
                inserted.fetch_add(1, Ordering::Relaxed);
            }
            conn.close().await.unwrap();
        }));
    }
    // Let the writers get going before the first snapshot.
    while inserted.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut manifests = Vec::new();
    let mut committed_during_backups = 0;
    for _ in 0..3 {
        let before = inserted.load(Ordering::Relaxed);
        manifests.push(
            repo.create(&source(&db), Reason::Scheduled, &|_| {})
                .await
                .unwrap(),
        );
        let seen = inserted.load(Ordering::Relaxed);
        committed_during_backups += seen - before;
        while inserted.load(Ordering::Relaxed) < seen + 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    assert!(
        committed_during_backups > 0,
        "writers are not blocked while a backup runs"
    );
    if db.backend() == Backend::Sqlite {
        // The page stream found its quiet moment despite the writers (it falls back to
        // VACUUM INTO only when it cannot, which would still be consistent).
        assert!(
            manifests
                .iter()
                .any(|m| m.snapshot_method == SnapshotMethod::SqlitePageStream),
            "{:?}",
            manifests
                .iter()
                .map(|m| m.snapshot_method)
                .collect::<Vec<_>>()
        );
    }
    let bookings: Vec<u64> = manifests.iter().map(|m| m.tables["bookings"]).collect();
    assert!(
        bookings.windows(2).all(|w| w[0] < w[1]),
        "writers committed between the backups: {bookings:?}"
    );
    for m in &manifests {
        // Each transaction inserted one booking and one notification: a consistent snapshot
        // has them in step.
        let base_gap =
            manifests[0].tables["bookings"] as i64 - manifests[0].tables["notifications"] as i64;
        assert_eq!(
            m.tables["bookings"] as i64 - m.tables["notifications"] as i64,
            base_gap,
            "a snapshot must not split a transaction"
        );
        let report = repo
            .verify(&m.id, &verify_options(&db), &|_| {})
            .await
            .unwrap();
        assert!(report.ok, "backup {} failed: {:?}", m.id, report.failure);
        assert_eq!(report.tables, m.tables);
    }
    let live = scalar(db.connection(), "SELECT count(*) FROM bookings").await as u64;
    assert!(live > *bookings.last().unwrap());
}

test_on_repositories!(create_records_a_complete_manifest);
test_on_backends!(multi_thread; backup_under_concurrent_writers_is_consistent);

#[tokio::test]
async fn a_missing_sqlite_file_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(&dir.path().join("backups"));
    let path = dir.path().join("typo.sqlite");
    let err = repo
        .create(&Source::sqlite(&path), Reason::Manual, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SourceMissing { .. }), "{err}");
    assert!(!path.exists(), "a backup must never create the database");
    assert!(repo.list().await.unwrap().backups.is_empty());
    assert!(
        repo.identity().await.unwrap().is_none(),
        "a missing database claims no repository"
    );
    let failures = repo.last_runs().await.unwrap();
    assert_eq!(failures.failures().len(), 1, "the failed run is recorded");
}

#[tokio::test]
async fn the_simple_vacuum_into_method_gives_the_same_counts() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = backup::BackupRepository::builder(dir.path())
        .sqlite_snapshot_method(backup::SqliteSnapshotMethod::VacuumInto)
        .open()
        .unwrap();
    let manifest = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    assert_eq!(manifest.snapshot_method, SnapshotMethod::SqliteVacuumInto);
    assert_eq!(manifest.tables, counts(db.connection()).await);
    let report = repo
        .verify(&manifest.id, &backup::VerifyOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(report.ok, "{:?}", report.failure);
    // The temporary copy is gone.
    assert_eq!(
        files(dir.path()),
        [
            ".lock".to_owned(),
            format!("{}.json", manifest.id),
            manifest.file.clone(),
            "repository.json".to_owned(),
            "runs".to_owned(),
            "verifications".to_owned()
        ]
    );
}

/// The source URL is wrong: a clear error naming the database, and nothing in the directory.
#[tokio::test]
async fn pg_dump_of_a_wrong_url_is_a_clear_error_and_no_backup() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let wrong = crate::support::pg_url_of(&db, "no_such_database_for_backup");
    let err = repo
        .create(&Source::from_url(&wrong).unwrap(), Reason::Manual, &|_| {})
        .await
        .unwrap_err();
    let text = backup::error_chain(&err);
    assert!(text.contains("no_such_database_for_backup"), "{text}");
    assert!(repo.list().await.unwrap().backups.is_empty());
    assert_eq!(files(dir.path()), [".lock", "runs"]);
}

/// pg_dump itself fails half way (here a stand-in that writes the start of a dump, complains
/// and exits 1), exits 0 without output, or is missing: never a backup, never a file left.
#[tokio::test]
async fn a_failing_pg_dump_never_leaves_a_backup() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let db = seeded(db).await;
    let dir = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let path = bin.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    };
    let cases = [
        (
            script(
                "partial",
                "printf 'PGDMP partial output'; echo 'pg_dump: error: connection to server lost' >&2; exit 1",
            ),
            "connection to server lost",
        ),
        (script("silent", "exit 0"), "empty output"),
        (
            script("garbage", "echo 'this is not a dump'"),
            "not a custom-format dump",
        ),
        (bin.path().join("missing"), "cannot run pg_dump"),
    ];
    for (pg_dump, expected) in cases {
        let repo = backup::BackupRepository::builder(dir.path())
            .pg_tools(PgTools {
                pg_dump,
                ..PgTools::default()
            })
            .open()
            .unwrap();
        let err = repo
            .create(&source(&db), Reason::Manual, &|_| {})
            .await
            .unwrap_err();
        let text = backup::error_chain(&err);
        assert!(text.contains(expected), "expected `{expected}` in `{text}`");
        assert!(repo.list().await.unwrap().backups.is_empty());
        assert_eq!(files(dir.path()), [".lock", "runs"]);
    }
}

/// A long-running reader keeps the WAL from being emptied: the page stream gives up after a
/// few short tries (never holding writers up for long) and falls back to VACUUM INTO, which
/// is just as consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_reader_makes_the_page_stream_fall_back_to_vacuum_into() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let reader = db_connect::connect(db.url()).await.unwrap();
    let writer = db_connect::connect(db.url()).await.unwrap();
    writer.execute_unprepared(INSERT_BOOKING).await.unwrap();
    let txn = reader.begin().await.unwrap();
    let seen = crate::support::scalar_in(&txn, "SELECT count(*) FROM bookings").await;
    // Frames beyond the reader's snapshot: the WAL cannot be reset while it reads.
    writer.execute_unprepared(INSERT_BOOKING).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let manifest = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    assert_eq!(manifest.snapshot_method, SnapshotMethod::SqliteVacuumInto);
    assert_eq!(
        manifest.tables["bookings"],
        seen as u64 + 1,
        "the latest commit is in"
    );
    // Writers were not shut out meanwhile.
    writer.execute_unprepared(INSERT_BOOKING).await.unwrap();
    txn.rollback().await.unwrap();
    let report = repo
        .verify(&manifest.id, &backup::VerifyOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(report.ok, "{:?}", report.failure);
}

/// A repository holds one database: a backup of another one is refused and writes nothing,
/// and a restore over another existing database (whose safety backup would land here) is
/// refused before it touches anything, unless told to take no safety backup.
async fn a_repository_holds_one_database(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let ours = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let other = seeded(TestDatabase::new(db.backend()).await.unwrap()).await;
    let data_keys = || -> Vec<String> {
        r.keys()
            .into_iter()
            .filter(|k| !k.starts_with("runs/"))
            .collect()
    };
    let before = data_keys();

    let err = repo
        .create(&source(&other), Reason::Manual, &|_| {})
        .await
        .unwrap_err();
    let text = backup::error_chain(&err);
    assert!(matches!(err, Error::ForeignDatabase { .. }), "{text}");
    assert!(
        text.contains(&source(&db).identity_name().unwrap())
            && text.contains(&source(&other).identity_name().unwrap()),
        "{text}"
    );
    assert_eq!(
        data_keys(),
        before,
        "nothing of the other database was stored"
    );

    let other_before = crate::support::contents(other.connection()).await;
    other.connection().close_by_ref().await.unwrap();
    let err = repo
        .restore(
            &ours.id,
            &source(&other),
            &backup::RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not this repository's database"),
        "{err}"
    );
    let conn = crate::support::reopen(&other).await;
    assert_eq!(crate::support::contents(&conn).await, other_before);
    conn.close().await.unwrap();
    assert_eq!(data_keys(), before);

    let report = repo
        .restore(
            &ours.id,
            &source(&other),
            &backup::RestoreOptions {
                skip_safety_backup: true,
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.tables, ours.tables);
    if let Some(replaced) = report.replaced_database {
        crate::support::drop_pg_database(&replaced).await;
    }
}

test_on_repositories!(a_repository_holds_one_database);
