//! `dataset`: fills a migrated hotel database with deterministic, realistic data.

use std::io::IsTerminal;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Parser;
use dataset::{DatasetOptions, Scale};
use indicatif::{ProgressBar, ProgressStyle};

/// Fills a migrated, empty hotel database with deterministic, realistic data.
///
/// The same --scale, --seed and --reference-date always give the same rows. Run the
/// migrations first (`cargo run -p migration -- up`).
#[derive(Debug, Parser)]
#[command(version, about)]
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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = db_connect::redact_password(&cli.database_url);
    let db = db_connect::connect(&cli.database_url)
        .await
        .with_context(|| format!("while connecting to {url}"))?;
    let mut options = DatasetOptions::new(cli.scale).seed(cli.seed);
    if let Some(date) = cli.reference_date {
        options = options.reference_date(date);
    }

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let summary = dataset::generate(&db, &options, &|p| {
        bar.set_message(p.phase);
        bar.set_length(p.total);
        bar.set_position(p.done);
    })
    .await
    .with_context(|| format!("while generating the {} dataset into {url}", cli.scale))?;
    bar.finish_and_clear();
    db.close().await.context("while closing the connection")?;

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
