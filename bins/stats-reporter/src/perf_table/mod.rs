//! `perf-table`: the original system's Before/After table, measured on a generated dataset.
//!
//! One database: generated with every migration, the optimized and cached variants are timed;
//! then the composite indexes are dropped with their migration's own `down`
//! (`migration::drop_composite_indexes`) and the naive baseline is timed; then they are
//! re-created with its `up`.

mod measure;
mod render;

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use db_connect::Backend;
use migration::{Migrator, MigratorTrait};
use perf_stats::LatencySummary;
use query_baselines::workload::Operation;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::Serialize;

use crate::{Outcome, cli::PerfTableArgs, progress};

/// The original system's figures (BACKEND_OPTIMIZATION_QUICKSTART.md), for reference only:
/// they were claimed, not measured here.
fn original(op: Operation) -> (Duration, Duration) {
    let ms = Duration::from_millis;
    match op {
        Operation::RoomTypes => (ms(150), ms(15)),
        Operation::Availability => (ms(800), ms(80)),
        Operation::UserBookings => (ms(300), ms(45)),
        Operation::CreateBooking => (ms(2_500), ms(1_200)),
        Operation::Report => (ms(12_000), ms(3_000)),
    }
}

/// One operation's line.
#[derive(Debug, Serialize)]
struct Row {
    operation: Operation,
    label: &'static str,
    naive: LatencySummary,
    optimized: LatencySummary,
    /// None for a write: there is nothing to cache.
    cached: Option<LatencySummary>,
    /// naive p50 / optimized p50.
    naive_over_optimized: f64,
    /// naive p50 / cached p50.
    naive_over_cached: Option<f64>,
    original_before_ms: f64,
    original_after_ms: f64,
}

/// Where and how it was measured.
#[derive(Debug, Serialize)]
struct Machine {
    /// `std::thread::available_parallelism`.
    cores: usize,
    cpu: Option<String>,
    os: &'static str,
    arch: &'static str,
    /// `/proc/loadavg` (1, 5, 15 minutes) before and after the measurements.
    load_before: Option<String>,
    load_after: Option<String>,
}

/// Seconds spent preparing.
#[derive(Debug, Serialize)]
struct Setup {
    generate_s: f64,
    drop_indexes_s: f64,
    create_indexes_s: f64,
}

/// Everything `perf-table` measured, as `--json` prints it.
#[derive(Debug, Serialize)]
struct PerfTable {
    command: String,
    date: chrono::DateTime<Utc>,
    machine: Machine,
    backend: &'static str,
    database: String,
    dataset: dataset::Summary,
    runs: u64,
    warmup: u64,
    setup: Setup,
    rows: Vec<Row>,
}

/// The database measured: a temporary SQLite file unless the caller gave one.
struct Target {
    url: String,
    shown: String,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    fn new(args: &PerfTableArgs) -> anyhow::Result<Self> {
        match &args.generate_into {
            Some(url) => Ok(Self {
                url: url.clone(),
                shown: db_connect::redact_password(url),
                _dir: None,
            }),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("hotel-stats-perf-")
                    .tempdir()
                    .context("while creating a temporary directory for the database")?;
                let url = format!("sqlite://{}", dir.path().join("perf.sqlite").display());
                Ok(Self {
                    url,
                    shown: "a temporary SQLite file".to_owned(),
                    _dir: Some(dir),
                })
            }
        }
    }
}

/// Refuses a database that holds anything: perf-table drops and recreates indexes and fills
/// tables, which is only harmless on a database made for it.
async fn ensure_empty(db: &DatabaseConnection, shown: &str) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let count = |sql: &str| {
        let sql = sql.to_owned();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(backend, sql.clone()))
                .await
                .with_context(|| format!("while checking that {shown} is empty"))?;
            Ok::<i64, anyhow::Error>(
                row.and_then(|r| r.try_get_by_index::<i64>(0).ok())
                    .unwrap_or(0),
            )
        }
    };
    let tables = count(match backend {
        DbBackend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        }
        _ => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    })
    .await?;
    if tables == 0 {
        return Ok(());
    }
    // Migrated but empty (say after `cargo run -p migration -- up`) is fine too.
    let rows = count(
        "SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM room_types) \
         + (SELECT COUNT(*) FROM bookings)",
    )
    .await;
    match rows {
        Ok(0) => Ok(()),
        _ => bail!(
            "{shown} is not empty: perf-table generates its dataset and drops and recreates the \
             composite indexes, so it needs an empty database (or none: the default is a \
             temporary SQLite file)"
        ),
    }
}

pub(crate) async fn run(args: &PerfTableArgs, json: bool) -> anyhow::Result<Outcome> {
    let target = Target::new(args)?;
    let db = db_connect::connect(&target.url)
        .await
        .with_context(|| format!("while connecting to {}", target.shown))?;
    let backend = Backend::of_connection(&db);
    ensure_empty(&db, &target.shown).await?;
    Migrator::up(&db, None)
        .await
        .with_context(|| format!("while migrating {}", target.shown))?;

    let reference = args
        .reference_date
        .unwrap_or_else(|| Utc::now().date_naive());
    let bar = progress::bar(0, "generating");
    let summary = dataset::generate(
        &db,
        &dataset::DatasetOptions::new(args.scale)
            .seed(args.seed)
            .reference_date(reference),
        &|p| {
            bar.set_message(format!("generating {}", p.phase));
            progress::advance(&bar, p.done, Some(p.total));
        },
    )
    .await
    .with_context(|| format!("while generating the {} dataset", args.scale))?;
    bar.finish_and_clear();
    tracing::info!(
        scale = %args.scale,
        bookings = summary.bookings,
        seconds = summary.elapsed.as_secs_f64(),
        "dataset generated"
    );

    let load_before = load_average();
    let (rows, setup) = measure::measure_all(&db, args, reference, summary.elapsed).await?;
    let load_after = load_average();
    db.close().await.context("while closing the connection")?;

    let report = PerfTable {
        command: command_line(),
        date: Utc::now(),
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: cpu_model(),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            load_before,
            load_after,
        },
        backend: backend.name(),
        database: target.shown.clone(),
        dataset: summary,
        runs: args.runs,
        warmup: args.warmup,
        setup,
        rows,
    };
    if let Some(path) = &args.markdown {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("while creating {}", dir.display()))?;
        }
        std::fs::write(path, render::markdown(&report))
            .with_context(|| format!("while writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::render(&report));
    }
    Ok(Outcome::Ok)
}

/// The command as typed, with any database password redacted.
fn command_line() -> String {
    std::iter::once("hotel-stats".to_owned())
        .chain(std::env::args().skip(1).map(|arg| {
            let arg = db_connect::redact_password(&arg);
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                format!("'{arg}'")
            } else {
                arg
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_figures_are_those_of_its_guide() {
        assert_eq!(
            original(Operation::CreateBooking),
            (Duration::from_millis(2_500), Duration::from_millis(1_200))
        );
        assert_eq!(original(Operation::Report).0, Duration::from_secs(12));
    }
}
