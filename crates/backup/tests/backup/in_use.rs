//! A restore never replaces a SQLite database that something still has open, in any journal
//! mode, whether the holder is this process or another one.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

use backup::{BackupId, BackupRepository, Error, Reason, RestoreOptions};
use db_connect::testing::TestDatabase;
use sea_orm::{ConnectionTrait, Database};

use crate::support::{contents, reopen, repo, seeded, source};

/// Every journal mode SQLite has: the rollback ones (where a connection between transactions
/// holds no lock) and WAL.
const JOURNAL_MODES: [&str; 6] = ["delete", "truncate", "persist", "memory", "off", "wal"];

/// An idle connection of another process: the sqlite3 shell, after one query, waiting.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Shell {
    /// `None` (after a SKIP line) without the sqlite3 shell.
    fn open(path: &Path, journal_mode: &str) -> Option<Self> {
        let mut child = match Command::new("sqlite3")
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                db_connect::testing::service_unavailable("the sqlite3 shell", &e.to_string());
                return None;
            }
        };
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut shell = Self {
            child,
            stdin,
            stdout,
        };
        assert_eq!(
            shell.query(&format!("PRAGMA journal_mode = {journal_mode};")),
            journal_mode
        );
        // A read, and the shell sits idle with the database open (in WAL mode, with its
        // locks; in rollback mode, with none).
        assert!(
            shell
                .query("SELECT count(*) FROM users;")
                .parse::<u64>()
                .is_ok()
        );
        Some(shell)
    }

    fn query(&mut self, sql: &str) -> String {
        writeln!(self.stdin, "{sql}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn restore(repo: &BackupRepository, id: &BackupId, db: &TestDatabase) -> backup::Result<()> {
    repo.restore(id, &source(db), &RestoreOptions::default(), &|_| {})
        .await
        .map(|_| ())
}

async fn dry_run_in_use(
    repo: &BackupRepository,
    id: &BackupId,
    db: &TestDatabase,
) -> Option<String> {
    let options = RestoreOptions {
        dry_run: true,
        ..RestoreOptions::default()
    };
    repo.restore(id, &source(db), &options, &|_| {})
        .await
        .unwrap()
        .plan
        .in_use
}

/// In each journal mode, an idle connection — a pool of this process opened the way a library
/// user opens it (`sea_orm::Database::connect`, no WAL), then the sqlite3 shell in another
/// process — makes the restore refuse (the dry run says so), and the database is untouched;
/// once it is closed, the restore goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_in_any_journal_mode_is_seen() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let path = db.sqlite_path().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let backup = repo
        .create(&source(&db), Reason::Manual, &|_| {})
        .await
        .unwrap();
    db.connection().close_by_ref().await.unwrap();
    let url = format!("sqlite://{}", path.display());

    for mode in JOURNAL_MODES {
        // This process: a plain sea-orm pool, idle between two requests.
        let pool = Database::connect(&url).await.unwrap();
        let set = pool
            .query_one_raw(sea_orm::Statement::from_string(
                pool.get_database_backend(),
                format!("PRAGMA journal_mode = {mode}"),
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(set.try_get_by_index::<String>(0).unwrap(), mode);
        let before = contents(&pool).await;
        let seen = dry_run_in_use(&repo, &backup.id, &db).await;
        assert!(
            seen.as_deref()
                .is_some_and(|s| s.contains(&format!("process {}", std::process::id()))),
            "{mode}: this process's idle pool: {seen:?}"
        );
        let err = restore(&repo, &backup.id, &db).await.unwrap_err();
        assert!(matches!(err, Error::DatabaseInUse { .. }), "{mode}: {err}");
        assert_eq!(contents(&pool).await, before, "{mode}: untouched");
        pool.close().await.unwrap();

        // Another process.
        let Some(shell) = Shell::open(&path, mode) else {
            return;
        };
        let err = restore(&repo, &backup.id, &db).await.unwrap_err();
        match &err {
            Error::DatabaseInUse { detail, .. } => assert!(
                detail.contains(&format!("process {}", shell.pid())),
                "{mode}: {detail}"
            ),
            other => panic!("{mode}: expected DatabaseInUse, got {other}"),
        }
        drop(shell);
    }
    assert_eq!(dry_run_in_use(&repo, &backup.id, &db).await, None);
    restore(&repo, &backup.id, &db).await.unwrap();
    // The restored database works for a plain pool (nothing kept the replaced file).
    let conn = reopen(&db).await;
    conn.execute_unprepared("UPDATE users SET name = name")
        .await
        .unwrap();
    conn.close().await.unwrap();
}
