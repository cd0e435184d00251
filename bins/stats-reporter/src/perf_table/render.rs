//! The table for a terminal and as markdown for docs/PERFORMANCE.md.

use std::fmt::Write as _;

use super::{PerfTable, Row};
use crate::table::{self, Align, Table};

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
/// A row's cells, in the column order of both renderings.
fn cells(row: &Row) -> [String; 10] {
    [
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
    ]
}

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

const LEGEND: &str = "naive = query_baselines::naive (fetch then filter, N+1 loops, \
aggregation in Rust) on the database WITHOUT the composite-index migration; optimized = the \
optimized-queries helpers WITH it; cached = the same through a warm HotelCache (user bookings \
cached without payments, which are never cached; a booking is a write and is never cached). \
Factors are naive p50 / optimized p50 and naive p50 / cached p50.";

pub(super) fn render(report: &PerfTable) -> String {
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
        table.row(cells(row));
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

pub(super) fn markdown(report: &PerfTable) -> String {
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
        let mut cells = cells(row);
        // The headline figure: naive over optimized.
        cells[7] = format!("**{}**", cells[7]);
        let _ = writeln!(out, "| {} |", cells.join(" | "));
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
}
