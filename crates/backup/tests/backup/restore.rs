//! Restoring backups.

use std::io::Write;

use backup::{Error, Reason, RestoreMode, RestoreOptions, Source};
use db_connect::{Backend, testing::TestDatabase};

use crate::support::{
    TestRepo, contents, drop_pg_database, files, mutate, pg_url_of, reopen, repo, seeded, source,
    test_on_repositories,
};

/// Restore puts back exactly the backed-up data (every row of every table), keeps a safety
/// backup of what it replaced, and leaves no stale -wal/-shm behind.
async fn restore_puts_back_exactly_the_backed_up_data(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let original = contents(db.connection()).await;
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    mutate(db.connection()).await;
    let mutated = contents(db.connection()).await;
    assert_ne!(mutated, original);
    // The application stops before a restore.
    db.connection().close_by_ref().await.unwrap();
    let side_files_before: Vec<bool> = match db.backend() {
        Backend::Sqlite => {
            let path = db.sqlite_path().unwrap();
            ["-wal", "-shm"]
                .iter()
                .map(|s| std::path::PathBuf::from(format!("{}{s}", path.display())).exists())
                .collect()
        }
        Backend::Postgres => Vec::new(),
    };

    let report = repo
        .restore(
            &backup.id,
            &source(&db),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    assert!(report.executed);
    assert_eq!(report.tables, backup.tables);

    if db.backend() == Backend::Sqlite {
        let path = db.sqlite_path().unwrap();
        for suffix in ["-wal", "-shm", "-journal"] {
            assert!(
                !std::path::PathBuf::from(format!("{}{suffix}", path.display())).exists(),
                "stale {suffix} left behind"
            );
        }
        let stale_before = side_files_before.iter().filter(|e| **e).count();
        assert_eq!(report.removed_files.len(), stale_before);
        // No restore temporary file is left beside the database.
        let dir_files = files(path.parent().unwrap());
        assert!(
            dir_files.iter().all(|f| !f.ends_with(".tmp")),
            "{dir_files:?}"
        );
    }
    let conn = reopen(&db).await;
    assert_eq!(
        contents(&conn).await,
        original,
        "every table is back as it was"
    );
    conn.close().await.unwrap();

    // The safety backup holds what was replaced.
    let safety = report.safety_backup.expect("a safety backup");
    let safety_manifest = repo.manifest(&safety).await.unwrap();
    assert_eq!(safety_manifest.reason, Reason::PreRestore);
    let (scratch, scratch_url) = match db.backend() {
        Backend::Sqlite => {
            let path = r.scratch.path().join("safety-check.sqlite");
            (None, format!("sqlite://{}", path.display()))
        }
        Backend::Postgres => {
            let name = format!(
                "{}_safety_check",
                url::Url::parse(db.url())
                    .unwrap()
                    .path()
                    .trim_start_matches('/')
            );
            (Some(name.clone()), pg_url_of(&db, &name))
        }
    };
    repo.restore(
        &safety,
        &Source::from_url(&scratch_url).unwrap(),
        &RestoreOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    let conn = db_connect::connect(&scratch_url).await.unwrap();
    assert_eq!(
        contents(&conn).await,
        mutated,
        "the safety backup holds the replaced data"
    );
    conn.close().await.unwrap();
    if let Some(name) = scratch {
        drop_pg_database(&name).await;
    }
    if let Some(replaced) = report.replaced_database {
        // PostgreSQL keeps the replaced database under another name.
        let conn = db_connect::connect(&pg_url_of(&db, &replaced))
            .await
            .unwrap();
        assert_eq!(contents(&conn).await, mutated);
        conn.close().await.unwrap();
        drop_pg_database(&replaced).await;
    }
}

/// A database still held open is not replaced (unless forced); a dry run says so and changes
/// nothing.
async fn restore_refuses_a_database_in_use(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    mutate(db.connection()).await;
    let before = contents(db.connection()).await;
    let keys_before = r.keys();

    let plan = repo
        .restore(
            &backup.id,
            &source(&db),
            &RestoreOptions {
                dry_run: true,
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert!(!plan.executed);
    assert!(plan.plan.in_use.is_some(), "the open pool is seen");
    assert!(
        plan.plan.steps.last().unwrap().starts_with("REFUSE"),
        "{:?}",
        plan.plan.steps
    );

    let err = repo
        .restore(
            &backup.id,
            &source(&db),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DatabaseInUse { .. }), "{err}");
    assert_eq!(contents(db.connection()).await, before);
    assert_eq!(
        repo.list().await.unwrap().backups.len(),
        1,
        "no safety backup before refusing"
    );
    let new: Vec<String> = r
        .keys()
        .into_iter()
        .filter(|k| !keys_before.contains(k))
        .collect();
    assert!(
        new.iter().all(|k| k.starts_with("runs/restore/")),
        "a refused restore writes nothing but its run record: {new:?}"
    );

    // Forced: it goes ahead (PostgreSQL ends the sessions).
    let report = repo
        .restore(
            &backup.id,
            &source(&db),
            &RestoreOptions {
                force: true,
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert!(report.executed);
    if let Some(replaced) = report.replaced_database {
        drop_pg_database(&replaced).await;
    }
}

/// A dry run prints the plan and changes nothing at all.
async fn a_dry_run_changes_nothing(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    mutate(db.connection()).await;
    let before = contents(db.connection()).await;
    db.connection().close_by_ref().await.unwrap();
    let manifest_before = r.read(&format!("{}.json", backup.id));
    let keys_before = r.keys();

    let report = repo
        .restore(
            &backup.id,
            &source(&db),
            &RestoreOptions {
                dry_run: true,
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert!(!report.executed);
    assert!(report.plan.in_use.is_none(), "{:?}", report.plan.in_use);
    assert!(report.plan.target_exists);
    assert!(report.plan.steps.len() >= 3, "{:?}", report.plan.steps);
    assert!(
        report
            .plan
            .steps
            .iter()
            .any(|s| s.contains("safety backup"))
    );

    assert_eq!(r.keys(), keys_before);
    assert_eq!(r.read(&format!("{}.json", backup.id)), manifest_before);
    let conn = reopen(&db).await;
    assert_eq!(contents(&conn).await, before);
    conn.close().await.unwrap();
}

/// Restoring into a database that does not exist yet creates it (no safety backup needed).
async fn restore_into_a_new_database(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let original = contents(db.connection()).await;
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let (url, name) = match db.backend() {
        Backend::Sqlite => (
            format!("sqlite://{}/new/copy.sqlite", r.scratch.path().display()),
            None,
        ),
        Backend::Postgres => {
            let name = format!(
                "{}_copy",
                url::Url::parse(db.url())
                    .unwrap()
                    .path()
                    .trim_start_matches('/')
            );
            (pg_url_of(&db, &name), Some(name))
        }
    };
    let report = repo
        .restore(
            &backup.id,
            &Source::from_url(&url).unwrap(),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    assert!(report.safety_backup.is_none());
    assert!(!report.plan.target_exists);
    let conn = db_connect::connect(&url).await.unwrap();
    assert_eq!(contents(&conn).await, original);
    conn.close().await.unwrap();
    if let Some(name) = name {
        drop_pg_database(&name).await;
    }
}

test_on_repositories!(
    restore_puts_back_exactly_the_backed_up_data,
    restore_refuses_a_database_in_use,
    a_dry_run_changes_nothing,
    restore_into_a_new_database,
);

/// Another process (the sqlite3 shell) holding the database open is detected.
#[tokio::test]
async fn a_sqlite_database_open_in_another_process_is_refused() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    db.connection().close_by_ref().await.unwrap();

    let mut shell = match std::process::Command::new("sqlite3")
        .arg(db.sqlite_path().unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(shell) => shell,
        Err(e) => {
            db_connect::testing::service_unavailable("the sqlite3 shell", &e.to_string());
            return;
        }
    };
    let mut stdin = shell.stdin.take().unwrap();
    // A query makes the shell open the database and take its WAL-mode locks; the output
    // proves it has.
    writeln!(stdin, "SELECT count(*) FROM users;").unwrap();
    stdin.flush().unwrap();
    let mut stdout = std::io::BufReader::new(shell.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.trim().parse::<u64>().is_ok(), "{line}");

    let err = repo
        .restore(
            &backup.id,
            &source(&db),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap_err();
    match &err {
        Error::DatabaseInUse { detail, .. } => {
            assert!(
                detail.contains(&format!("process {}", shell.id())),
                "{detail}"
            );
        }
        other => panic!("expected DatabaseInUse, got {other}"),
    }
    drop(stdin);
    shell.wait().unwrap();
    let report = repo
        .restore(
            &backup.id,
            &source(&db),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    assert!(
        report.executed,
        "once the shell has quit, the restore goes ahead"
    );
}

/// PostgreSQL's --clean mode restores into the target itself, in one transaction.
#[tokio::test]
async fn postgres_clean_mode_restores_in_place() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let db = seeded(db).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let original = contents(db.connection()).await;
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    mutate(db.connection()).await;
    db.connection().close_by_ref().await.unwrap();
    let options = RestoreOptions {
        mode: RestoreMode::Clean,
        ..Default::default()
    };
    let report = repo
        .restore(&backup.id, &source(&db), &options, &|_| {})
        .await
        .unwrap();
    assert!(report.replaced_database.is_none());
    assert!(report.safety_backup.is_some());
    let conn = reopen(&db).await;
    assert_eq!(contents(&conn).await, original);
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_backup_restores_only_into_its_own_kind_of_database() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let pg = Source::from_url("postgres://postgres@127.0.0.1/whatever").unwrap();
    let err = repo
        .restore(&backup.id, &pg, &RestoreOptions::default(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KindMismatch { .. }), "{err}");
}
