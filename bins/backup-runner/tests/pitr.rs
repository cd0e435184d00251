//! PostgreSQL point-in-time recovery end to end: a cluster of the test's own archives its WAL
//! with the built `hotel-backup wal-push`, base backups are taken with `hotel-backup
//! base-backup`, and `hotel-backup restore --pgdata` rebuilds the cluster as of remembered
//! instants, which must match table by table (row counts and an MD5 of every row).
//!
//! Every `hotel-backup` run is done as the server's operating-system user (PostgreSQL refuses
//! to run as root, and the server's archive_command runs as that user), in a repository the
//! server's user owns.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use chrono::NaiveDate;
use db_connect::testing::{
    MotoServer, PostgresCluster, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, free_port,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_hotel-backup");

/// Where the test's repository is, and what a `hotel-backup` run needs to reach it.
struct Repo {
    /// `-d`: a directory or an s3:// URL.
    location: String,
    /// A local repository's directory.
    dir: Option<PathBuf>,
    /// The scratch directory (the lock and claims of an object-store repository).
    scratch: PathBuf,
    _moto: Option<MotoServer>,
}

/// Runs `hotel-backup -d <repo> <args>` as the server's user.
fn hotel_backup(cluster: &PostgresCluster, repo: &Repo, args: &[&str]) -> Output {
    hotel_backup_command(cluster, repo, args).output().unwrap()
}

/// The command [`hotel_backup`] runs, to spawn (and kill) instead.
fn hotel_backup_command(cluster: &PostgresCluster, repo: &Repo, args: &[&str]) -> Command {
    let mut command = Command::new(EXE);
    command
        .arg("-d")
        .arg(&repo.location)
        .arg("--scratch-dir")
        .arg(&repo.scratch)
        .args(args)
        .env("DATABASE_URL", cluster.url("postgres"))
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env_remove("RUST_LOG")
        .env_remove("BACKUP_DIR");
    if let Some((uid, gid)) = cluster.server_user_ids() {
        command.uid(uid).gid(gid);
    }
    command
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_ok(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", describe(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(out)))
}

async fn connect(url: &str) -> DatabaseConnection {
    db_connect::connect(url).await.unwrap()
}

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

async fn one(db: &DatabaseConnection, sql: &str) -> String {
    strings(db, sql).await.remove(0)
}

/// Every user table of the database: its row count and an MD5 of its rows.
async fn content(url: &str) -> BTreeMap<String, String> {
    let db = connect(url).await;
    let tables = strings(
        &db,
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) \
         FROM information_schema.tables WHERE table_type = 'BASE TABLE' \
         AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .await;
    let mut out = BTreeMap::new();
    for table in tables {
        let digest = one(
            &db,
            &format!(
                "SELECT count(*)::text || ' rows ' || \
                 coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM {table} t"
            ),
        )
        .await;
        out.insert(table, digest);
    }
    let _ = db.close().await;
    out
}

/// Starts a cluster that archives into a new repository (local, or in a moto bucket).
async fn archiving_cluster(s3: bool) -> Option<(PostgresCluster, Repo)> {
    let moto = if s3 { Some(MotoServer::start()?) } else { None };
    let cluster = PostgresCluster::start_with(&[("archive_mode", "on")])?;
    let scratch = cluster.owned_dir("scratch");
    let repo = match moto {
        Some(moto) => Repo {
            location: moto.bucket("pitr").url("cluster"),
            dir: None,
            scratch,
            _moto: Some(moto),
        },
        None => {
            let dir = cluster.owned_dir("repo");
            Repo {
                location: dir.display().to_string(),
                dir: Some(dir),
                scratch,
                _moto: None,
            }
        }
    };
    let archive_command = format!(
        "AWS_ACCESS_KEY_ID={TEST_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY={TEST_SECRET_ACCESS_KEY} \
         '{EXE}' -d '{}' wal-push %p",
        repo.location
    );
    cluster
        .execute(
            "postgres",
            &format!(
                "ALTER SYSTEM SET archive_command = '{}'",
                archive_command.replace('\'', "''")
            ),
        )
        .await;
    cluster.execute("postgres", "SELECT pg_reload_conf()").await;
    Some((cluster, repo))
}

/// The hotel schema with a tiny dataset, and a table the stream of bookings goes into.
async fn hotel_database(cluster: &PostgresCluster) -> String {
    let url = cluster.create_database("hotel").await;
    let db = connect(&url).await;
    <migration::Migrator as migration::MigratorTrait>::up(&db, None)
        .await
        .unwrap();
    let options = dataset::DatasetOptions::new(dataset::Scale::Tiny)
        .seed(13)
        .reference_date(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
    dataset::generate(&db, &options, &|_| {}).await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE stream_bookings (id bigserial PRIMARY KEY, guest text NOT NULL, \
         nights int NOT NULL, note text)",
    )
    .await
    .unwrap();
    let _ = db.close().await;
    url
}

/// One step of the stream: a few bookings and an update, committed together.
async fn step(db: &DatabaseConnection, n: u32) {
    db.execute_unprepared(&format!(
        "BEGIN; \
         INSERT INTO stream_bookings (guest, nights) \
           SELECT 'guest-{n}-' || i, 1 + (i % 5) FROM generate_series(1, 20) i; \
         UPDATE stream_bookings SET note = 'step {n}' WHERE id % 7 = {} ; \
         COMMIT;",
        n % 7
    ))
    .await
    .unwrap();
}

/// Switches to a new WAL segment and waits until the finished one is archived.
async fn archive_now(db: &DatabaseConnection) {
    let segment = one(db, "SELECT pg_walfile_name(pg_switch_wal())").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let archived = one(
            db,
            "SELECT coalesce(last_archived_wal, '') || '|' || failed_count::text || '|' || \
             coalesce(last_failed_wal, '') FROM pg_stat_archiver",
        )
        .await;
        if archived.split('|').next().unwrap() >= segment.as_str() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{segment} not archived within a minute: {archived}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Restores with `args` into a new cluster of the test's own, started, once recovery ended.
async fn restored(
    source: &PostgresCluster,
    repo: &Repo,
    args: &[&str],
) -> (PostgresCluster, Value) {
    let (cluster, report) = restored_started(source, repo, args);
    wait_promoted(&cluster).await;
    (cluster, report)
}

/// Waits for the end of a restored server's recovery: it accepts connections once consistent
/// (a hot standby), before the end of replay.
async fn wait_promoted(cluster: &PostgresCluster) {
    let db = connect(&cluster.url("postgres")).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while one(&db, "SELECT pg_is_in_recovery()::text").await == "true" {
        assert!(
            Instant::now() < deadline,
            "recovery did not end: {}",
            cluster.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = db.close().await;
}

fn restored_started(
    source: &PostgresCluster,
    repo: &Repo,
    args: &[&str],
) -> (PostgresCluster, Value) {
    let mut report = Value::Null;
    // The server's environment has no S3 credentials (an operator would give the server
    // them): the same restore_command, with them.
    let with_credentials = format!(
        "AWS_ACCESS_KEY_ID={TEST_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY={TEST_SECRET_ACCESS_KEY} \
         '{EXE}' -d '{}' wal-fetch %f %p",
        repo.location
    );
    let settings: &[(&str, &str)] = if repo.dir.is_none() {
        &[("restore_command", &with_credentials)]
    } else {
        &[]
    };
    let cluster = PostgresCluster::start_from(settings, |data| {
        let data = data.display().to_string();
        let mut all = vec!["--json", "restore", "--pgdata", &data];
        all.extend_from_slice(args);
        report = json_ok(&hotel_backup(source, repo, &all));
    })
    .unwrap();
    (cluster, report)
}

async fn instants_are_restored_table_by_table(s3: bool) {
    let Some((mut cluster, repo)) = archiving_cluster(s3).await else {
        return;
    };
    let url = hotel_database(&cluster).await;
    let first = json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
    assert!(
        first["databases"]["hotel"]["tables"]["bookings"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(first["databases"]["hotel"]["tables"]["stream_bookings"], 0);

    // The stream, with the content and the instant remembered after some steps.
    let db = connect(&url).await;
    let mut times = Vec::new();
    let mut lsns = Vec::new();
    let mut second = Value::Null;
    for n in 1..=6 {
        step(&db, n).await;
        if n % 2 == 0 {
            let at = one(&db, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')").await;
            let lsn = one(&db, "SELECT pg_current_wal_insert_lsn()::text").await;
            let state = content(&url).await;
            times.push((at, state.clone()));
            lsns.push((lsn, state));
        }
        if n == 3 {
            second = json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Something committed after the last instant, so recovery sees it passed.
    step(&db, 7).await;
    archive_now(&db).await;
    let latest = content(&url).await;

    for (i, (at, expected)) in times.iter().enumerate() {
        let (copy, report) = restored(&cluster, &repo, &["--to-time", at]).await;
        // The newest base backup that ended before the instant.
        let base = if i == 0 { &first } else { &second };
        assert_eq!(report["restore"]["base_backup"]["id"], base["id"], "{at}");
        assert_eq!(
            &content(&copy.url("hotel")).await,
            expected,
            "restored to {at}"
        );
    }
    let (at, expected) = &lsns[1];
    let (copy, _) = restored(&cluster, &repo, &["--to-lsn", at]).await;
    assert_eq!(
        &content(&copy.url("hotel")).await,
        expected,
        "restored to {at}"
    );
    drop(copy);
    let (copy, _) = restored(&cluster, &repo, &["--latest"]).await;
    assert_eq!(content(&copy.url("hotel")).await, latest, "{}", copy.log());
    drop(copy);

    // A crash: every acknowledged booking whose WAL was archived is in --latest.
    let acknowledged: i64 = {
        step(&db, 8).await;
        archive_now(&db).await;
        one(&db, "SELECT count(*)::text FROM stream_bookings")
            .await
            .parse()
            .unwrap()
    };
    step(&db, 9).await; // acknowledged, but its WAL is not archived: may be lost
    let _ = db.close().await;
    cluster.kill();
    let pgdata = cluster.owned_dir("after-crash");
    let port = free_port().to_string();
    let out = hotel_backup(
        &cluster,
        &repo,
        &[
            "--json",
            "restore",
            "--pgdata",
            pgdata.to_str().unwrap(),
            "--latest",
            "--start-on-port",
            &port,
            "--pg-bin-dir",
            cluster.bin_dir().to_str().unwrap(),
        ],
    );
    let report = json_ok(&out);
    let stop = || {
        let mut command = Command::new(cluster.bin_dir().join("pg_ctl"));
        command.args(["stop", "-m", "immediate", "-D"]).arg(&pgdata);
        if let Some((uid, gid)) = cluster.server_user_ids() {
            command.uid(uid).gid(gid);
        }
        command.output().unwrap()
    };
    let recovered = report["server"]["databases"]["hotel"]["tables"]["stream_bookings"]
        .as_i64()
        .unwrap();
    let stopped = stop();
    assert!(stopped.status.success(), "{}", describe(&stopped));
    assert!(
        recovered >= acknowledged,
        "{recovered} bookings recovered, {acknowledged} were acknowledged and archived"
    );
}

#[tokio::test]
async fn restores_to_instants_match_table_by_table_on_a_local_repository() {
    instants_are_restored_table_by_table(false).await;
}

#[tokio::test]
async fn restores_to_instants_match_table_by_table_on_s3() {
    instants_are_restored_table_by_table(true).await;
}

fn segment_path(repo: &Repo, name: &str) -> PathBuf {
    repo.dir
        .as_ref()
        .unwrap()
        .join("wal")
        .join(format!("{name}.zst"))
}

/// A damaged segment is an error of wal-fetch (exit 126, so PostgreSQL stops recovery) and
/// of the restore; a missing one is refused before anything is written; never skipped.
#[tokio::test]
async fn damaged_or_missing_segments_are_reported_never_skipped() {
    let Some((cluster, repo)) = archiving_cluster(false).await else {
        return;
    };
    let url = hotel_database(&cluster).await;
    json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
    let db = connect(&url).await;
    let mut segments = Vec::new();
    for n in 1..=3 {
        step(&db, n).await;
        segments.push(one(&db, "SELECT pg_walfile_name(pg_current_wal_lsn())").await);
        archive_now(&db).await;
    }
    step(&db, 4).await;
    archive_now(&db).await;
    let _ = db.close().await;
    let middle = &segments[1];
    let scratch = cluster.owned_dir("fetch");
    let dest = scratch.join("RECOVERYXLOG");
    let dest = dest.to_str().unwrap();

    // Fetched whole while intact.
    let out = hotel_backup(&cluster, &repo, &["wal-fetch", middle, dest]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(std::fs::metadata(dest).unwrap().len(), 16 << 20);
    std::fs::remove_file(dest).unwrap();
    // Not archived: exit 1, nothing said (the end of the archive, for recovery).
    let out = hotel_backup(
        &cluster,
        &repo,
        &["wal-fetch", "0000000100000000000000FE", dest],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(out.stderr.is_empty(), "{}", describe(&out));

    // Damaged: exit 126 and a message; nothing written.
    let object = segment_path(&repo, middle);
    let original = std::fs::read(&object).unwrap();
    let mut damaged = original.clone();
    let at = damaged.len() - 64;
    damaged[at] ^= 0x01;
    std::fs::write(&object, &damaged).unwrap();
    let out = hotel_backup(&cluster, &repo, &["wal-fetch", middle, dest]);
    assert_eq!(out.status.code(), Some(126), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "{}",
        describe(&out)
    );
    assert!(!Path::new(dest).exists());
    // The restore's recovery stops at it with an error, instead of ending early.
    let pgdata = cluster.owned_dir("damaged");
    let port = free_port().to_string();
    let out = hotel_backup(
        &cluster,
        &repo,
        &[
            "restore",
            "--pgdata",
            pgdata.to_str().unwrap(),
            "--latest",
            "--start-on-port",
            &port,
            "--pg-bin-dir",
            cluster.bin_dir().to_str().unwrap(),
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(middle.as_str()) && stderr.contains("damaged"),
        "{}",
        describe(&out)
    );

    // Missing: the restore refuses before writing anything.
    std::fs::remove_file(&object).unwrap();
    let pgdata = cluster.owned_dir("missing");
    let out = hotel_backup(
        &cluster,
        &repo,
        &["restore", "--pgdata", pgdata.to_str().unwrap(), "--latest"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(middle.as_str()) && stderr.contains("missing"),
        "{}",
        describe(&out)
    );
    assert_eq!(std::fs::read_dir(&pgdata).unwrap().count(), 0);

    // Put back, the same file archives again as a no-op; another file under its name fails.
    std::fs::write(&object, &original).unwrap();
    let out = hotel_backup(&cluster, &repo, &["wal-fetch", &segments[0], dest]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let renamed = scratch.join(middle);
    std::fs::rename(dest, &renamed).unwrap();
    let out = hotel_backup(&cluster, &repo, &["wal-push", renamed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        describe(&out)
    );
    let first = scratch.join(&segments[0]);
    let out = hotel_backup(
        &cluster,
        &repo,
        &["wal-fetch", &segments[0], first.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = hotel_backup(&cluster, &repo, &["wal-push", first.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

/// A restore refuses a running cluster's data directory and any non-empty one.
#[tokio::test]
async fn a_running_or_non_empty_data_directory_is_refused() {
    let Some((cluster, repo)) = archiving_cluster(false).await else {
        return;
    };
    json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
    let data = cluster.data_dir();
    let out = hotel_backup(
        &cluster,
        &repo,
        &["restore", "--pgdata", data.to_str().unwrap(), "--latest"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        describe(&out)
    );
    let other = cluster.owned_dir("busy");
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let out = hotel_backup(
        &cluster,
        &repo,
        &["restore", "--pgdata", other.to_str().unwrap(), "--latest"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        std::fs::read_to_string(other.join("keep.txt")).unwrap(),
        "mine"
    );
}

/// The entries of `dir` whose names start with `prefix`.
fn entries_starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

/// The scratch data directories of verifications under `scratch`.
fn verify_dirs(scratch: &Path) -> Vec<PathBuf> {
    entries_starting_with(scratch, ".hotel-verify-")
}

/// verify-base recovers a base backup for real and compares its counts; killed while its
/// server runs, the next run stops that server and removes everything; a damaged backup fails.
#[tokio::test]
async fn verify_base_recovers_for_real_and_cleans_up_after_a_kill() {
    let Some((cluster, repo)) = archiving_cluster(false).await else {
        return;
    };
    let url = hotel_database(&cluster).await;
    let db = connect(&url).await;
    step(&db, 1).await;
    let backup = json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
    // Writes after the backup are not in its counts, and must not be replayed into them.
    step(&db, 2).await;
    archive_now(&db).await;
    let _ = db.close().await;
    let bin = cluster.bin_dir().to_str().unwrap().to_owned();

    let report = json_ok(&hotel_backup(
        &cluster,
        &repo,
        &["--json", "verify-base", "--pg-bin-dir", &bin],
    ));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["id"], backup["id"]);
    assert!(verify_dirs(&repo.scratch).is_empty());

    // Killed while its server runs.
    let mut child = hotel_backup_command(&cluster, &repo, &["verify-base", "--pg-bin-dir", &bin])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid_file = loop {
        if let Some(pid) = verify_dirs(&repo.scratch)
            .into_iter()
            .map(|d| d.join("data/postmaster.pid"))
            .find(|p| p.exists())
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "verify-base never started a server"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let postmaster: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{postmaster}")).exists());

    let report = json_ok(&hotel_backup(
        &cluster,
        &repo,
        &["--json", "verify-base", "--pg-bin-dir", &bin],
    ));
    assert_eq!(report["ok"], true, "{report}");
    assert!(verify_dirs(&repo.scratch).is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{postmaster}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
    {
        assert!(
            Instant::now() < deadline,
            "the killed run's server still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A damaged base backup fails verification (exit 3), and leaves nothing either.
    let id = backup["id"].as_str().unwrap();
    let data = repo
        .dir
        .as_ref()
        .unwrap()
        .join(format!("base/{id}/base.tar.zst"));
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let out = hotel_backup(
        &cluster,
        &repo,
        &["--json", "verify-base", "--pg-bin-dir", &bin],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["problems"][0].as_str().unwrap().contains("checksum"),
        "{report}"
    );
    assert!(verify_dirs(&repo.scratch).is_empty());
}

/// The check of `monitor` named `name`.
fn health_check<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check: {health}"))
}

/// monitor on a PostgreSQL PITR repository: CRITICAL without a base backup, OK while archiving
/// works (the missing pg_dump backups are no problem there), CRITICAL once archive_command
/// fails, read from the server's pg_stat_archiver.
#[tokio::test]
async fn monitor_reports_a_failing_archive_command() {
    let Some((cluster, repo)) = archiving_cluster(false).await else {
        return;
    };
    // Nothing archived yet: not a PITR repository yet, and no backup at all.
    let out = hotel_backup(&cluster, &repo, &["--json", "monitor"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let health: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health_check(&health, "age")["status"], "CRITICAL");
    assert!(health["metrics"]["pitr"].is_null(), "{health}");

    let db = connect(&cluster.url("postgres")).await;
    db.execute_unprepared("CREATE TABLE early AS SELECT 1 AS x")
        .await
        .unwrap();
    archive_now(&db).await;
    let out = hotel_backup(&cluster, &repo, &["--json", "monitor"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "WAL but no base backup yet: {}",
        describe(&out)
    );
    let health: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health_check(&health, "base-backup")["status"], "CRITICAL");
    assert_eq!(health_check(&health, "wal-archive")["status"], "OK");

    json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
    let out = hotel_backup(&cluster, &repo, &["--json", "monitor"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let health: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["status"], "OK", "{health}");
    assert_eq!(health["metrics"]["pitr"]["base_backups"], 1);
    assert_eq!(health["metrics"]["pitr"]["failed_archive_runs"], 0);
    assert_eq!(health_check(&health, "logical")["status"], "OK");
    assert_eq!(health_check(&health, "archiver")["status"], "OK");
    assert_eq!(health_check(&health, "restorable-window")["status"], "OK");
    // Without the server, the repository alone: no archiver check.
    let alone = json_ok(&hotel_backup(
        &cluster,
        &repo,
        &["--json", "monitor", "--no-server"],
    ));
    assert!(
        alone["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "archiver"),
        "{alone}"
    );

    cluster
        .execute("postgres", "ALTER SYSTEM SET archive_command = 'false'")
        .await;
    cluster.execute("postgres", "SELECT pg_reload_conf()").await;
    db.execute_unprepared("CREATE TABLE t AS SELECT 1 AS x")
        .await
        .unwrap();
    one(&db, "SELECT pg_switch_wal()::text").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while one(&db, "SELECT failed_count::text FROM pg_stat_archiver").await == "0" {
        assert!(Instant::now() < deadline, "archive_command never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = db.close().await;
    let prometheus = repo.scratch.join("health.prom");
    let out = hotel_backup(
        &cluster,
        &repo,
        &[
            "--json",
            "monitor",
            "--prometheus",
            prometheus.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let health: Value = serde_json::from_slice(&out.stdout).unwrap();
    let archiver = health_check(&health, "archiver");
    assert_eq!(archiver["status"], "CRITICAL", "{health}");
    assert!(
        archiver["message"]
            .as_str()
            .unwrap()
            .contains("archive_command is failing"),
        "{health}"
    );
    assert!(
        health["metrics"]["pitr"]["failed_archive_runs"]
            .as_i64()
            .unwrap()
            >= 1
    );
    let text = std::fs::read_to_string(&prometheus).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("backup_pitr_failed_archive_runs ") && !l.ends_with(" 0")),
        "{text}"
    );
}

/// prune keeps the newest base backups and the WAL they need: after it, a restore of the
/// latest state still matches, and the older base backup and its WAL are gone.
#[tokio::test]
async fn prune_keeps_what_the_kept_base_backups_need() {
    let Some((cluster, repo)) = archiving_cluster(false).await else {
        return;
    };
    let url = hotel_database(&cluster).await;
    let db = connect(&url).await;
    let old = json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
    for n in 1..=3 {
        step(&db, n).await;
        archive_now(&db).await;
    }
    let new = json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
    step(&db, 4).await;
    step(&db, 5).await;
    archive_now(&db).await;
    let _ = db.close().await;
    let latest = content(&url).await;
    let wal_dir = repo.dir.as_ref().unwrap().join("wal");
    let segments = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&wal_dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".zst"))
            .collect();
        names.sort();
        names
    };
    let before = segments();
    let start = new["start_wal"].as_str().unwrap();
    assert!(before.iter().any(|n| n.as_str() < start), "{before:?}");

    let dry = json_ok(&hotel_backup(
        &cluster,
        &repo,
        &["--json", "prune", "--keep-base", "1", "--dry-run"],
    ));
    assert_eq!(dry["pitr"]["deleted"][0], old["id"], "{dry}");
    assert_eq!(segments(), before);
    let out = hotel_backup(&cluster, &repo, &["prune", "--keep-base", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    let out = hotel_backup(&cluster, &repo, &["prune", "--keep-base", "1", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("needed by no kept base backup")
            && text.contains("would delete 1 base backups"),
        "{text}"
    );
    assert_eq!(segments(), before);

    let done = json_ok(&hotel_backup(
        &cluster,
        &repo,
        &["--json", "prune", "--keep-base", "1"],
    ))["pitr"]
        .clone();
    assert_eq!(done["kept"][0], new["id"], "{done}");
    let after = segments();
    assert!(after.iter().all(|n| n.as_str() >= start), "{after:?}");
    assert_eq!(
        before.len() - after.len(),
        done["wal_deleted"].as_u64().unwrap() as usize
    );
    let old_dir = repo
        .dir
        .as_ref()
        .unwrap()
        .join("base")
        .join(old["id"].as_str().unwrap());
    assert!(!old_dir.join("manifest.json").exists());
    assert!(!old_dir.join("base.tar.zst").exists());

    let (copy, report) = restored(&cluster, &repo, &["--latest"]).await;
    assert_eq!(report["restore"]["base_backup"]["id"], new["id"]);
    assert_eq!(content(&copy.url("hotel")).await, latest);
}

/// The staging directories of restores into `pgdata` (`.NAME.hotel-restore-PID` beside it).
fn restore_stagings(pgdata: &Path) -> Vec<PathBuf> {
    let prefix = format!(
        ".{}.hotel-restore-",
        pgdata.file_name().unwrap().to_string_lossy()
    );
    entries_starting_with(pgdata.parent().unwrap(), &prefix)
}

/// A restore killed with SIGKILL while it unpacks leaves nothing that blocks the next run: the
/// target was never touched, and the next restore into it removes the dead run's staging
/// directory and succeeds.
#[tokio::test]
async fn a_restore_killed_midway_does_not_block_the_next() {
    let Some((cluster, repo)) = archiving_cluster(false).await else {
        return;
    };
    let url = hotel_database(&cluster).await;
    let db = connect(&url).await;
    step(&db, 1).await;
    json_ok(&hotel_backup(&cluster, &repo, &["--json", "base-backup"]));
    step(&db, 2).await;
    archive_now(&db).await;
    let latest = content(&url).await;
    let _ = db.close().await;

    let mut killed_midway = false;
    let copy = PostgresCluster::start_from(&[], |pgdata| {
        killed_midway = kill_a_restore_midway(&cluster, &repo, pgdata);
        assert!(
            !pgdata.exists() || std::fs::read_dir(pgdata).unwrap().count() == 0,
            "a killed restore leaves the target untouched"
        );
        let data = pgdata.to_str().unwrap();
        json_ok(&hotel_backup(
            &cluster,
            &repo,
            &["--json", "restore", "--pgdata", data, "--latest"],
        ));
        assert!(
            restore_stagings(pgdata).is_empty(),
            "the next run removed the killed run's staging directory"
        );
    })
    .unwrap();
    assert!(killed_midway, "no restore was caught while unpacking");
    wait_promoted(&copy).await;
    assert_eq!(content(&copy.url("hotel")).await, latest);
}

/// Starts `hotel-backup restore --pgdata <pgdata> --latest` and kills it with SIGKILL once its
/// staging directory exists; a run that finishes first is started again (up to ten times).
/// Whether one was killed while unpacking.
fn kill_a_restore_midway(cluster: &PostgresCluster, repo: &Repo, pgdata: &Path) -> bool {
    for _ in 0..10 {
        let data = pgdata.to_str().unwrap();
        let mut child =
            hotel_backup_command(cluster, repo, &["restore", "--latest", "--pgdata", data])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while restore_stagings(pgdata).is_empty()
            && child.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if !restore_stagings(pgdata).is_empty() {
            return true;
        }
        // It finished (or never began): start again from an empty target.
        let _ = std::fs::remove_dir_all(pgdata);
    }
    false
}
