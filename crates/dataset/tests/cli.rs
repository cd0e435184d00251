//! The `dataset` command: a failed run creates and changes nothing, usage errors exit 2, and no
//! input makes it panic (issue 16, item 10: a mistyped SQLite path used to leave the file, its
//! directory and its -wal and -shm files behind).

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{
    path::Path,
    process::{Command, Output},
};

use migration::MigratorTrait;
use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, TestRunner},
};

const BIN: &str = env!("CARGO_BIN_EXE_dataset");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

fn expect_exit(output: &Output, code: i32, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
}

#[test]
fn a_mistyped_sqlite_path_creates_nothing_and_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/typo/hotel.sqlite", dir.path().display());
    let output = run(&["--database-url", &url, "--scale", "tiny"]);
    expect_exit(&output, 2, "a path with no database");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no database at"),
        "says what is wrong"
    );
    assert_eq!(
        files_in(dir.path()),
        Vec::<String>::new(),
        "nothing created"
    );
}

#[tokio::test]
async fn an_unmigrated_database_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.sqlite");
    let url = format!("sqlite://{}", path.display());
    // An existing SQLite database without the schema.
    let db = db_connect::connect(&url).await.unwrap();
    db.close().await.unwrap();
    let before = files_in(dir.path());
    let output = run(&["-u", &url, "--scale", "tiny"]);
    expect_exit(&output, 2, "an unmigrated database");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not migrated"));
    assert_eq!(files_in(dir.path()), before, "no -wal or -shm left behind");
}

#[tokio::test]
async fn generates_into_a_migrated_database_then_refuses_to_mix() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hotel.sqlite", dir.path().display());
    let db = db_connect::connect(&url).await.unwrap();
    migration::Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();
    let args = [
        "-u",
        &url,
        "--scale",
        "tiny",
        "--reference-date",
        "2026-03-15",
        "--json",
    ];
    let output = run(&args);
    expect_exit(&output, 0, "a migrated, empty database");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["room_types"], 3, "{summary}");
    expect_exit(&run(&args), 2, "a database that already holds data");
    assert_eq!(files_in(dir.path()), vec!["hotel.sqlite".to_owned()]);
}

/// Arguments a user might type, and mistype.
fn argument() -> impl Strategy<Value = Vec<String>> {
    let flag = prop::sample::select(vec![
        "--scale",
        "--seed",
        "--reference-date",
        "--database-url",
        "-u",
        "--json",
        "--help",
        "--version",
        "--bogus",
        "-x",
        "--",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "tiny",
            "small",
            "huge",
            "",
            "0",
            "-1",
            "18446744073709551616",
            "2026-03-15",
            "2026-3-15",
            "0001-01-01",
            "9999-12-31",
            "+262142-12-31",
            "-262143-01-01",
            "sqlite::memory:",
            "mysql://x",
            "sqlite:",
            "sqlite://",
            "sqlite://a/b.sqlite",
        ])
        .prop_map(str::to_owned),
        // Anything but NUL, which no process argument can hold.
        "[^\\x00]{0,12}",
    ];
    prop::collection::vec((flag, prop::option::of(value)), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .flat_map(|(flag, value)| std::iter::once(flag.to_owned()).chain(value))
            .collect()
    })
}

#[test]
fn no_arguments_make_it_panic_or_create_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new(Config::default());
    for _ in 0..40 {
        let args = argument().new_tree(&mut runner).unwrap().current();
        // Relative paths land in the temporary directory, so nothing can be created elsewhere.
        let output = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            matches!(output.status.code(), Some(0..=2)) && !stderr.contains("panicked"),
            "dataset {args:?}: {:?}\n{stderr}",
            output.status
        );
        assert_eq!(
            files_in(dir.path()),
            Vec::<String>::new(),
            "dataset {args:?} created a file"
        );
    }
}
