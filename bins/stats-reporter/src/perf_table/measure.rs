//! Timing the operations: indexed variants first, then the naive baseline without the
//! composite-index migration, which is re-applied afterwards whatever happened.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use indicatif::ProgressBar;
use optimized_queries::HotelCache;
use perf_stats::{LatencyHistogram, LatencySummary};
use query_baselines::workload::{Operation, Variant, Workload};
use query_cache::QueryCache;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::{Row, Setup, original};
use crate::{cli::PerfTableArgs, progress};

pub(super) async fn measure_all(
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
    migration::drop_composite_indexes(db)
        .await
        .context("while dropping the composite indexes")?;
    analyze(db).await?;
    let drop_indexes = started.elapsed();
    let naive = async {
        let mut naive = Vec::new();
        for op in Operation::ALL {
            naive.push(measure(&workload, op, Variant::Naive, args, &bar).await?);
        }
        Ok::<_, anyhow::Error>(naive)
    }
    .await;
    // The indexes come back even when a naive run failed: the database is left migrated.
    bar.set_message("re-creating the indexes");
    let started = Instant::now();
    migration::create_composite_indexes(db)
        .await
        .context("while re-creating the composite indexes")?;
    analyze(db).await?;
    let create_indexes = started.elapsed();
    let naive = naive?;
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
