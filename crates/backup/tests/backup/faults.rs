//! Faults and bad input: interrupted writes, damaged files, unwritable and full disks,
//! damaged databases.

use backup::{BackupId, Error, Reason, RestoreOptions, RetentionPolicy, Source, VerifyFailure};
use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use sea_orm::ConnectionTrait;

use crate::support::{
    Immutable, TestRepo, Tmpfs, contents, files, pg_url_of, reopen, repo, seeded, source,
    test_on_repositories, verify_options,
};

/// What a backup killed mid-write (or a foreign writer) can leave: a temporary data file and a
/// temporary manifest (local: uploads in progress; an object store shows none), a data object
/// whose manifest was never written, a truncated manifest. None of it is a backup; earlier
/// backups stay intact; the next runs clean up what is ours to clean.
async fn a_backup_killed_mid_write_leaves_nothing_that_counts(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let earlier = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let data = r.read(&earlier.file);
    let ext = earlier.file.trim_start_matches(earlier.id.as_str());
    let manifest = r.read(&format!("{}.json", earlier.id));

    if let Some(dir) = r.dir() {
        std::fs::write(
            dir.join(format!("20300101T000000Z{ext}.1234-0.tmp")),
            &data[..data.len() / 2],
        )
        .unwrap();
        std::fs::write(
            dir.join("20300101T000003Z.json.1234-1.tmp"),
            &manifest[..40],
        )
        .unwrap();
    }
    r.write(&format!("20300101T000001Z{ext}"), &data);
    r.write("20300101T000002Z.json", &manifest[..manifest.len() / 2]);

    let listing = repo.list().await.unwrap();
    assert_eq!(
        listing.backups,
        std::slice::from_ref(&earlier),
        "only the complete backup is listed"
    );
    let ignored: Vec<&str> = listing.ignored.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        ignored,
        [
            format!("20300101T000001Z{ext}").as_str(),
            "20300101T000002Z.json"
        ],
        "temporary files are not objects at all"
    );
    for (id, truncated) in [
        ("20300101T000000Z", false),
        ("20300101T000001Z", false),
        ("20300101T000002Z", true),
        ("20300101T000003Z", false),
    ] {
        let id = BackupId::parse(id).unwrap();
        let err = repo
            .verify(&id, &verify_options(&db), &|_| {})
            .await
            .unwrap_err();
        if truncated {
            assert!(matches!(err, Error::InvalidManifest { .. }), "{err}");
        } else {
            assert!(matches!(err, Error::NoManifest { .. }), "{err}");
        }
        let target = match db.backend() {
            Backend::Sqlite => Source::sqlite(r.scratch.path().join("restored.sqlite")),
            Backend::Postgres => {
                Source::from_url(&pg_url_of(&db, "never_created_by_restore")).unwrap()
            }
        };
        let err = repo
            .restore(&id, &target, &RestoreOptions::default(), &|_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoManifest { .. } | Error::InvalidManifest { .. }
            ),
            "{err}"
        );
    }
    let report = repo
        .verify(&earlier.id, &verify_options(&db), &|_| {})
        .await
        .unwrap();
    assert!(
        report.ok,
        "the earlier backup is intact: {:?}",
        report.failure
    );
    if let Some(dir) = r.dir() {
        // The verify above held the lock, which swept the temporary files of dead writers.
        assert!(
            files(dir).iter().all(|f| !f.ends_with(".tmp")),
            "{:?}",
            files(dir)
        );
    }
    // Prune removes the data without manifest; the unreadable manifest is not ours to judge.
    let pruned = repo
        .prune(&RetentionPolicy::default(), chrono::Utc::now(), false)
        .await
        .unwrap();
    assert_eq!(pruned.removed_files, [format!("20300101T000001Z{ext}")]);
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.ignored.len(), 1);
    assert_eq!(listing.backups.len(), 1);
}

/// One flipped bit in a backup: verify reports a checksum mismatch and records it; restore
/// refuses and leaves the target as it was.
async fn a_flipped_byte_is_reported_and_refused(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let manifest = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    r.flip_a_byte(&manifest.file);

    let report = repo
        .verify(&manifest.id, &verify_options(&db), &|_| {})
        .await
        .unwrap();
    assert!(!report.ok);
    assert!(
        matches!(report.failure, Some(VerifyFailure::ChecksumMismatch { .. })),
        "{:?}",
        report.failure
    );
    let recorded = repo.manifest(&manifest.id).await.unwrap();
    assert!(
        recorded.failed_verification(),
        "the failure is recorded in the manifest"
    );
    assert_eq!(repo.last_runs().await.unwrap().failures().len(), 1);

    let before = contents(db.connection()).await;
    db.connection().close_by_ref().await.unwrap();
    let err = repo
        .restore(
            &manifest.id,
            &source(&db),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::VerificationFailed {
                failure: VerifyFailure::ChecksumMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    let conn = reopen(&db).await;
    assert_eq!(
        contents(&conn).await,
        before,
        "a refused restore changes nothing"
    );
    conn.close().await.unwrap();
    assert_eq!(
        repo.list().await.unwrap().backups.len(),
        1,
        "no safety backup was needed"
    );
}

/// An unwritable backup directory (immutable: even root cannot create files in it): a clear
/// error naming the path, and the earlier backup untouched.
async fn an_unwritable_backup_directory_is_a_clear_error(db: TestDatabase) {
    let db = seeded(db).await;
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let repo = repo(&backups);
    let earlier = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let before = files(&backups);
    {
        let Some(_immutable) = Immutable::set(&backups) else {
            return;
        };
        let err = repo
            .create(&source(&db), Reason::Manual, &|_| {})
            .await
            .unwrap_err();
        let text = backup::error_chain(&err);
        assert!(matches!(err, Error::Io { .. }), "{text}");
        assert!(text.contains(&backups.display().to_string()), "{text}");
        assert!(text.contains("not permitted"), "{text}");
        assert_eq!(files(&backups), before, "nothing was written or removed");
    }
    let report = repo
        .verify(&earlier.id, &verify_options(&db), &|_| {})
        .await
        .unwrap();
    assert!(report.ok);

    // A backup directory whose parent is a file cannot even be created.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = backup::BackupRepository::open(file.join("backups")).unwrap_err();
    assert!(
        backup::error_chain(&err).contains("a-file/backups"),
        "{err}"
    );
}

/// A full disk: a clear "no space left" error, no partial file, the earlier backup intact.
async fn a_full_disk_is_a_clear_error(db: TestDatabase) {
    let db = seeded(db).await;
    let Some(tmpfs) = Tmpfs::mount("16m") else {
        return;
    };
    let repo = repo(&tmpfs.path());
    let earlier = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    assert!(
        earlier.compressed_bytes > 16 * 1024,
        "the test needs a backup bigger than what is left"
    );
    let filler = tmpfs.fill(8 * 1024);
    let before = files(&tmpfs.path());

    let err = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap_err();
    let text = backup::error_chain(&err);
    assert!(matches!(err, Error::DiskFull { .. }), "{text}");
    assert!(text.contains("no space left"), "{text}");
    assert!(text.contains("earlier backups are untouched"), "{text}");
    assert_eq!(files(&tmpfs.path()), before, "no partial file is left");

    std::fs::remove_file(filler).unwrap();
    let report = repo
        .verify(&earlier.id, &verify_options(&db), &|_| {})
        .await
        .unwrap();
    assert!(report.ok, "{:?}", report.failure);
}

test_on_repositories!(
    a_backup_killed_mid_write_leaves_nothing_that_counts,
    a_flipped_byte_is_reported_and_refused,
);

test_on_backends!(
    an_unwritable_backup_directory_is_a_clear_error,
    a_full_disk_is_a_clear_error,
);

/// A database damaged on disk (garbage in an index page) is copied as it is, and
/// verification's integrity check catches it: a check that passes on a corrupt file is the
/// failure mode this guards against.
#[tokio::test]
async fn a_damaged_sqlite_database_fails_the_integrity_check() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let conn = db.connection();
    let page_size = crate::support::scalar(conn, "PRAGMA page_size").await as u64;
    let root = crate::support::scalar(
        conn,
        "SELECT rootpage FROM sqlite_schema WHERE name = 'idx_bookings_status_start_end'",
    )
    .await as u64;
    conn.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    conn.close_by_ref().await.unwrap();
    let path = db.sqlite_path().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let page = ((root - 1) * page_size) as usize;
    // Keep the page type, scramble the rest: cell pointers and cells.
    for b in &mut bytes[page + 16..page + page_size as usize] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    std::fs::write(&path, bytes).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let manifest = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let report = repo
        .verify(&manifest.id, &backup::VerifyOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(
        matches!(report.failure, Some(VerifyFailure::Integrity { .. })),
        "{:?}",
        report.failure
    );
}

/// Rows pointing at nothing (written with foreign keys off) fail foreign_key_check, and so
/// the pre-migration gate.
#[tokio::test]
async fn foreign_key_violations_fail_verification_and_the_gate() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let conn = db.single_connection().await;
    conn.execute_unprepared("PRAGMA foreign_keys = OFF")
        .await
        .unwrap();
    conn.execute_unprepared(
        "INSERT INTO notifications (user_id, kind, status, scheduled_at) \
         SELECT 999999, kind, status, scheduled_at FROM notifications LIMIT 1",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let err = repo
        .pre_migration(&source(&db), &backup::VerifyOptions::default(), &|_| {})
        .await
        .unwrap_err();
    match err {
        Error::VerificationFailed {
            failure:
                VerifyFailure::ForeignKeys {
                    violations,
                    ref sample,
                },
            ..
        } => {
            assert_eq!(violations, 1);
            assert!(sample[0].contains("notifications"), "{sample:?}");
        }
        other => panic!("expected a foreign key failure, got {other}"),
    }
    let runs = repo.last_runs().await.unwrap();
    assert!(
        runs.failures()
            .iter()
            .any(|r| r.operation == backup::Operation::PreMigration)
    );
}
