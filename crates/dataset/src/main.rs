//! `dataset`: fills a migrated hotel database with deterministic, realistic data.

use std::{path::PathBuf, process::ExitCode, str::FromStr};

use anyhow::Context;
use chrono::NaiveDate;
use clap::Parser;
use cli_support::progress;
use dataset::{DatasetOptions, Scale};
use sea_orm::{DatabaseConnection, sqlx::sqlite::SqliteConnectOptions};

/// Exit code when the arguments or the target database are wrong (nothing was written).
const USAGE: u8 = 2;

/// Fills a migrated, empty hotel database with deterministic, realistic data.
///
/// The same --scale, --seed and --reference-date always give the same rows. Run the
/// migrations first (`cargo run -p migration -- up`): this command never creates a database.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Exit codes: 0 generated; 1 the generation failed (database unreachable or a \
                  statement failed; nothing is left half-written); 2 usage error: bad arguments, \
                  no database at the given path, a database that is not migrated or not empty, \
                  a reference date outside 0010-01-01 to 9990-12-31 (nothing was created or \
                  written)."
)]
struct Cli {
    /// Database to fill: sqlite://path or postgres://user@host/db.
    #[arg(long, short = 'u', env = "DATABASE_URL", default_value = db_connect::DEFAULT_DATABASE_URL)]
    database_url: String,

    /// How much data: tiny (tests), small (demo, ~20k bookings), medium (~200k), large (~1M).
    #[arg(long, default_value = "small")]
    scale: Scale,

    /// Seed of the random number generator.
    #[arg(long, default_value_t = dataset::DEFAULT_SEED)]
    seed: u64,

    /// "Today" for the data (YYYY-MM-DD): history before it, bookable nights after.
    /// Default: today in UTC.
    #[arg(long)]
    reference_date: Option<NaiveDate>,

    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,

    /// Logging (`--log-format`; RUST_LOG sets the levels, default warn).
    #[command(flatten)]
    log: cli_support::LogArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init("warn");
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// 2 for what the caller got wrong (see `--help`), 1 for what failed.
fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<dataset::Error>(),
            Some(
                dataset::Error::NotMigrated { .. }
                    | dataset::Error::NotEmpty { .. }
                    | dataset::Error::UnknownScale(_)
                    | dataset::Error::ReferenceDateOutOfRange { .. }
            )
        ) || matches!(
            cause.downcast_ref::<db_connect::Error>(),
            Some(db_connect::Error::UnsupportedUrl { .. })
        ) || cause.downcast_ref::<MissingDatabase>().is_some()
    });
    if usage { USAGE } else { 1 }
}

/// A SQLite URL naming a file that does not exist.
#[derive(Debug, thiserror::Error)]
#[error(
    "there is no database at {}: create and migrate it first (`cargo run -p migration -- up -u URL`)",
    .0.display()
)]
struct MissingDatabase(PathBuf);

/// The file a SQLite URL names, unless the database lives in memory (or the URL is not SQLite).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    if db_connect::Backend::of_url(url).ok()? != db_connect::Backend::Sqlite
        || url.contains(":memory:")
        || url.contains("mode=memory")
    {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = db_connect::redact_password(&cli.database_url);
    let mut options = DatasetOptions::new(cli.scale).seed(cli.seed);
    if let Some(date) = cli.reference_date {
        options = options.reference_date(date);
    }
    options.check()?;
    // Connecting creates a missing SQLite file (and its directory): refuse before that, so a
    // mistyped path leaves nothing behind.
    if let Some(path) = sqlite_file(&cli.database_url)
        && !path.exists()
    {
        return Err(MissingDatabase(path).into());
    }
    let db = db_connect::connect(&cli.database_url)
        .await
        .with_context(|| format!("while connecting to {url}"))?;
    let generated = generate(&cli, &options, &db, &url).await;
    // Closed on every path: an unclosed SQLite pool leaves its -wal and -shm files behind.
    let closed = db.close().await.context("while closing the connection");
    generated.and(closed)
}

async fn generate(
    cli: &Cli,
    options: &DatasetOptions,
    db: &DatabaseConnection,
    url: &str,
) -> anyhow::Result<()> {
    let bar = progress::stderr_bar("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}", 0);
    let summary = dataset::generate(db, options, &|p| {
        bar.set_message(p.phase);
        progress::advance(&bar, p.done, Some(p.total));
    })
    .await
    .with_context(|| format!("while generating the {} dataset into {url}", cli.scale))?;
    bar.finish_and_clear();

    if cli.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "generated the {} dataset (seed {}, reference date {}) into {url} in {:.2} s:",
            summary.scale,
            summary.seed,
            summary.reference_date,
            summary.elapsed.as_secs_f64()
        );
        println!("  {:>9} users ({} admins)", summary.users, summary.admins);
        println!("  {:>9} room types", summary.room_types);
        println!("  {:>9} inventory nights", summary.inventory_nights);
        println!("  {:>9} bookings", summary.bookings);
        println!("  {:>9} payments", summary.payments);
        println!("  {:>9} waitlist entries", summary.waitlist_entries);
        println!("  {:>9} notifications", summary.notifications);
    }
    Ok(())
}
