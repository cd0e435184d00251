//! The migration CLI as operators run it: what it refuses to create, and several copies
//! started at once on a fresh PostgreSQL database.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::process::{Command, Output};

use db_connect::testing::TestDatabase;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement};

fn migration(url: &str, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migration"));
    command
        .args(args)
        .env("DATABASE_URL", url)
        .env("BACKUP_DIR", dir.join("backups"))
        .env_remove("RUST_LOG")
        .current_dir(dir);
    command
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `status`, `down`, `reset` and `refresh` on a SQLite path that does not exist say so and
/// exit 2, leaving no file and no directory behind; `up` creates the database as before.
#[test]
fn commands_that_do_not_build_a_schema_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/typo/hotel.sqlite", dir.path().display());
    for args in [
        &["status"][..],
        &["down"],
        &["down", "-n", "2"],
        &["reset"],
        &["refresh"],
    ] {
        let out = migration(&url, dir.path(), args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("there is no database at"),
            "{args:?}: {}",
            text(&out)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    let out = migration(&url, dir.path(), &["up"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = migration(&url, dir.path(), &["status"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("applied")
            .count(),
        Migrator::migrations().len()
    );
}

/// `status` on a database that was never migrated lists every migration as pending and
/// creates no migration table.
#[tokio::test]
async fn status_reads_without_writing() {
    let test_db = TestDatabase::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let out = migration(test_db.url(), dir.path(), &["status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("pending")
            .count(),
        Migrator::migrations().len()
    );
    let db = test_db.connection();
    let tables = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(tables, 0, "status created a table");
}

/// A PostgreSQL database that does not exist is a usage error too.
#[tokio::test]
async fn status_of_a_missing_postgres_database_exits_2() {
    let Some(test_db) = TestDatabase::postgres().await else {
        return;
    };
    let mut url = url::Url::parse(test_db.url()).unwrap();
    url.set_path(&format!("{}_typo", url.path().trim_start_matches('/')));
    let dir = tempfile::tempdir().unwrap();
    let out = migration(url.as_str(), dir.path(), &["status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Issue 16, item 4: copies of the CLI started at the same moment on a fresh PostgreSQL
/// database all succeed, and each migration is applied once. (Reading the status before
/// taking the lock made some of them fail with `duplicate key value violates unique
/// constraint "pg_type_typname_nsp_index"`: both created the migration table.)
#[tokio::test]
async fn several_migrate_ups_started_together_all_succeed() {
    for _trial in 0..3 {
        let Some(test_db) = TestDatabase::postgres().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..4)
            .map(|_| {
                migration(test_db.url(), dir.path(), &["up"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect();
        for out in &outputs {
            assert!(out.status.success(), "{}", text(out));
        }
        let applied: usize = outputs
            .iter()
            .filter_map(|out| {
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                stdout
                    .split("applied ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        assert_eq!(
            applied,
            Migrator::migrations().len(),
            "each migration applied by exactly one of them"
        );
        assert!(
            Migrator::get_pending_migrations(test_db.connection())
                .await
                .unwrap()
                .is_empty()
        );
    }
}
