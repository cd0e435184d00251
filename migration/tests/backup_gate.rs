//! The migration CLI's pre-migration gate, run as a user runs it: the real binary on real
//! SQLite and PostgreSQL databases.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{path::Path, process::Output};

use chrono::NaiveDate;
use db_connect::{test_on_backends, testing::TestDatabase};
use migration::{Migrator, MigratorTrait};

fn migration(db: &TestDatabase, backup_dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_migration"))
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("BACKUP_DIR", backup_dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn seed(db: &TestDatabase) {
    let options = dataset::DatasetOptions::new(dataset::Scale::Tiny)
        .seed(3)
        .reference_date(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
    dataset::generate(db.connection(), &options, &|_| {})
        .await
        .unwrap();
}

async fn backups(dir: &Path) -> Vec<backup::BackupManifest> {
    backup::BackupRepository::open(dir)
        .unwrap()
        .list()
        .await
        .unwrap()
        .backups
}

async fn an_empty_database_migrates_without_a_backup(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let out = migration(&db, dir.path(), &["up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        Migrator::get_pending_migrations(db.connection())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        backups(dir.path()).await.is_empty(),
        "nothing to lose, nothing backed up"
    );
}

async fn a_database_with_data_is_backed_up_and_verified_before_migrating(db: TestDatabase) {
    let db = db.migrated::<Migrator>().await;
    seed(&db).await;
    let dir = tempfile::tempdir().unwrap();

    // Each backup names the newest migration applied when it was taken.
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let (newest, before_newest) = (&names[names.len() - 1], &names[names.len() - 2]);
    let out = migration(&db, dir.path(), &["down", "-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let first = backups(dir.path()).await;
    assert_eq!(first.len(), 1, "{}", text(&out));
    assert_eq!(first[0].reason, backup::Reason::PreMigration);
    assert!(first[0].is_verified());
    assert_eq!(first[0].migration_version.as_ref(), Some(newest));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("pre-migration backup {}", first[0].id))
    );
    assert_eq!(
        Migrator::get_pending_migrations(db.connection())
            .await
            .unwrap()
            .len(),
        1
    );

    let out = migration(&db, dir.path(), &["up"]);
    assert!(out.status.success(), "{}", text(&out));
    let second = backups(dir.path()).await;
    assert_eq!(second.len(), 2);
    assert_eq!(second[0].migration_version.as_ref(), Some(before_newest));
    assert!(second.iter().all(|m| m.is_verified()));

    // Nothing pending: nothing to guard.
    let out = migration(&db, dir.path(), &["up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(backups(dir.path()).await.len(), 2);
    let out = migration(&db, dir.path(), &["status"]);
    assert!(out.status.success());
    assert_eq!(backups(dir.path()).await.len(), 2);

    // Explicitly skipped.
    let out = migration(&db, dir.path(), &["--skip-backup", "down", "-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a pre-migration backup"));
    assert_eq!(backups(dir.path()).await.len(), 2);
}

async fn a_failed_backup_stops_the_migration(db: TestDatabase) {
    let db = db.migrated::<Migrator>().await;
    seed(&db).await;
    Migrator::down(db.connection(), Some(1)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();

    let out = migration(&db, &file.join("backups"), &["up"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was applied"), "{stderr}");
    assert!(stderr.contains("not-a-directory"), "{stderr}");
    assert_eq!(
        Migrator::get_pending_migrations(db.connection())
            .await
            .unwrap()
            .len(),
        1,
        "the migration was not applied"
    );
}

test_on_backends!(
    an_empty_database_migrates_without_a_backup,
    a_database_with_data_is_backed_up_and_verified_before_migrating,
    a_failed_backup_stops_the_migration,
);
