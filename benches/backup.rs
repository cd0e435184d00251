//! backup/create and backup/verify against the floor (cp of the quiesced file) and against
//! the script an operator would write (sqlite3 VACUUM INTO, then zstd -3; pg_dump -Fc), side
//! by side in one run.
//!
//! Each operation takes seconds on the large dataset, so this is a timing harness rather than
//! a criterion benchmark: the candidates run round-robin (so machine noise hits them alike),
//! `BACKUP_BENCH_RUNS` times (default 3), and the median is reported with its throughput (MB of
//! database per second) and its ratio to the floor. Peak memory is measured with
//! `/usr/bin/time -v` on a child process, for two database sizes.
//!
//! ```text
//! cargo bench --bench backup                    # SQLite large (+ medium for memory), PostgreSQL medium
//! BACKUP_BENCH_RUNS=5 cargo bench --bench backup
//! BACKUP_BENCH_PG=0 cargo bench --bench backup  # SQLite only
//! ```
//!
//! The datasets are generated once under target/bench-data (large: ~470 MB, several minutes).

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use backup::{BackupRepository, Reason, Source, SqliteSnapshotMethod, VerifyDepth, VerifyOptions};
use chrono::NaiveDate;
use dataset::{DatasetOptions, Scale};
use migration::MigratorTrait;
use sea_orm::ConnectionTrait;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(mode @ ("child-create" | "child-verify")) = args.get(1).map(String::as_str) {
        // Run by /usr/bin/time -v for the peak memory of one create (and verify).
        child(&args[2], Path::new(&args[3]), mode == "child-verify");
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("backup/create: bench\nbackup/verify: bench");
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without --bench: the full run takes
        // minutes and generates datasets, so only `cargo bench` does it.
        println!("backup bench: run it with `cargo bench --bench backup`");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let runs: usize = std::env::var("BACKUP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&data).expect("create target/bench-data");
    let large = runtime.block_on(sqlite_dataset(&data.join("hotel.sqlite"), Scale::Large));
    let medium = runtime.block_on(sqlite_dataset(&data.join("medium.sqlite"), Scale::Medium));
    println!("machine: {} cores, load average {}", cores(), load());

    sqlite_bench(&runtime, &large, runs);
    memory(&[("medium", &medium), ("large", &large)]);
    if std::env::var("BACKUP_BENCH_PG").map_or(true, |v| v != "0") {
        runtime.block_on(postgres_bench(runs));
    }
    println!("load average at the end: {}", load());
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Generates the `scale` dataset of every run (same seed, same reference date) into the
/// migrated, empty `db`, and closes it.
async fn generate(db: sea_orm::DatabaseConnection, scale: Scale) {
    let options = DatasetOptions::new(scale)
        .seed(dataset::DEFAULT_SEED)
        .reference_date(NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date"));
    dataset::generate(&db, &options, &|_| {})
        .await
        .expect("generate");
    db.close().await.expect("close");
}

/// The SQLite file of `scale`, generated once, quiesced (WAL checkpointed into the file).
async fn sqlite_dataset(path: &Path, scale: Scale) -> PathBuf {
    let url = format!("sqlite://{}", path.display());
    if !path.exists() {
        eprintln!(
            "generating the {scale:?} dataset into {} (once)",
            path.display()
        );
        let db = db_connect::connect(&url)
            .await
            .expect("open the bench database");
        migration::Migrator::up(&db, None).await.expect("migrate");
        generate(db, scale).await;
    }
    let db = db_connect::connect(&url)
        .await
        .expect("open the bench database");
    db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .expect("checkpoint");
    db.close().await.expect("close");
    path.to_path_buf()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Row {
    id: &'static str,
    command: String,
    times: Vec<Duration>,
}

fn report(rows: &[Row], db_bytes: u64, floor: &str) {
    let floor_time = median(
        rows.iter()
            .find(|r| r.id == floor)
            .expect("the floor")
            .times
            .clone(),
    );
    println!("| id | median | MB/s (database) | × {floor} | runs | command |");
    println!("|---|---:|---:|---:|---|---|");
    for r in rows {
        let t = median(r.times.clone());
        let runs: Vec<String> = r
            .times
            .iter()
            .map(|t| format!("{:.2}", t.as_secs_f64()))
            .collect();
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} | {} | `{}` |",
            r.id,
            t.as_secs_f64(),
            mb(db_bytes) / t.as_secs_f64(),
            t.as_secs_f64() / floor_time.as_secs_f64(),
            runs.join(" "),
            r.command
        );
    }
}

fn sqlite_bench(runtime: &tokio::runtime::Runtime, db: &Path, runs: usize) {
    let db_bytes = std::fs::metadata(db).expect("the database").len();
    println!(
        "\n## SQLite, large dataset: {} ({:.0} MB)\n",
        db.display(),
        mb(db_bytes)
    );
    let scratch = tempfile::Builder::new()
        .prefix("backup-bench-")
        .tempdir_in(db.parent().expect("a directory"))
        .expect("scratch");
    let s = scratch.path();
    let source = Source::sqlite(db);
    let repo = BackupRepository::open(s.join("repo")).expect("repo");
    let simple = BackupRepository::builder(s.join("repo-vacuum"))
        .sqlite_snapshot_method(SqliteSnapshotMethod::VacuumInto)
        .open()
        .expect("repo");
    // Variants, to show where the time goes.
    let variants = [
        (
            "backup/create (1 zstd thread)",
            "repo.create, compression_workers(1)",
            BackupRepository::builder(s.join("repo-1-thread"))
                .compression_workers(1)
                .open()
                .expect("repo"),
        ),
        (
            "backup/create (zstd -1)",
            "repo.create, compression_level(1)",
            BackupRepository::builder(s.join("repo-level-1"))
                .compression_level(1)
                .open()
                .expect("repo"),
        ),
    ];
    let mut rows = vec![
        Row {
            id: "cp (floor)",
            command: format!("cp {} copy.sqlite", db.display()),
            times: vec![],
        },
        Row {
            id: "copy, uncached (dd O_DIRECT)",
            command: format!(
                "dd if={} of=copy.sqlite bs=4M iflag=direct oflag=direct",
                db.display()
            ),
            times: vec![],
        },
        Row {
            id: "script: VACUUM INTO",
            command: format!("sqlite3 {} \"VACUUM INTO 'v.sqlite'\"", db.display()),
            times: vec![],
        },
        Row {
            id: "script: zstd -3",
            command: "zstd -3 -q v.sqlite -o v.sqlite.zst".into(),
            times: vec![],
        },
        Row {
            id: "script: total",
            command: "the two above, one after the other".into(),
            times: vec![],
        },
        Row {
            id: "backup/create",
            command: "repo.create (page stream, zstd -3, default workers)".into(),
            times: vec![],
        },
        Row {
            id: "backup/create (VACUUM INTO)",
            command: "repo.create with SqliteSnapshotMethod::VacuumInto".into(),
            times: vec![],
        },
        Row {
            id: "backup/verify",
            command: "repo.verify (integrity_check)".into(),
            times: vec![],
        },
        Row {
            id: "backup/verify --quick",
            command: "repo.verify (quick_check)".into(),
            times: vec![],
        },
    ];
    for (id, command, _) in &variants {
        rows.push(Row {
            id,
            command: (*command).into(),
            times: vec![],
        });
    }
    let mut last = None;
    for i in 0..runs {
        eprintln!("sqlite run {}/{runs}", i + 1);
        let copy = s.join("copy.sqlite");
        let t = Instant::now();
        run(Command::new("cp").arg(db).arg(&copy));
        rows[0].times.push(t.elapsed());
        std::fs::remove_file(&copy).expect("remove");
        let t = Instant::now();
        run(Command::new("dd")
            .arg(format!("if={}", db.display()))
            .arg(format!("of={}", copy.display()))
            .args(["bs=4M", "iflag=direct", "oflag=direct", "status=none"]));
        rows[1].times.push(t.elapsed());
        std::fs::remove_file(&copy).expect("remove");

        let v = s.join("v.sqlite");
        let t = Instant::now();
        run(Command::new("sqlite3")
            .arg(db)
            .arg(format!("VACUUM INTO '{}'", v.display())));
        let vacuum = t.elapsed();
        let t = Instant::now();
        run(Command::new("zstd")
            .args(["-3", "-q", "-f"])
            .arg(&v)
            .arg("-o")
            .arg(s.join("v.sqlite.zst")));
        let zstd = t.elapsed();
        rows[2].times.push(vacuum);
        rows[3].times.push(zstd);
        rows[4].times.push(vacuum + zstd);
        std::fs::remove_file(&v).expect("remove");
        std::fs::remove_file(s.join("v.sqlite.zst")).expect("remove");

        let t = Instant::now();
        let m = runtime
            .block_on(repo.create(&source, Reason::Manual, &|_| {}))
            .expect("create");
        rows[5].times.push(t.elapsed());

        let t = Instant::now();
        let m2 = runtime
            .block_on(simple.create(&source, Reason::Manual, &|_| {}))
            .expect("create");
        rows[6].times.push(t.elapsed());
        std::fs::remove_file(s.join("repo-vacuum").join(&m2.file)).expect("remove");
        std::fs::remove_file(s.join("repo-vacuum").join(format!("{}.json", m2.id)))
            .expect("remove");

        for (row, depth) in [(7, VerifyDepth::Full), (8, VerifyDepth::Quick)] {
            let options = VerifyOptions {
                depth,
                ..VerifyOptions::default()
            };
            let t = Instant::now();
            let r = runtime
                .block_on(repo.verify(&m.id, &options, &|_| {}))
                .expect("verify");
            rows[row].times.push(t.elapsed());
            assert!(r.ok, "{:?}", r.failure);
        }
        for (i, (_, _, variant)) in variants.iter().enumerate() {
            let t = Instant::now();
            let v = runtime
                .block_on(variant.create(&source, Reason::Manual, &|_| {}))
                .expect("create");
            rows[9 + i].times.push(t.elapsed());
            let dir = variant.location().local_dir().expect("a local repository");
            std::fs::remove_file(dir.join(&v.file)).expect("remove");
            std::fs::remove_file(dir.join(format!("{}.json", v.id))).expect("remove");
        }
        if let Some(previous) = last.replace(m.clone()) {
            let previous: backup::BackupManifest = previous;
            std::fs::remove_file(s.join("repo").join(&previous.file)).expect("remove");
            std::fs::remove_file(s.join("repo").join(format!("{}.json", previous.id)))
                .expect("remove");
        }
    }
    report(&rows, db_bytes, "cp (floor)");
    if let Some(m) = last {
        println!(
            "\ncompression: {:.0} MB -> {:.1} MB, ratio {:.2} (zstd -{})",
            mb(m.raw_bytes),
            mb(m.compressed_bytes),
            m.raw_bytes as f64 / m.compressed_bytes as f64,
            m.compression.level
        );
    }
    let t = |id: &str| {
        median(
            rows.iter()
                .find(|r| r.id == id)
                .expect("a row")
                .times
                .clone(),
        )
        .as_secs_f64()
    };
    println!(
        "create / script = {:.2}; create / cp = {:.2}, / uncached copy = {:.2} (target ≤ 3); verify / create = {:.2} (target ≤ 2); verify --quick / create = {:.2}",
        t("backup/create") / t("script: total"),
        t("backup/create") / t("cp (floor)"),
        t("backup/create") / t("copy, uncached (dd O_DIRECT)"),
        t("backup/verify") / t("backup/create"),
        t("backup/verify --quick") / t("backup/create"),
    );
}

/// Peak memory of one create, in a child process, for each database.
fn memory(dbs: &[(&str, &Path)]) {
    println!("\n## Peak memory (/usr/bin/time -v on a child process)\n");
    println!(
        "| dataset | database | backup/create peak RSS | backup/create + backup/verify peak RSS |"
    );
    println!("|---|---:|---:|---:|");
    let exe = std::env::current_exe().expect("this program");
    for (name, db) in dbs {
        let size = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
        let rss: Vec<String> = ["child-create", "child-verify"]
            .iter()
            .map(|mode| {
                let dir = tempfile::Builder::new()
                    .prefix("backup-bench-rss-")
                    .tempdir_in(db.parent().expect("a directory"))
                    .expect("scratch");
                let out = Command::new("/usr/bin/time")
                    .arg("-v")
                    .arg(&exe)
                    .arg(mode)
                    .arg(db)
                    .arg(dir.path())
                    .output()
                    .expect("run /usr/bin/time");
                let stderr = String::from_utf8_lossy(&out.stderr);
                stderr
                    .lines()
                    .find_map(|l| {
                        l.trim()
                            .strip_prefix("Maximum resident set size (kbytes): ")
                    })
                    .and_then(|v| v.parse::<u64>().ok())
                    .map_or_else(
                        || format!("not measured: {}", stderr.lines().last().unwrap_or("")),
                        |kb| format!("{:.1} MB", kb as f64 / 1024.0),
                    )
            })
            .collect();
        println!("| {name} | {:.0} MB | {} | {} |", mb(size), rss[0], rss[1]);
    }
}

fn child(db: &str, dir: &Path, verify: bool) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let repo = BackupRepository::open(dir).expect("repo");
    let m = runtime
        .block_on(repo.create(&Source::sqlite(db), Reason::Manual, &|_| {}))
        .expect("create");
    if verify {
        let r = runtime
            .block_on(repo.verify(&m.id, &VerifyOptions::default(), &|_| {}))
            .expect("verify");
        assert!(r.ok, "{:?}", r.failure);
    }
}

async fn postgres_bench(runs: usize) {
    let admin_url = db_connect::testing::postgres_admin_url();
    let Ok(admin) = db_connect::connect(&admin_url).await else {
        println!("\nPostgreSQL unreachable at {admin_url}: skipped");
        return;
    };
    let name = "hotel_bench_backup";
    let mut url = url::Url::parse(&admin_url).expect("a URL");
    url.set_path(name);
    let url = url.to_string();
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        ))
        .await
        .expect("query")
        .is_some();
    if !exists {
        eprintln!("loading the medium dataset into PostgreSQL database {name} (once)");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create the bench database");
        let db = db_connect::connect(&url).await.expect("connect");
        migration::Migrator::up(&db, None).await.expect("migrate");
        generate(db, Scale::Medium).await;
    }
    let size: i64 = admin
        .query_one_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT pg_database_size('{name}')"),
        ))
        .await
        .expect("query")
        .expect("a row")
        .try_get_by_index(0)
        .expect("a size");
    admin.close().await.expect("close");
    let db_bytes = u64::try_from(size).unwrap_or(0);
    println!(
        "\n## PostgreSQL, medium dataset: {name} ({:.0} MB on disk)\n",
        mb(db_bytes)
    );
    let scratch = tempfile::tempdir().expect("scratch");
    let repo = BackupRepository::open(scratch.path().join("repo")).expect("repo");
    let source = Source::from_url(&url).expect("a URL");
    let dump = scratch.path().join("plain.dump");
    let mut rows = vec![
        Row {
            id: "pg_dump -Fc (script)",
            command: format!("pg_dump -Fc -f plain.dump {url}"),
            times: vec![],
        },
        Row {
            id: "backup/create",
            command: "repo.create (pg_dump -Fc -Z0 | zstd -3)".into(),
            times: vec![],
        },
        Row {
            id: "backup/verify",
            command: "repo.verify (pg_restore into a scratch database, row counts)".into(),
            times: vec![],
        },
    ];
    let mut last = None;
    let verify = VerifyOptions {
        postgres_server: Some(source.clone()),
        ..VerifyOptions::default()
    };
    for i in 0..runs {
        eprintln!("postgres run {}/{runs}", i + 1);
        let t = Instant::now();
        run(Command::new("pg_dump")
            .args(["-Fc", "-f"])
            .arg(&dump)
            .arg(&url));
        rows[0].times.push(t.elapsed());
        let t = Instant::now();
        let m = repo
            .create(&source, Reason::Manual, &|_| {})
            .await
            .expect("create");
        rows[1].times.push(t.elapsed());
        let t = Instant::now();
        let r = repo.verify(&m.id, &verify, &|_| {}).await.expect("verify");
        rows[2].times.push(t.elapsed());
        assert!(r.ok, "{:?}", r.failure);
        last = Some(m);
    }
    report(&rows, db_bytes, "pg_dump -Fc (script)");
    if let Some(m) = last {
        let plain = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
        println!(
            "\ndump: {:.0} MB uncompressed -> {:.1} MB with zstd -3 (ratio {:.2}); pg_dump -Fc's own gzip: {:.1} MB",
            mb(m.raw_bytes),
            mb(m.compressed_bytes),
            m.raw_bytes as f64 / m.compressed_bytes as f64,
            mb(plain)
        );
    }
}
