//! `hotel-backup restore` and `verify` killed in the middle (SIGKILL, SIGTERM) by a real
//! signal, at the moment their scratch state exists: the next run is never blocked and
//! removes what was left, and `monitor` reports it meanwhile.

use std::{
    future::Future,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::Value;

use super::{describe, drop_database, hotel_backup, json, seeded};

/// A hotel-backup process of the test's own: killed (if still running) when dropped, so a
/// failing test leaves no process behind.
struct Running(Child);

impl Running {
    fn start(url: &str, repository: &std::path::Path, args: &[&str]) -> Self {
        Self(
            Command::new(env!("CARGO_BIN_EXE_hotel-backup"))
                .args(args)
                .env("DATABASE_URL", url)
                .env("BACKUP_DIR", repository)
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits (at most a minute) for the process to end.
    async fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "hotel-backup did not stop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hotel-backup <args>`, sends it `signal` as soon as `scratch` finds its scratch state,
/// and returns how it ended.
async fn interrupt<F, Fut>(
    url: &str,
    repository: &std::path::Path,
    args: &[&str],
    signal: &str,
    scratch: F,
) -> ExitStatus
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let mut process = Running::start(url, repository, args);
    loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            panic!("hotel-backup {args:?} ended ({status}) before its scratch state was seen");
        }
        if !scratch().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    process.signal(signal);
    process.wait().await
}

/// The restore's (or verification's) scratch state: a temporary file beside the SQLite
/// database, or a PostgreSQL database named after the database with `_<tag>`.
async fn scratch_state(
    db: &TestDatabase,
    admin: Option<&DatabaseConnection>,
    tag: &str,
) -> Vec<String> {
    match db.backend() {
        Backend::Sqlite => {
            let path = db.sqlite_path().unwrap();
            std::fs::read_dir(path.parent().unwrap())
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains(tag) && name.ends_with(".tmp"))
                .collect()
        }
        Backend::Postgres => {
            let admin = admin.unwrap();
            let base = database_name(db);
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
    }
}

fn database_name(db: &TestDatabase) -> String {
    url::Url::parse(db.url())
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned()
}

async fn admin_of(db: &TestDatabase) -> Option<DatabaseConnection> {
    (db.backend() == Backend::Postgres).then_some(())?;
    Some(
        db_connect::connect(&db_connect::testing::postgres_admin_url())
            .await
            .unwrap(),
    )
}

/// The monitor's `leftovers` check (whatever the overall status).
fn leftovers_check(url: &str, repository: &std::path::Path) -> Value {
    let out = hotel_backup(
        url,
        repository,
        &["--json", "monitor", "--min-free-bytes", "0"],
    );
    let health: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "leftovers")
        .unwrap()
        .clone()
}

/// SIGKILL leaves the restore's copy (SQLite: `.NAME.restore-ID.tmp`; PostgreSQL:
/// `NAME_restoring_…`), which the monitor reports; SIGTERM makes it clean up and exit 143.
/// Either way the retry restores, and afterwards nothing of the killed run remains.
async fn a_killed_restore(db: TestDatabase, signal: &str) {
    let db = seeded(db, dataset::Scale::Tiny).await;
    let dir = tempfile::tempdir().unwrap();
    let (url, d) = (db.url().to_owned(), dir.path());
    let id = json(&url, d, &["create"], 0)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    db.connection().close_by_ref().await.unwrap();
    let admin = admin_of(&db).await;
    let tag = match db.backend() {
        Backend::Sqlite => "restore-",
        Backend::Postgres => "restoring_",
    };

    let status = interrupt(&url, d, &["restore", &id], signal, || {
        scratch_state(&db, admin.as_ref(), tag)
    })
    .await;
    let left = scratch_state(&db, admin.as_ref(), tag).await;
    let check = leftovers_check(&url, d);
    if signal == "KILL" {
        assert_eq!(status.code(), None, "killed: {status}");
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(check["status"], "WARNING", "{check}");
        let message = check["message"].as_str().unwrap();
        assert!(message.contains(&left[0]), "{message}");
        assert!(message.contains("restore (pid"), "{message}");
    } else {
        assert_eq!(status.code(), Some(143), "{status}");
        assert!(left.is_empty(), "a stopped run cleans up: {left:?}");
        assert_eq!(check["status"], "OK", "{check}");
    }

    let out = hotel_backup(&url, d, &["--json", "restore", &id]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the retry restores: {}",
        describe(&out)
    );
    assert!(scratch_state(&db, admin.as_ref(), tag).await.is_empty());
    assert_eq!(leftovers_check(&url, d)["status"], "OK");
    let claims = d.join(".scratch");
    assert_eq!(
        std::fs::read_dir(&claims).map_or(0, |entries| entries.count()),
        0,
        "no claim is left"
    );
    let restored: Value = serde_json::from_slice(&out.stdout).unwrap();
    if let Some(replaced) = restored["replaced_database"].as_str() {
        drop_database(replaced).await;
    }
    if let Some(admin) = admin {
        admin.close().await.unwrap();
    }
}

async fn restore_killed_with_sigkill(db: TestDatabase) {
    a_killed_restore(db, "KILL").await;
}

async fn restore_stopped_with_sigterm(db: TestDatabase) {
    a_killed_restore(db, "TERM").await;
}

test_on_backends!(multi_thread; restore_killed_with_sigkill, restore_stopped_with_sigterm);

/// A PostgreSQL verification killed with SIGKILL leaves its scratch database: the monitor
/// says so (WARNING) instead of OK, and the next verification drops it and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postgres_verification_is_reported_then_removed() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let db = seeded(db, dataset::Scale::Tiny).await;
    let dir = tempfile::tempdir().unwrap();
    let (url, d) = (db.url().to_owned(), dir.path());
    let id = json(&url, d, &["create"], 0)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = admin_of(&db).await;
    let status = interrupt(&url, d, &["verify", &id], "KILL", || {
        scratch_state(&db, admin.as_ref(), "verify_")
    })
    .await;
    assert_eq!(status.code(), None);
    let left = scratch_state(&db, admin.as_ref(), "verify_").await;
    assert_eq!(left.len(), 1, "{left:?}");
    let check = leftovers_check(&url, d);
    assert_eq!(check["status"], "WARNING", "{check}");
    assert!(
        check["message"].as_str().unwrap().contains(&left[0]),
        "{check}"
    );

    let verified = json(&url, d, &["verify", &id], 0);
    assert_eq!(verified["ok"], true);
    assert!(
        scratch_state(&db, admin.as_ref(), "verify_")
            .await
            .is_empty()
    );
    assert_eq!(leftovers_check(&url, d)["status"], "OK");
    if let Some(admin) = admin {
        admin.close().await.unwrap();
    }
}
