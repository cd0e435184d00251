//! `hotel-backup` end to end: the real binary, spawned on real databases, every command with
//! --json, and the documented exit codes.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use chrono::NaiveDate;
use db_connect::{
    Backend, test_on_backends,
    testing::{MotoServer, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, TestDatabase},
};
use serde_json::Value;

#[path = "cli/interrupted.rs"]
mod interrupted;
#[path = "cli/usage.rs"]
mod usage;

/// Runs `hotel-backup` with the database and the repository (a path or an s3:// URL) in its
/// environment, as an operator would set them (moto takes any credentials).
fn hotel_backup(url: &str, repository: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotel-backup"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("BACKUP_DIR", repository)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs with --json, checks the exit code, parses stdout.
fn json(url: &str, repository: impl AsRef<std::ffi::OsStr>, args: &[&str], code: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hotel_backup(url, repository, &all);
    assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

async fn seeded(db: TestDatabase, scale: dataset::Scale) -> TestDatabase {
    let db = db.migrated::<migration::Migrator>().await;
    let options = dataset::DatasetOptions::new(scale)
        .seed(5)
        .reference_date(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
    dataset::generate(db.connection(), &options, &|_| {})
        .await
        .unwrap();
    db
}

fn other_database(db: &TestDatabase, suffix: &str) -> (String, Option<String>) {
    match db.backend() {
        Backend::Sqlite => {
            let path = db
                .sqlite_path()
                .unwrap()
                .with_file_name(format!("{suffix}.sqlite"));
            (format!("sqlite://{}", path.display()), None)
        }
        Backend::Postgres => {
            let mut url = url::Url::parse(db.url()).unwrap();
            let name = format!("{}_{suffix}", url.path().trim_start_matches('/'));
            url.set_path(&name);
            (url.to_string(), Some(name))
        }
    }
}

async fn drop_database(name: &str) {
    use sea_orm::ConnectionTrait;
    let admin = db_connect::connect(&db_connect::testing::postgres_admin_url())
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.unwrap();
}

/// Where a test's repository is: a directory, or a bucket of a moto_server of its own.
struct Repository {
    location: String,
    scratch: tempfile::TempDir,
    _moto: Option<MotoServer>,
}

impl Repository {
    fn local() -> Self {
        let scratch = tempfile::tempdir().unwrap();
        Self {
            location: scratch.path().join("repo").display().to_string(),
            scratch,
            _moto: None,
        }
    }

    fn s3() -> Option<Self> {
        let moto = MotoServer::start()?;
        let location = moto.bucket("cli").url("hotel");
        Some(Self {
            location,
            scratch: tempfile::tempdir().unwrap(),
            _moto: Some(moto),
        })
    }
}

async fn every_command_speaks_json(db: TestDatabase, repository: Repository) {
    let db = seeded(db, dataset::Scale::Tiny).await;
    let dir = &repository.scratch;
    let (url, d) = (db.url().to_owned(), repository.location.as_str());
    // Scratch copies (and, for an object store, the lock file) go into the test's directory.
    let scratch = dir.path().display().to_string();
    let json = |url: &str, d: &str, args: &[&str], code: i32| {
        let mut all = vec!["--scratch-dir", scratch.as_str()];
        all.extend_from_slice(args);
        json(url, d, &all, code)
    };

    let created = json(&url, d, &["create"], 0);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["reason"], "manual");
    assert!(created["tables"]["bookings"].as_u64().unwrap() > 100);
    assert!(!created["source"].as_str().unwrap().contains("password"));

    let listed = json(&url, d, &["list"], 0);
    assert_eq!(listed["backups"][0]["id"], id.as_str());
    assert_eq!(listed["backups"][0]["status"], "unverified");
    assert!(listed["backups"][0]["age_seconds"].as_i64().unwrap() >= 0);

    let verified = json(&url, d, &["verify"], 0);
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["reports"][0]["id"], id.as_str());

    let gate = json(&url, d, &["pre-migration"], 0);
    assert_eq!(gate["manifest"]["reason"], "pre-migration");
    assert_eq!(gate["verification"]["ok"], true);
    let gate_id = gate["manifest"]["id"].as_str().unwrap().to_owned();

    let all = json(&url, d, &["verify", "--all", "--quick"], 0);
    assert_eq!(all["reports"].as_array().unwrap().len(), 2);

    let plan = json(&url, d, &["restore", &id, "--dry-run"], 0);
    assert_eq!(plan["executed"], false);
    assert!(plan["plan"]["steps"].as_array().unwrap().len() >= 3);

    let (copy_url, copy_db) = other_database(&db, "copy");
    let restored = json(&url, d, &["restore", &id, "--to", &copy_url], 0);
    assert_eq!(restored["executed"], true);
    assert_eq!(restored["tables"], created["tables"]);
    if let Some(name) = copy_db {
        drop_database(&name).await;
    }

    let keep_one = [
        "--keep-last",
        "1",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ];
    let mut args = vec!["prune", "--dry-run"];
    args.extend(keep_one);
    let dry = json(&url, d, &args, 0);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["deleted"], serde_json::json!([id]));
    let mut args = vec!["prune"];
    args.extend(keep_one);
    let pruned = json(&url, d, &args, 0);
    assert_eq!(pruned["deleted"], serde_json::json!([id]));
    let listed = json(&url, d, &["list"], 0);
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1);
    assert_eq!(listed["backups"][0]["id"], gate_id.as_str());

    let prom = dir.path().join("backup.prom");
    let health = json(
        &url,
        d,
        &[
            "monitor",
            "--min-backups",
            "1",
            "--min-free-bytes",
            "0",
            "--prometheus",
            prom.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(health["status"], "OK");
    assert!(
        std::fs::read_to_string(&prom)
            .unwrap()
            .contains("backup_health_status 0")
    );

    // Human output, by default.
    let out = hotel_backup(&url, d, &["--scratch-dir", &scratch, "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ID "), "{text}");
    assert!(
        text.contains("pre-migration") && text.contains("verified"),
        "{text}"
    );
}

mod every_command_speaks_json {
    use super::{Repository, TestDatabase};

    #[tokio::test]
    async fn sqlite_local() {
        super::every_command_speaks_json(TestDatabase::sqlite().await, Repository::local()).await;
    }
    #[tokio::test]
    async fn postgres_local() {
        if let Some(db) = TestDatabase::postgres().await {
            super::every_command_speaks_json(db, Repository::local()).await;
        }
    }
    #[tokio::test]
    async fn sqlite_s3() {
        if let Some(repository) = Repository::s3() {
            super::every_command_speaks_json(TestDatabase::sqlite().await, repository).await;
        }
    }
    #[tokio::test]
    async fn postgres_s3() {
        let Some(repository) = Repository::s3() else {
            return;
        };
        if let Some(db) = TestDatabase::postgres().await {
            super::every_command_speaks_json(db, repository).await;
        }
    }
}

#[tokio::test]
async fn each_failure_has_its_exit_code() {
    let db = seeded(TestDatabase::sqlite().await, dataset::Scale::Tiny).await;
    let dir = tempfile::tempdir().unwrap();
    let (url, d) = (db.url().to_owned(), dir.path());

    // Monitoring an absent directory: UNKNOWN, and the directory is not created.
    let missing = dir.path().join("absent");
    let health = json(&url, &missing, &["monitor"], 3);
    assert_eq!(health["status"], "UNKNOWN");
    assert!(!missing.exists());
    // No backup: CRITICAL.
    assert_eq!(json(&url, d, &["monitor"], 2)["status"], "CRITICAL");

    let created = json(&url, d, &["create"], 0);
    let id = created["id"].as_str().unwrap().to_owned();
    json(&url, d, &["verify", &id], 0);
    // Healthy but for the age: WARNING.
    let health = json(
        &url,
        d,
        &[
            "monitor",
            "--warn-age",
            "1ns",
            "--min-backups",
            "1",
            "--min-free-bytes",
            "0",
        ],
        1,
    );
    assert_eq!(health["status"], "WARNING");

    // The restore target (the test's own open pool) is in use: 5.
    let err = json(&url, d, &["restore", &id], 5);
    assert_eq!(err["ok"], false);
    assert!(err["error"].as_str().unwrap().contains("in use"), "{err}");

    // Another operation holds the lock: 4.
    let lock = std::fs::File::options()
        .write(true)
        .open(dir.path().join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let err = json(&url, d, &["create"], 4);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("another backup operation"),
        "{err}"
    );
    drop(lock);

    // A damaged backup: verify says so (3), restore refuses it (3).
    let data = dir.path().join(created["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let report = json(&url, d, &["verify", &id], 3);
    assert_eq!(report["ok"], false);
    assert_eq!(report["reports"][0]["failure"]["kind"], "checksum-mismatch");
    let (other, _) = other_database(&db, "other");
    let err = json(&url, d, &["restore", &id, "--to", &other], 3);
    assert!(
        err["error"].as_str().unwrap().contains("checksum mismatch"),
        "{err}"
    );

    // Not a backup: bad usage, 2.
    let err = json(&url, d, &["verify", "20991231T000000Z"], 2);
    assert!(
        err["error"].as_str().unwrap().contains("no backup"),
        "{err}"
    );
    // Bad usage: 2.
    assert_eq!(
        hotel_backup(&url, d, &["verify", "latest"]).status.code(),
        Some(2)
    );
}

/// The scheduler runs at once, then waits; SIGTERM stops it cleanly.
async fn schedule_runs_until_sigterm(db: TestDatabase) {
    let db = seeded(db, dataset::Scale::Tiny).await;
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hotel-backup"))
        .args(["schedule", "--every", "1h"])
        .env("DATABASE_URL", db.url())
        .env("BACKUP_DIR", dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let repo = backup::BackupRepository::open(dir.path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listing = repo.list().await.unwrap();
        let pruned = repo
            .last_runs()
            .await
            .unwrap()
            .runs
            .contains_key(&backup::Operation::Prune);
        if listing.backups.first().is_some_and(|m| m.is_verified()) && pruned {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first scheduled run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("scheduled run succeeded"), "{log}");
    assert!(log.contains("scheduler stopped"), "{log}");
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups.len(), 1, "one run in an hour");
    assert_eq!(listing.backups[0].reason, backup::Reason::Scheduled);
}

test_on_backends!(multi_thread; schedule_runs_until_sigterm);

/// `create` killed with SIGKILL at arbitrary moments: whatever it leaves, everything listed
/// is a whole backup that verifies, and the next run proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_killed_at_any_moment_leaves_only_whole_backups() {
    let db = seeded(TestDatabase::sqlite().await, dataset::Scale::Small).await;
    let dir = tempfile::tempdir().unwrap();
    // How long a whole create takes here, to kill at every stage of one.
    let timing = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = hotel_backup(db.url(), timing.path(), &["create"]);
    assert!(out.status.success(), "{}", describe(&out));
    let whole = started.elapsed().as_millis() as u64;
    for percent in [2u64, 10, 30, 50, 70, 85, 95, 150] {
        let delay_ms = whole * percent / 100;
        let child = Command::new(env!("CARGO_BIN_EXE_hotel-backup"))
            .args(["create"])
            .env("DATABASE_URL", db.url())
            .env("BACKUP_DIR", dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let mut child = child;
        child.wait().unwrap();
    }
    let repo = backup::BackupRepository::open(dir.path()).unwrap();
    let killed_with_leftovers = repo.list().await.unwrap().ignored.len();
    // One run left alone: the leftovers of the killed ones do not get in its way.
    let out = hotel_backup(db.url(), dir.path(), &["create"]);
    assert!(out.status.success(), "{}", describe(&out));
    let listing = repo.list().await.unwrap();
    for manifest in &listing.backups {
        let report = repo
            .verify(&manifest.id, &backup::VerifyOptions::default(), &|_| {})
            .await
            .unwrap();
        assert!(
            report.ok,
            "{} was listed but fails: {:?}",
            manifest.id, report.failure
        );
    }
    assert!(listing.ignored.iter().all(|i| !i.key.ends_with(".tmp")));
    eprintln!(
        "{} whole backups and {killed_with_leftovers} leftovers after the kills (a create takes {whole} ms)",
        listing.backups.len()
    );
}

/// The test's repository as the library opens it (moto takes any credentials).
fn open_repository(repository: &Repository) -> backup::BackupRepository {
    backup::BackupRepository::builder(
        backup::RepositoryLocation::parse(&repository.location).unwrap(),
    )
    .s3_settings(backup::S3Settings {
        access_key_id: Some(TEST_ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(TEST_SECRET_ACCESS_KEY.to_owned()),
        ..backup::S3Settings::default()
    })
    .scratch_dir(repository.scratch.path())
    .open()
    .unwrap()
}

fn replicate(url: &str, repository: &Repository, checkpoint_bytes: u64) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hotel-backup"))
        .args([
            "--scratch-dir",
            &repository.scratch.path().display().to_string(),
            "replicate",
            "--interval",
            "200ms",
            "--poll",
            "10ms",
            "--heartbeat",
            "500ms",
            "--checkpoint-bytes",
            &checkpoint_bytes.to_string(),
            "--retry-max",
            "200ms",
        ])
        .env("DATABASE_URL", url)
        .env("BACKUP_DIR", &repository.location)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `replicate` killed with SIGKILL at arbitrary moments while the application writes (in the
/// middle of uploads, and with `checkpoints`, of checkpoints): the latest state restores to
/// exactly the live database, so nothing was skipped and nothing shipped twice (a repeated or
/// missing transaction breaks the segments' chain, which the restore checks).
///
/// Without checkpoints in between (the application leaves them to the replicator), every
/// restart resumes the same generation. A kill in the moment after one of the replicator's
/// own checkpoints, before the next segment, may find the log restarted: that restart cannot
/// be told from one by another process, so a new generation starts, with its reason recorded.
async fn a_killed_replicator_resumes_without_gap_or_duplicate(
    repository: Repository,
    checkpoints: bool,
) {
    let checkpoint_bytes = if checkpoints { 64 << 10 } else { 1 << 40 };
    use sea_orm::ConnectionTrait;
    let db = seeded(TestDatabase::sqlite().await, dataset::Scale::Tiny).await;
    // The application leaves checkpoints to the replicator, as the docs ask.
    let writer = db.single_connection().await;
    writer
        .execute_unprepared("PRAGMA wal_autocheckpoint = 0")
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                writer
                    .execute_unprepared(
                        "INSERT INTO notifications (user_id, kind, status, scheduled_at) \
                         SELECT user_id, kind, status, scheduled_at FROM notifications \
                         WHERE id = (SELECT min(id) FROM notifications)",
                    )
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            writer.close().await.unwrap();
            n
        })
    };
    for (run, delay_ms) in [700u64, 350, 1_300, 520, 900].into_iter().enumerate() {
        let mut child = replicate(db.url(), &repository, checkpoint_bytes);
        if run == 0 {
            // Resuming needs a line to resume: on a busy machine the first snapshot can take
            // longer than any fixed delay, and a kill before it leaves nothing to continue.
            let repo = open_repository(&repository);
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while repo.restorable_windows().await.unwrap().is_empty() {
                assert!(std::time::Instant::now() < deadline, "no first snapshot");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        signal(&child, "KILL");
        child.wait().unwrap();
    }
    let child = replicate(db.url(), &repository, checkpoint_bytes);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writing.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    signal(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(written > 500, "{written}");

    let repo = open_repository(&repository);
    let windows = repo.restorable_windows().await.unwrap();
    if checkpoints {
        for later in &windows[1..] {
            assert!(
                // The log restarted under it, or a replicator was killed between recording
                // its line and uploading that line's first snapshot.
                later.why.contains("no longer continues") || later.why.contains("has no snapshot"),
                "a new generation says why: {later:?}"
            );
        }
    } else {
        assert_eq!(
            windows.len(),
            1,
            "every restart resumed the same generation: {windows:?}"
        );
    }
    let (copy_url, _) = other_database(&db, "latest");
    let restored = json(
        db.url(),
        &repository.location,
        &[
            "--scratch-dir",
            &repository.scratch.path().display().to_string(),
            "restore",
            "--latest",
            "--to",
            &copy_url,
        ],
        0,
    );
    assert_eq!(restored["executed"], true);
    let live = db_connect::connect(db.url()).await.unwrap();
    let copy = db_connect::connect(&copy_url).await.unwrap();
    for table in ["notifications", "bookings", "users"] {
        let count = |conn: sea_orm::DatabaseConnection| async move {
            let row = conn
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Sqlite,
                    format!("SELECT count(*), coalesce(sum(id), 0) FROM {table}"),
                ))
                .await
                .unwrap()
                .unwrap();
            (
                row.try_get_by_index::<i64>(0).unwrap(),
                row.try_get_by_index::<i64>(1).unwrap(),
            )
        };
        assert_eq!(
            count(copy.clone()).await,
            count(live.clone()).await,
            "{table}: every row, once"
        );
    }
}

mod a_killed_replicator_resumes_without_gap_or_duplicate {
    use super::Repository;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local() {
        super::a_killed_replicator_resumes_without_gap_or_duplicate(Repository::local(), false)
            .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3() {
        if let Some(repository) = Repository::s3() {
            super::a_killed_replicator_resumes_without_gap_or_duplicate(repository, false).await;
        }
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_with_checkpoints() {
        if let Some(repository) = Repository::s3() {
            super::a_killed_replicator_resumes_without_gap_or_duplicate(repository, true).await;
        }
    }
}
