//! Operator mistakes (issue 16 item 10): read-only commands never create anything, usage and
//! configuration errors are exit 2 and are not recorded as failed runs, and no argument makes
//! the binary panic (arguments generated with proptest from the CLI's own shape).

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use db_connect::{
    Backend, test_on_backends,
    testing::{MotoServer, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, TestDatabase},
};
use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};
use serde_json::Value;

use super::{describe, hotel_backup, json, seeded};

/// Every command that only reads (or would, with a repository there), on a repository that
/// does not exist: exit 2 (monitor: UNKNOWN, 3), and nothing is created — locally or in an
/// object store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_do_not_take_backups_never_create_a_repository() {
    let db = seeded(TestDatabase::sqlite().await, dataset::Scale::Tiny).await;
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    let id = "20261125T103000Z";
    let commands: [&[&str]; 8] = [
        &["list"],
        &["verify"],
        &["verify", id],
        &["verify", "--all"],
        &["restore", id, "--dry-run"],
        &["restore", id],
        &["prune"],
        &["prune", "--dry-run"],
    ];
    for args in commands {
        let out = hotel_backup(db.url(), &typo, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no backup repository"),
            "{args:?}: {}",
            describe(&out)
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    assert_eq!(
        hotel_backup(db.url(), &typo, &["monitor"]).status.code(),
        Some(3)
    );
    assert!(!typo.exists());

    let Some(moto) = MotoServer::start() else {
        return;
    };
    let bucket = moto.bucket("readonly");
    let scratch = tempfile::tempdir().unwrap();
    for args in [&["list"][..], &["monitor"], &["restore", id, "--dry-run"]] {
        let mut all = vec!["--scratch-dir", scratch.path().to_str().unwrap()];
        all.extend_from_slice(args);
        let out = hotel_backup(db.url(), bucket.url("typo"), &all);
        assert!(out.status.code().is_some(), "{args:?}: {}", describe(&out));
        assert_eq!(
            bucket.keys(),
            Vec::<String>::new(),
            "{args:?} wrote an object"
        );
        assert_eq!(
            std::fs::read_dir(scratch.path()).unwrap().count(),
            0,
            "{args:?} created a local work directory"
        );
    }
}

/// Commands that take backups, run against a repository path that does not exist yet with a
/// database that does not exist (or a mistake in their own arguments): they fail, and leave no
/// empty repository behind (before: `create`, `pre-migration`, `schedule`, `replicate`,
/// `wal-push` and `base-backup` each left the directory, some with a lock file in it; and
/// `schedule` went on failing at every interval instead of stopping with exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_that_fails_leaves_no_repository_behind() {
    let dir = tempfile::tempdir().unwrap();
    let missing_db = format!("sqlite://{}", dir.path().join("typo.sqlite").display());
    let unreachable_pg = "postgres://postgres@127.0.0.1:1/nothing";
    // (`create` from a server that is down is an operational failure: it is recorded, so the
    // repository that holds the record stays; see the test below.)
    let runs: [(&str, &[&str]); 6] = [
        (&missing_db, &["create"]),
        (&missing_db, &["pre-migration"]),
        (&missing_db, &["schedule", "--every", "1h"]),
        (&missing_db, &["replicate"]),
        (&missing_db, &["wal-push", "/nonexistent/not-a-wal-file"]),
        (unreachable_pg, &["base-backup"]),
    ];
    for (i, (url, args)) in runs.into_iter().enumerate() {
        let repository = dir.path().join(format!("new-{i}")).join("nested");
        let started = Instant::now();
        let out = hotel_backup(url, &repository, args);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{args:?} gave up only after {:?}",
            started.elapsed()
        );
        assert!(
            !dir.path().join(format!("new-{i}")).exists(),
            "{args:?} failed and left {}: {}",
            repository.display(),
            describe(&out)
        );
    }
}

/// A command line clap refuses is, with `--json`, a JSON error on stdout like every other
/// failure (before: clap's message on stderr only).
#[test]
fn a_refused_command_line_with_json_is_a_json_error_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--json", "schedule", "--every", "1ns"][..],
        &["--json", "no-such-command"],
        &["restore", "--to-time", "yesterday", "--json"],
    ] {
        let out = hotel_backup("sqlite::memory:", dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let error: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: no JSON on stdout ({e}): {}", describe(&out)));
        assert_eq!(error["ok"], false, "{error}");
        assert_eq!(error["exit_code"], 2, "{error}");
    }
}

/// With a healthy repository: a mistaken database URL (a file that does not exist, another
/// database, a database the server does not have) or a backup id that does not exist is exit
/// 2, recorded nowhere, and the monitor stays as it was. The repository's own database gone is
/// an operational failure: exit 1, recorded, CRITICAL.
async fn a_mistake_is_exit_2_and_never_poisons_the_monitor(db: TestDatabase) {
    let db = seeded(db, dataset::Scale::Tiny).await;
    let dir = tempfile::tempdir().unwrap();
    let (url, d) = (db.url().to_owned(), dir.path());
    let monitor = ["monitor", "--min-backups", "1", "--min-free-bytes", "0"];
    let id = json(&url, d, &["create"], 0)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&url, d, &["verify", &id], 0);
    assert_eq!(json(&url, d, &monitor, 0)["status"], "OK");
    let recorded = runs(d);

    let typo_file = format!("sqlite://{}", d.join("typo.sqlite").display());
    let mut typo_pg = url::Url::parse(&db_connect::testing::postgres_admin_url()).unwrap();
    typo_pg.set_path("no_such_database_anywhere");
    let mistakes: Vec<(String, Vec<&str>)> = vec![
        (typo_file.clone(), vec!["create"]),
        (typo_file.clone(), vec!["pre-migration"]),
        (typo_pg.to_string(), vec!["create"]),
        ("mysql://host/db".to_owned(), vec!["create"]),
        (url.clone(), vec!["verify", "20991231T000000Z"]),
        (url.clone(), vec!["restore", "20991231T000000Z"]),
        (url.clone(), vec!["restore", &id, "--to", "sqlite::memory:"]),
        (url.clone(), vec!["create", "--compression-level", "0"]),
        (
            url.clone(),
            vec![
                "prune",
                "--keep-last",
                "0",
                "--keep-daily",
                "0",
                "--keep-weekly",
                "0",
                "--keep-monthly",
                "0",
            ],
        ),
    ];
    for (url, args) in &mistakes {
        let out = hotel_backup(url, d, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{url} {args:?}: {}",
            describe(&out)
        );
    }
    assert!(
        !d.join("typo.sqlite").exists(),
        "a backup never creates its database"
    );
    assert_eq!(runs(d), recorded, "no mistake is recorded as a run");
    assert_eq!(json(&url, d, &monitor, 0)["status"], "OK");

    if db.backend() == Backend::Sqlite {
        // The repository's own database gone: that is a failure to report.
        db.connection().close_by_ref().await.unwrap();
        let path = db.sqlite_path().unwrap();
        std::fs::rename(&path, path.with_extension("aside")).unwrap();
        let out = hotel_backup(&url, d, &["create"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let health = json(&url, d, &monitor, 2);
        assert!(
            health["checks"]
                .to_string()
                .contains("does not exist any more"),
            "{health}"
        );
    }
}

test_on_backends!(multi_thread; a_mistake_is_exit_2_and_never_poisons_the_monitor);

/// The run records of a local repository.
fn runs(repository: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(repository.join("runs"))
        .into_iter()
        .flatten()
    {
        for record in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            found.push(record.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    found
}

/// The command lines hotel-backup is given, from its own shape: each subcommand with its
/// options, values that are valid, edge or nonsense, and now and then anything at all.
fn arguments(db_url: String) -> impl Strategy<Value = Vec<String>> {
    let pick =
        |values: &'static [&'static str]| prop::sample::select(values).prop_map(str::to_owned);
    // Mostly values that parse (so that commands get past clap and do something), sometimes
    // edge cases and nonsense.
    let mixed = move |valid: &'static [&'static str], odd: &'static [&'static str]| prop_oneof![3 => pick(valid), 2 => pick(odd)];
    let duration = mixed(
        &["1s", "2h", "1ns", "0s", "1y 2d"],
        &[
            "-1s",
            "abc",
            "",
            "500000000years",
            "18446744073709551615s",
            "9999999999999999999999s",
        ],
    );
    let number = mixed(
        &["0", "1", "3", "19"],
        &[
            "20",
            "-1",
            "4294967296",
            "18446744073709551616",
            "NaN",
            "inf",
            "-0.5",
            "1e308",
            "",
            "x",
        ],
    );
    let id = mixed(
        &["20261125T103000Z", "20991231T000000Z-2"],
        &[
            "20261125T103000Z-99999999999999999999",
            "latest",
            "",
            "2026-11-25",
            "20261325T103000Z",
            "20261125T256000Z",
        ],
    );
    let url = prop_oneof![
        3 => Just(db_url),
        2 => pick(&[
            "sqlite://typo.sqlite",
            "sqlite::memory:",
            "sqlite://",
            "sqlite:",
            "postgres://",
            "postgres://postgres@127.0.0.1:5432/no_such_database_anywhere",
            "postgres://u:p@127.0.0.1:1/x",
            "mysql://x",
            "",
            "\u{1F600}",
        ]),
    ];
    let location = pick(&[
        "typo",
        "a/b/c",
        "",
        ".",
        "s3://",
        "s3://b",
        "s3://b/p?endpoint=%zz",
        "file:///x",
        "s3://b/p?region=",
        "s3://b/p?region=a.b%2F",
        "s3://b/p?endpoint=http://127.0.0.1:1",
        "\u{1F600}",
    ]);
    let anything = "[^\\x00]{0,10}";
    let global = prop_oneof![
        Just(vec!["--json".to_owned()]),
        location.clone().prop_map(|v| vec!["-d".to_owned(), v]),
        location.prop_map(|v| vec!["--scratch-dir".to_owned(), v]),
    ];
    // Options that some commands take (after the command's name; a usage error elsewhere).
    let shared = prop_oneof![
        duration
            .clone()
            .prop_map(|v| vec!["--lock-wait".to_owned(), v]),
        number
            .clone()
            .prop_map(|v| vec!["--compression-level".to_owned(), v]),
        url.clone().prop_map(|v| vec!["-u".to_owned(), v]),
    ];
    let retention = prop_oneof![
        number
            .clone()
            .prop_map(|v| vec!["--keep-last".to_owned(), v]),
        number
            .clone()
            .prop_map(|v| vec!["--keep-daily".to_owned(), v]),
        number
            .clone()
            .prop_map(|v| vec!["--keep-monthly".to_owned(), v]),
        number
            .clone()
            .prop_map(|v| vec!["--pre-migration-newer".to_owned(), v]),
    ];
    let flag = |name: &'static str| Just(vec![name.to_owned()]);
    let command = prop_oneof![
        pick(&["manual", "scheduled", "pre-restore", "bogus"]).prop_map(|r| vec![
            "create".to_owned(),
            "--reason".to_owned(),
            r
        ]),
        Just(vec!["create".to_owned()]),
        Just(vec!["pre-migration".to_owned()]),
        Just(vec!["list".to_owned()]),
        (
            prop::option::of(id.clone()),
            prop::collection::vec(prop_oneof![flag("--all"), flag("--quick")], 0..2)
        )
            .prop_map(|(id, flags)| {
                let mut args = vec!["verify".to_owned()];
                args.extend(id);
                args.extend(flags.into_iter().flatten());
                args
            }),
        (
            id,
            prop::collection::vec(
                prop_oneof![
                    flag("--dry-run"),
                    flag("--force"),
                    flag("--clean"),
                    flag("--no-safety-backup"),
                    url.prop_map(|v| vec!["--to".to_owned(), v]),
                ],
                0..3
            )
        )
            .prop_map(|(id, options)| {
                let mut args = vec!["restore".to_owned(), id];
                args.extend(options.into_iter().flatten());
                args
            }),
        (
            prop::option::of(flag("--dry-run")),
            prop::collection::vec(retention, 0..3)
        )
            .prop_map(|(dry, options)| {
                let mut args = vec!["prune".to_owned()];
                args.extend(dry.into_iter().flatten());
                args.extend(options.into_iter().flatten());
                args
            }),
        prop::collection::vec(
            prop_oneof![
                duration
                    .clone()
                    .prop_map(|v| vec!["--warn-age".to_owned(), v]),
                duration
                    .clone()
                    .prop_map(|v| vec!["--crit-age".to_owned(), v]),
                duration
                    .clone()
                    .prop_map(|v| vec!["--verify-grace".to_owned(), v]),
                number
                    .clone()
                    .prop_map(|v| vec!["--min-backups".to_owned(), v]),
                number
                    .clone()
                    .prop_map(|v| vec!["--size-drop-warn".to_owned(), v]),
                number
                    .clone()
                    .prop_map(|v| vec!["--min-free-bytes".to_owned(), v]),
            ],
            0..3
        )
        .prop_map(|options| {
            let mut args = vec!["monitor".to_owned()];
            args.extend(options.into_iter().flatten());
            args
        }),
        duration.prop_map(|every| vec!["schedule".to_owned(), "--every".to_owned(), every]),
        prop::collection::vec(anything, 1..3),
    ];
    (
        prop::collection::vec(global, 0..2),
        command,
        prop::collection::vec(shared, 0..2),
        prop::option::weighted(0.1, anything),
    )
        .prop_map(|(globals, command, shared, extra)| {
            let mut args: Vec<String> = globals.into_iter().flatten().collect();
            args.extend(command);
            args.extend(shared.into_iter().flatten());
            args.extend(extra);
            args
        })
}

/// Runs one generated command line in a directory of its own (relative paths land there) on a
/// copy of the database and repository; stops a long run (a schedule) with SIGTERM.
fn run_case(args: &[String], db: &Path, repository: &Path) -> (Output, tempfile::TempDir) {
    let case = tempfile::tempdir().unwrap();
    let db_copy = case.path().join("db.sqlite");
    std::fs::copy(db, &db_copy).unwrap();
    let repo_copy = case.path().join("repo");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(repository)
        .arg(&repo_copy)
        .status()
        .unwrap();
    assert!(copied.success());
    let child = Command::new(env!("CARGO_BIN_EXE_hotel-backup"))
        .args(args)
        .current_dir(case.path())
        .env("DATABASE_URL", format!("sqlite://{}", db_copy.display()))
        .env("BACKUP_DIR", &repo_copy)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run still going after 3 s (a schedule, which waits for its next run) is stopped as
    // an operator would.
    let pid = child.id().to_string();
    let stopper = std::thread::spawn(move || {
        let started = Instant::now();
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        while started.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
            if !running() {
                return;
            }
        }
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
    });
    let out = child.wait_with_output().unwrap();
    let _ = stopper.join();
    (out, case)
}

/// The files under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

/// No command line makes hotel-backup panic: every exit code is a documented one, and a
/// read-only command (list, monitor, a dry run) creates nothing in the directory it runs in.
/// `BACKUP_CLI_SEED` reproduces a run; `BACKUP_CLI_CASES` sets how many (default 40).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_line_makes_it_panic() {
    let db = seeded(TestDatabase::sqlite().await, dataset::Scale::Tiny).await;
    let repo = tempfile::tempdir().unwrap();
    json(db.url(), repo.path(), &["create"], 0);
    db.connection().close_by_ref().await.unwrap();
    let db_path = db.sqlite_path().unwrap();
    let seed: u64 = std::env::var("BACKUP_CLI_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let cases: usize = std::env::var("BACKUP_CLI_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let repo_path = repo.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut seed_bytes = [0_u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
        );
        let strategy = arguments(format!("sqlite://{}", db_path.display()));
        let mut codes = std::collections::BTreeMap::<i32, usize>::new();
        for _ in 0..cases {
            let args = strategy.new_tree(&mut runner).unwrap().current();
            let (out, case) = run_case(&args, &db_path, &repo_path);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code().unwrap_or(-1);
            *codes.entry(code).or_default() += 1;
            let has = |word: &str| args.iter().any(|a| a == word);
            let read_only = (has("list") || has("monitor") || has("--dry-run"))
                && !["create", "pre-migration", "schedule", "verify"]
                    .iter()
                    .any(|w| has(w));
            assert!(
                matches!(code, 0..=5 | 143) && !stderr.contains("panicked"),
                "hotel-backup {args:?} (BACKUP_CLI_SEED={seed}): {}",
                describe(&out)
            );
            if read_only {
                let new: Vec<String> = tree(case.path())
                    .into_iter()
                    .filter(|f| !f.starts_with("db.sqlite") && !f.starts_with("repo"))
                    .collect();
                assert!(
                    new.is_empty(),
                    "hotel-backup {args:?} (BACKUP_CLI_SEED={seed}) created {new:?}"
                );
            }
            if has("--json") && code != 2 && !has("schedule") {
                // Whatever happened, --json prints JSON (clap's own usage errors excepted; the
                // scheduler prints a line per run).
                let _: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                    panic!(
                        "hotel-backup {args:?} (BACKUP_CLI_SEED={seed}): {e}: {}",
                        describe(&out)
                    )
                });
            }
        }
        eprintln!("{cases} command lines (BACKUP_CLI_SEED={seed}), by exit code: {codes:?}");
    })
    .await
    .unwrap();
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hotel-backup"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Each command's `--help` lists the options it uses and none it ignores, the options keep
/// their environment variables, and every help ends with the exit codes.
#[test]
fn each_commands_help_shows_its_own_options_and_the_exit_codes() {
    let root = help(&[]);
    for code in [
        "Exit codes:",
        "  3    a backup failed verification",
        "  4    another",
    ] {
        assert!(root.contains(code), "--help lacks {code:?}:\n{root}");
    }
    // (command, options it must show, options it must not show)
    let cases: [(&str, &[&str], &[&str]); 7] = [
        (
            "list",
            &["--backup-dir", "--scratch-dir", "--json", "--log-format"],
            &[
                "--compression-level",
                "--pg-dump",
                "--pg-restore",
                "--lock-wait",
                "--database-url",
            ],
        ),
        (
            "create",
            &[
                "--database-url",
                "[env: DATABASE_URL",
                "--compression-level",
                "[env: BACKUP_COMPRESSION_LEVEL",
                "--pg-dump",
                "--lock-wait",
                "[env: BACKUP_LOCK_WAIT",
            ],
            &["--pg-restore"],
        ),
        (
            "verify",
            &[
                "--database-url",
                "--pg-restore",
                "[env: PG_RESTORE",
                "--lock-wait",
            ],
            &["--compression-level", "--pg-dump"],
        ),
        (
            "restore",
            &[
                "--database-url",
                "--pg-dump",
                "--pg-restore",
                "--compression-level",
            ],
            &[],
        ),
        (
            "prune",
            &["--lock-wait", "--keep-last"],
            &["--database-url", "--compression-level", "--pg-dump"],
        ),
        (
            "monitor",
            // --database-url: the PostgreSQL archiver it checks with point-in-time recovery.
            &["--warn-age", "--database-url"],
            &["--lock-wait", "--compression-level"],
        ),
        (
            "wal-push",
            &["--backup-dir"],
            &[
                "--database-url",
                "--compression-level",
                "--pg-dump",
                "--pg-restore",
            ],
        ),
    ];
    for (command, shown, hidden) in cases {
        let text = help(&[command]);
        for option in shown {
            assert!(
                text.contains(option),
                "{command} --help lacks {option}:\n{text}"
            );
        }
        for option in hidden {
            assert!(
                !text.contains(option),
                "{command} --help shows {option}:\n{text}"
            );
        }
        assert!(
            text.contains("Exit codes"),
            "{command} --help lacks the exit codes"
        );
    }
    assert!(help(&["monitor"]).contains("3 UNKNOWN"));
    assert!(help(&["wal-fetch"]).contains("126"));
    // An option given to a command that does not use it is a usage error, not ignored.
    let out = Command::new(env!("CARGO_BIN_EXE_hotel-backup"))
        .args(["list", "--compression-level", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
