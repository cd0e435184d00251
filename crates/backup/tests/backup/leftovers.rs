//! Operations stopped in the middle (their futures dropped, as when a task is aborted): what
//! they leave never blocks the next run, which removes it; the monitor reports it meanwhile.
//! (Processes killed with SIGKILL and SIGTERM: the hotel-backup tests.)

use std::{future::Future, time::Duration};

use backup::{
    BackupRepository, Reason, RestoreOptions,
    monitor::{HealthPolicy, Status, assess},
};
use db_connect::{Backend, testing::TestDatabase};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::support::{
    TestRepo, contents, drop_pg_database, reopen, seeded, source, test_on_repositories,
    verify_options,
};

/// The scratch state an operation on `db` has created: PostgreSQL databases named after the
/// database with `_<tag>` in the name (`restoring`, `verify`), or temporary SQLite files
/// beside the database or in `scratch_dirs` whose name contains `tag`.
async fn scratch_state(
    db: &TestDatabase,
    admin: Option<&DatabaseConnection>,
    tag: &str,
    scratch_dirs: &[&std::path::Path],
) -> Vec<String> {
    match db.backend() {
        Backend::Postgres => {
            let admin = admin.unwrap();
            let base = url::Url::parse(db.url())
                .unwrap()
                .path()
                .trim_start_matches('/')
                .to_owned();
            admin
                .query_all_raw(Statement::from_string(
                    admin.get_database_backend(),
                    format!(
                        "SELECT datname::text FROM pg_database \
                         WHERE starts_with(datname, '{}') AND strpos(datname, '_{tag}') > 0",
                        &base[..base.len().min(20)]
                    ),
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get_by_index::<String>(0).unwrap())
                .collect()
        }
        Backend::Sqlite => {
            let beside = db.sqlite_path().unwrap().parent().unwrap().to_path_buf();
            let mut found = Vec::new();
            for dir in std::iter::once(beside.as_path()).chain(scratch_dirs.iter().copied()) {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    if name.contains(tag) && name.ends_with(".tmp") {
                        found.push(name);
                    }
                }
            }
            found
        }
    }
}

/// Polls `operation` until its scratch state exists, then drops it mid-way.
async fn cancel_once_scratch_exists<F: Future>(
    operation: F,
    db: &TestDatabase,
    admin: Option<&DatabaseConnection>,
    tag: &str,
    scratch_dirs: &[&std::path::Path],
) {
    tokio::pin!(operation);
    loop {
        tokio::select! {
            _ = &mut operation => panic!("the operation ended before its scratch state ({tag}) was seen"),
            () = tokio::time::sleep(Duration::from_millis(2)) => {}
        }
        if !scratch_state(db, admin, tag, scratch_dirs).await.is_empty() {
            return;
        }
    }
}

async fn admin_of(db: &TestDatabase) -> Option<DatabaseConnection> {
    match db.backend() {
        Backend::Postgres => Some(
            db_connect::connect(&db_connect::testing::postgres_admin_url())
                .await
                .unwrap(),
        ),
        Backend::Sqlite => None,
    }
}

/// [`leftovers_status`] once it reports something, or after 10 s: the dropped operation's
/// claim is released when its last piece lets go, which can be a blocking task (a `pg_restore`
/// being waited for) that ends a moment after the future was dropped.
async fn leftovers_status_once_released(repo: &BackupRepository) -> (Status, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, message) = leftovers_status(repo).await;
        if status != Status::Ok || std::time::Instant::now() > deadline {
            return (status, message);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn leftovers_status(repo: &BackupRepository) -> (Status, String) {
    let policy = HealthPolicy {
        min_free_bytes: 0,
        ..HealthPolicy::default()
    };
    let report = assess(repo, &policy, chrono::Utc::now()).await;
    let check = report
        .checks
        .into_iter()
        .find(|c| c.name == "leftovers")
        .unwrap();
    (check.status, check.message)
}

/// A restore stopped while its copy is being built: the retry restores, and nothing of the
/// stopped one remains.
async fn a_stopped_restore_never_blocks_the_next(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let original = contents(db.connection()).await;
    crate::support::mutate(db.connection()).await;
    db.connection().close_by_ref().await.unwrap();
    let admin = admin_of(&db).await;
    let options = RestoreOptions::default();

    cancel_once_scratch_exists(
        repo.restore(&backup.id, &source(&db), &options, &|_| {}),
        &db,
        admin.as_ref(),
        "restor",
        &[],
    )
    .await;
    if db.backend() == Backend::Postgres {
        // A database cannot be dropped by a dropped future: it is a leftover until the next
        // run, and the monitor says so.
        let (status, message) = leftovers_status_once_released(repo).await;
        assert_eq!(status, Status::Warning, "{message}");
        assert!(message.contains("_restoring_"), "{message}");
        assert_eq!(repo.leftovers().len(), 1);
    }

    let report = repo
        .restore(&backup.id, &source(&db), &options, &|_| {})
        .await
        .unwrap();
    assert!(
        scratch_state(&db, admin.as_ref(), "restor", &[])
            .await
            .is_empty(),
        "the stopped restore's scratch state is gone"
    );
    assert!(repo.leftovers().is_empty(), "{:?}", repo.leftovers());
    assert_eq!(leftovers_status(repo).await.0, Status::Ok);
    let conn = reopen(&db).await;
    assert_eq!(contents(&conn).await, original);
    conn.close().await.unwrap();
    if let Some(replaced) = report.replaced_database {
        drop_pg_database(&replaced).await;
    }
    if let Some(admin) = admin {
        admin.close().await.unwrap();
    }
}

/// A verification stopped while it restores into its scratch copy: the next verification
/// removes what it left (on PostgreSQL, the scratch database) and passes.
async fn a_stopped_verification_is_cleaned_by_the_next(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let admin = admin_of(&db).await;
    let scratch = repo
        .location()
        .local_dir()
        .unwrap_or(r.scratch.path())
        .to_path_buf();
    cancel_once_scratch_exists(
        repo.verify(&backup.id, &verify_options(&db), &|_| {}),
        &db,
        admin.as_ref(),
        "verify",
        &[&scratch, r.scratch.path()],
    )
    .await;
    if db.backend() == Backend::Postgres {
        let (status, message) = leftovers_status_once_released(repo).await;
        assert_eq!(status, Status::Warning, "{message}");
        assert!(message.contains("_verify_"), "{message}");
    }
    let report = repo
        .verify(&backup.id, &verify_options(&db), &|_| {})
        .await
        .unwrap();
    assert!(report.ok, "{:?}", report.failure);
    assert!(
        scratch_state(&db, admin.as_ref(), "verify", &[&scratch, r.scratch.path()])
            .await
            .is_empty()
    );
    assert_eq!(leftovers_status(repo).await.0, Status::Ok);
    if let Some(admin) = admin {
        admin.close().await.unwrap();
    }
}

test_on_repositories!(
    a_stopped_restore_never_blocks_the_next,
    a_stopped_verification_is_cleaned_by_the_next,
);

/// `clean_leftovers` removes a stopped run's scratch database at once (what hotel-backup does
/// after SIGTERM), and only what is claimed: a database merely named like one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_leftovers_drops_only_claimed_databases() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let db = seeded(db).await;
    let r = TestRepo::local();
    let backup = r
        .repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    let admin = admin_of(&db).await.unwrap();
    let base = url::Url::parse(db.url())
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    cancel_once_scratch_exists(
        r.repo.verify(&backup.id, &verify_options(&db), &|_| {}),
        &db,
        Some(&admin),
        "verify",
        &[],
    )
    .await;
    let lookalike = format!("{}_verify_not_ours", &base[..base.len().min(20)]);
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{lookalike}\""))
        .await
        .unwrap();
    // Measured first and asserted after the lookalike is dropped: a failure leaves nothing.
    let before = scratch_state(&db, Some(&admin), "verify", &[]).await;
    let removed = r.repo.clean_leftovers(Some(&source(&db))).await;
    let after = scratch_state(&db, Some(&admin), "verify", &[]).await;
    drop_pg_database(&lookalike).await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(removed.unwrap().len(), 1);
    assert_eq!(after, std::slice::from_ref(&lookalike));
    admin.close().await.unwrap();
}
