//! `perf-table`: the original system's Before/After table, measured on a generated dataset.
//!
//! One database: generated with every migration, the optimized and cached variants are timed;
//! then the composite-index migration is rolled back (`Migrator::down(db, Some(1))`, the real
//! `down`) and the naive baseline is timed; then the migration is re-applied.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{NaiveDate, Utc};
use db_connect::Backend;
use indicatif::ProgressBar;
use migration::{Migrator, MigratorTrait};
use optimized_queries::{
    HotelCache,
    workload::{Operation, Variant, Workload},
};
use perf_stats::{LatencyHistogram, LatencySummary};
use query_cache::QueryCache;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::Serialize;

use crate::{
    Outcome,
    cli::PerfTableArgs,
    progress,
    table::{self, Align, Table},
};

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
        match &args.database_url {
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
            bar.set_length(p.total);
            bar.set_position(p.done);
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
    let (rows, setup) = measure_all(&db, args, reference, summary.elapsed).await?;
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
        std::fs::write(path, markdown(&report))
            .with_context(|| format!("while writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(Outcome::Ok)
}

async fn measure_all(
    db: &DatabaseConnection,
    args: &PerfTableArgs,
    reference: NaiveDate,
    generate: Duration,
) -> anyhow::Result<(Vec<Row>, Setup)> {
    let cache = QueryCache::builder()
        .max_entries(100_000)
        .build()
        .context("while building the query cache")?;
    let workload = Workload::prepare(db.clone(), HotelCache::new(cache), reference)
        .await
        .context("while reading the generated data")?;
    let per_cell = args.warmup + args.runs;
    let cells: u64 = Operation::ALL
        .iter()
        .map(|&op| {
            Variant::ALL
                .iter()
                .filter(|v| v.applies_to(op))
                .map(|&v| per_cell + if v == Variant::Cached { args.runs } else { 0 })
                .sum::<u64>()
        })
        .sum();
    let bar = progress::bar(cells, "measuring");

    // With every migration: the optimized helpers, and the same through a warm cache.
    let mut optimized = Vec::new();
    let mut cached = Vec::new();
    for op in Operation::ALL {
        optimized.push(measure(&workload, op, Variant::Optimized, args, &bar).await?);
        cached.push(if Variant::Cached.applies_to(op) {
            Some(measure(&workload, op, Variant::Cached, args, &bar).await?)
        } else {
            None
        });
    }

    // Without the composite-index migration: the naive baseline.
    bar.set_message("dropping the indexes");
    let started = Instant::now();
    Migrator::down(db, Some(1))
        .await
        .context("while rolling back the composite-index migration")?;
    analyze(db).await?;
    let drop_indexes = started.elapsed();
    let mut naive = Vec::new();
    for op in Operation::ALL {
        naive.push(measure(&workload, op, Variant::Naive, args, &bar).await?);
    }
    bar.set_message("re-creating the indexes");
    let started = Instant::now();
    Migrator::up(db, None)
        .await
        .context("while re-applying the composite-index migration")?;
    analyze(db).await?;
    let create_indexes = started.elapsed();
    bar.finish_and_clear();

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let rows = Operation::ALL
        .iter()
        .zip(naive)
        .zip(optimized)
        .zip(cached)
        .map(|(((&operation, naive), optimized), cached)| {
            let (before, after) = original(operation);
            Row {
                operation,
                label: operation.label(),
                naive_over_optimized: ratio(naive.p50, optimized.p50),
                naive_over_cached: cached.map(|c| ratio(naive.p50, c.p50)),
                naive,
                optimized,
                cached,
                original_before_ms: before.as_secs_f64() * 1e3,
                original_after_ms: after.as_secs_f64() * 1e3,
            }
        })
        .collect();
    Ok((
        rows,
        Setup {
            generate_s: generate.as_secs_f64(),
            drop_indexes_s: drop_indexes.as_secs_f64(),
            create_indexes_s: create_indexes.as_secs_f64(),
        },
    ))
}

/// Fresh planner statistics after the indexes change, as after any migration.
async fn analyze(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("ANALYZE")
        .await
        .context("while refreshing the planner's statistics")?;
    Ok(())
}

/// Times `runs` runs of one operation and variant after `warmup` untimed ones. Bookings made
/// are cancelled outside the timed part.
async fn measure(
    workload: &Workload,
    op: Operation,
    variant: Variant,
    args: &PerfTableArgs,
    bar: &ProgressBar,
) -> anyhow::Result<LatencySummary> {
    bar.set_message(format!("{} {}", op.id(), variant.id()));
    let doing = || format!("while running {} ({})", op.label(), variant.id());
    if variant == Variant::Cached {
        // A warm cache: every parameter the timed runs use is loaded first.
        for i in 0..args.runs {
            let made = workload.run(op, variant, i).await.with_context(doing)?;
            workload.undo(made).await.with_context(doing)?;
            bar.inc(1);
        }
    }
    for i in 0..args.warmup {
        let made = workload.run(op, variant, i).await.with_context(doing)?;
        workload.undo(made).await.with_context(doing)?;
        bar.inc(1);
    }
    let mut latency = LatencyHistogram::new();
    for i in 0..args.runs {
        let started = Instant::now();
        let made = workload.run(op, variant, i).await.with_context(doing)?;
        latency.record(started.elapsed());
        workload.undo(made).await.with_context(doing)?;
        bar.inc(1);
    }
    Ok(latency.summary())
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

fn factor(f: f64) -> String {
    if f >= 100.0 {
        format!("{f:.0}×")
    } else if f >= 10.0 {
        format!("{f:.1}×")
    } else {
        format!("{f:.2}×")
    }
}

/// The original's claim as its guide wrote it: `150 ms → 15 ms (10×)`, `2.5 s → 1.2 s (2.1×)`.
fn original_cell(row: &Row) -> String {
    let human = |ms: f64| {
        if ms >= 1_000.0 {
            format!("{} s", ms / 1e3)
        } else {
            format!("{ms} ms")
        }
    };
    format!(
        "{} → {} ({})",
        human(row.original_before_ms),
        human(row.original_after_ms),
        factor(row.original_before_ms / row.original_after_ms)
    )
}

fn backend_name(backend: &str) -> &str {
    match backend {
        "postgres" => "PostgreSQL",
        "sqlite" => "SQLite",
        other => other,
    }
}

fn dataset_line(report: &PerfTable) -> String {
    let d = &report.dataset;
    format!(
        "{} (seed {}, reference date {}): {} room types, {} users, {} bookings, {} payments, {} inventory nights; generated in {:.1} s",
        d.scale,
        d.seed,
        d.reference_date,
        d.room_types,
        d.users,
        d.bookings,
        d.payments,
        d.inventory_nights,
        report.setup.generate_s
    )
}

fn machine_line(report: &PerfTable) -> String {
    let m = &report.machine;
    let mut line = format!("{} cores", m.cores);
    if let Some(cpu) = &m.cpu {
        let _ = write!(line, " ({cpu})");
    }
    let _ = write!(line, ", {} {}", m.os, m.arch);
    if let (Some(before), Some(after)) = (&m.load_before, &m.load_after) {
        let _ = write!(
            line,
            "; load average (1/5/15 min) {before} before, {after} after"
        );
    }
    line
}

const LEGEND: &str = "naive = optimized_queries::naive (fetch then filter, N+1 loops, \
aggregation in Rust) on the database WITHOUT the composite-index migration; optimized = the \
optimized-queries helpers WITH it; cached = the same through a warm HotelCache (user bookings \
cached without payments, which are never cached; a booking is a write and is never cached). \
Factors are naive p50 / optimized p50 and naive p50 / cached p50.";

fn render(report: &PerfTable) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Before/after on {} ({}), {} timed runs per cell after {} warm-up",
        report.database,
        backend_name(report.backend),
        report.runs,
        report.warmup
    );
    let _ = writeln!(out, "dataset: {}", dataset_line(report));
    let _ = writeln!(out, "machine: {}", machine_line(report));
    let _ = writeln!(out);
    let mut table = Table::new(&[
        ("operation", Align::Left),
        ("naive p50", Align::Right),
        ("p95", Align::Right),
        ("optimized p50", Align::Right),
        ("p95", Align::Right),
        ("cached p50", Align::Right),
        ("p95", Align::Right),
        ("naive/optimized", Align::Right),
        ("naive/cached", Align::Right),
        ("original before → after", Align::Left),
    ]);
    for row in &report.rows {
        table.row([
            row.label.to_owned(),
            table::duration(row.naive.p50),
            table::duration(row.naive.p95),
            table::duration(row.optimized.p50),
            table::duration(row.optimized.p95),
            row.cached.map_or("—".into(), |c| table::duration(c.p50)),
            row.cached.map_or("—".into(), |c| table::duration(c.p95)),
            factor(row.naive_over_optimized),
            row.naive_over_cached.map_or("—".into(), factor),
            original_cell(row),
        ]);
    }
    let _ = write!(out, "{table}");
    let _ = writeln!(out);
    let _ = writeln!(out, "{LEGEND}");
    let _ = writeln!(
        out,
        "Setup: composite indexes dropped in {:.2} s and re-created in {:.2} s.",
        report.setup.drop_indexes_s, report.setup.create_indexes_s
    );
    out
}

fn markdown(report: &PerfTable) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {} dataset on {}",
        report.dataset.scale,
        backend_name(report.backend)
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "- Command: `{}`", report.command);
    let _ = writeln!(out, "- Date: {}", report.date.format("%Y-%m-%d %H:%M UTC"));
    let _ = writeln!(out, "- Machine: {}", machine_line(report));
    let _ = writeln!(out, "- Dataset: {}", dataset_line(report));
    let _ = writeln!(
        out,
        "- Backend: {} ({})",
        backend_name(report.backend),
        report.database
    );
    let _ = writeln!(
        out,
        "- Runs: {} timed per cell after {} warm-up; p50 and p95 from an HDR histogram (within 1 %)",
        report.runs, report.warmup
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| Operation | Naive p50 | Naive p95 | Optimized p50 | Optimized p95 | Cached p50 | Cached p95 | Naive ÷ optimized | Naive ÷ cached | Original before → after |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for row in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {} |",
            row.label,
            table::duration(row.naive.p50),
            table::duration(row.naive.p95),
            table::duration(row.optimized.p50),
            table::duration(row.optimized.p95),
            row.cached.map_or("—".into(), |c| table::duration(c.p50)),
            row.cached.map_or("—".into(), |c| table::duration(c.p95)),
            factor(row.naive_over_optimized),
            row.naive_over_cached.map_or("—".into(), factor),
            original_cell(row)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{LEGEND} The original's figures are its own claims, shown for reference; they were not measured here."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Setup: composite indexes dropped in {:.2} s and re-created in {:.2} s.",
        report.setup.drop_indexes_s, report.setup.create_indexes_s
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_keep_meaningful_digits() {
        assert_eq!(factor(1.234), "1.23×");
        assert_eq!(factor(12.34), "12.3×");
        assert_eq!(factor(1234.5), "1234×");
    }

    #[test]
    fn the_originals_figures_are_those_of_its_guide() {
        assert_eq!(
            original(Operation::CreateBooking),
            (Duration::from_millis(2_500), Duration::from_millis(1_200))
        );
        assert_eq!(original(Operation::Report).0, Duration::from_secs(12));
    }
}
