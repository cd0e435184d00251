//! perf-stats on a real database: an N+1 loop, its fix, and the report that tells them apart.
//!
//! `cargo run --example query_report`
//!
//! It creates a SQLite file in a temporary directory, fills it with the tiny dataset, attaches a
//! `QueryTracker` to the connection, then serves "the latest bookings with their room types"
//! three ways, each in its own scope: one query per booking (the N+1), a JOIN, and an IN query.
//! The tracing warning for the N+1 appears as it happens; the report at the end lists the
//! shapes with their percentiles and the N+1 finding.

// Examples stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use anyhow::Context;
use chrono::NaiveDate;
use dataset::{DatasetOptions, Scale};
use entity::{booking, prelude::*};
use migration::{Migrator, MigratorTrait};
use perf_stats::{QueryTracker, SortKey};
use sea_orm::{DatabaseConnection, EntityTrait, LoaderTrait, QueryOrder, QuerySelect};

/// Bookings shown on the page.
const PAGE: u64 = 25;

/// One query for the bookings, then one per booking for its room type.
async fn naive(db: &DatabaseConnection) -> anyhow::Result<usize> {
    let bookings = Booking::find()
        .order_by_desc(booking::Column::CreatedAt)
        .limit(PAGE)
        .all(db)
        .await?;
    let mut names = Vec::new();
    for b in &bookings {
        let room_type = RoomType::find_by_id(b.room_type_id).one(db).await?;
        names.extend(room_type.map(|r| r.name));
    }
    Ok(names.len())
}

/// One JOIN.
async fn joined(db: &DatabaseConnection) -> anyhow::Result<usize> {
    let rows = Booking::find()
        .find_also_related(RoomType)
        .order_by_desc(booking::Column::CreatedAt)
        .limit(PAGE)
        .all(db)
        .await?;
    Ok(rows.iter().filter(|(_, r)| r.is_some()).count())
}

/// The bookings, then all their room types in one `IN (…)` query.
async fn batched(db: &DatabaseConnection) -> anyhow::Result<usize> {
    let bookings = Booking::find()
        .order_by_desc(booking::Column::CreatedAt)
        .limit(PAGE)
        .all(db)
        .await?;
    let room_types = bookings.load_one(RoomType, db).await?;
    Ok(room_types.iter().flatten().count())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // The tracker's warnings are tracing events: show them.
    tracing_subscriber::fmt()
        .with_env_filter("perf_stats=warn")
        .with_target(false)
        .init();

    let dir = tempfile::tempdir().context("while creating a temporary directory")?;
    let url = format!("sqlite://{}", dir.path().join("hotel.sqlite").display());
    let mut db = db_connect::connect(&url)
        .await
        .context("while opening the SQLite file")?;
    Migrator::up(&db, None).await.context("while migrating")?;
    let options = DatasetOptions::new(Scale::Tiny)
        .seed(1)
        .reference_date(NaiveDate::from_ymd_opt(2026, 3, 15).context("a valid date")?);
    dataset::generate(&db, &options, &|_| {})
        .await
        .context("while generating the tiny dataset")?;

    // From here on, every statement of `db` (and of clones made from it) is recorded.
    let tracker = QueryTracker::new();
    tracker.attach(&mut db);

    // A page is served many times; the percentiles need more than one run.
    for _ in 0..10 {
        let (found, scope) = tracker.scope("latest bookings (naive)", naive(&db)).await;
        anyhow::ensure!(found? == PAGE as usize);
        anyhow::ensure!(scope.has_n_plus_one());
        let (found, scope) = tracker.scope("latest bookings (JOIN)", joined(&db)).await;
        anyhow::ensure!(found? == PAGE as usize && !scope.has_n_plus_one());
        let (found, scope) = tracker.scope("latest bookings (IN)", batched(&db)).await;
        anyhow::ensure!(found? == PAGE as usize && !scope.has_n_plus_one());
    }

    // The same comparison as a query budget, as a test would write it.
    let (_, naive_queries) = tracker.capture(naive(&db)).await;
    let (_, joined_queries) = tracker.capture(joined(&db)).await;
    println!(
        "\nstatements per page: naive {}, JOIN {}",
        naive_queries.len(),
        joined_queries.len()
    );
    perf_stats::assert_max_queries!(joined_queries, 1, "the fixed page");

    let report = tracker.report();
    println!("\n{report}");
    let chattiest = report.top(SortKey::Calls, 1)[0];
    println!(
        "most frequent shape: {} calls, p50 {:?}, p95 {:?}, p99 {:?}\n  {}",
        chattiest.calls, chattiest.p50, chattiest.p95, chattiest.p99, chattiest.fingerprint
    );
    Ok(())
}
