//! The N+1 loop next to the optimized helper, on the embedded SQLite.
//!
//! ```text
//! cargo run --release --example optimized_queries
//! ```
//!
//! Generates the small dataset into a temporary SQLite file, then runs each naive helper (the
//! way the original system queried) and its optimized counterpart, printing how many statements
//! each issued and how long each took.

// Examples stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::time::{Duration, Instant};

use chrono::{Duration as Days, Utc};
use dataset::{DatasetOptions, Scale};
use migration::{Migrator, MigratorTrait};
use optimized_queries::{DateRange, RoomCount, UserBookingsQuery};
use perf_stats::QueryTracker;
use query_baselines::naive;

/// Runs once inside a perf-stats scope (counting statements and spotting N+1 patterns), then
/// `runs` more times for the mean time.
async fn measure<T, F: std::future::Future<Output = optimized_queries::Result<T>>>(
    tracker: &QueryTracker,
    label: &str,
    runs: u32,
    mut run: impl FnMut() -> F,
) -> anyhow::Result<(usize, Duration, T)> {
    let (first, scope) = tracker.scope(label.to_owned(), run()).await;
    let mut value = first?;
    let started = Instant::now();
    for _ in 0..runs {
        value = run().await?;
    }
    Ok((scope.statements as usize, started.elapsed() / runs, value))
}

fn row(name: &str, naive: (usize, Duration), optimized: (usize, Duration)) {
    println!(
        "{name:<34} {:>5} stmts {:>10.3} ms   {:>3} stmts {:>9.3} ms   {:>6.1}x",
        naive.0,
        naive.1.as_secs_f64() * 1e3,
        optimized.0,
        optimized.1.as_secs_f64() * 1e3,
        naive.1.as_secs_f64() / optimized.1.as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("hotel.sqlite").display());
    let mut db = db_connect::connect(&url).await?;
    Migrator::up(&db, None).await?;
    let today = Utc::now().date_naive();
    println!("generating the small dataset into {url} ...");
    let summary = dataset::generate(
        &db,
        &DatasetOptions::new(Scale::Small).reference_date(today),
        &|_| {},
    )
    .await?;
    println!(
        "{} bookings, {} room types\n",
        summary.bookings, summary.room_types
    );

    let tracker = QueryTracker::new();
    tracker.attach(&mut db);
    // A frequent guest: ids just after the admins book most.
    let user = summary.admins as i64 + 1;
    let week = DateRange::new(today, today + Days::days(7))?;
    let year = DateRange::new(today - Days::days(182), today + Days::days(183))?;
    let with_payments = UserBookingsQuery {
        include_payments: true,
        limit: 200,
        ..UserBookingsQuery::default()
    };

    println!(
        "{:<34} {:>25}   {:>24}   speed-up",
        "operation", "naive", "optimized"
    );
    let (n_count, n_time, n_value) = measure(&tracker, "naive::user_bookings", 20, || {
        naive::user_bookings(&db, user, with_payments)
    })
    .await?;
    let (o_count, o_time, o_value) =
        measure(&tracker, "optimized_queries::user_bookings", 20, || {
            optimized_queries::user_bookings(&db, user, with_payments)
        })
        .await?;
    assert_eq!(n_value, o_value, "both ways give the same bookings");
    row(
        &format!("a guest's {} bookings + payments", o_value.len()),
        (n_count, n_time),
        (o_count, o_time),
    );

    let (n_count, n_time, n_value) = measure(&tracker, "naive::all_availability", 20, || {
        naive::all_availability(&db, week, RoomCount::ONE)
    })
    .await?;
    let (o_count, o_time, o_value) =
        measure(&tracker, "optimized_queries::all_availability", 20, || {
            optimized_queries::all_availability(&db, week, RoomCount::ONE)
        })
        .await?;
    assert_eq!(n_value, o_value);
    row(
        "availability of every room type",
        (n_count, n_time),
        (o_count, o_time),
    );

    let (n_count, n_time, _) = measure(&tracker, "naive::room_types_on", 20, || {
        naive::room_types_on(&db, today)
    })
    .await?;
    let (o_count, o_time, _) = measure(&tracker, "optimized_queries::room_types_on", 20, || {
        optimized_queries::room_types_on(&db, today)
    })
    .await?;
    row(
        "room types with tonight",
        (n_count, n_time),
        (o_count, o_time),
    );

    let (n_count, n_time, n_value) = measure(&tracker, "naive::booking_statistics", 3, || {
        naive::booking_statistics(&db, year, None)
    })
    .await?;
    let (o_count, o_time, o_value) =
        measure(&tracker, "optimized_queries::booking_statistics", 3, || {
            optimized_queries::booking_statistics(&db, year, None)
        })
        .await?;
    assert_eq!(n_value, o_value);
    row(
        "one-year booking statistics",
        (n_count, n_time),
        (o_count, o_time),
    );

    let (n_count, n_time, _) = measure(&tracker, "naive::occupancy", 3, || {
        naive::occupancy(&db, year, None)
    })
    .await?;
    let (o_count, o_time, _) = measure(&tracker, "optimized_queries::occupancy", 3, || {
        optimized_queries::occupancy(&db, year, None)
    })
    .await?;
    row("one-year occupancy", (n_count, n_time), (o_count, o_time));

    println!("\nN+1 patterns perf-stats saw in the naive runs:");
    for finding in tracker.report().n_plus_one.iter().take(5) {
        println!(
            "  {} ran this {} times:\n    {}",
            finding.scope, finding.max_repeats, finding.fingerprint
        );
    }
    Ok(())
}
