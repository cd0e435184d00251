//! `analyze-queries`: a running server's top query shapes, or the hot queries timed against a
//! database.

use std::{fmt::Write, time::Instant};

use anyhow::Context;
use db_connect::Backend;
use perf_stats::{LatencyHistogram, LatencySummary, QueryReport, SortKey};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use serde::Serialize;

use crate::{
    Outcome,
    admin_api::{AdminClient, snake_case_keys},
    cli::{AnalyzeQueriesArgs, SortBy},
    database, progress, sample,
    table::{self, Align, Table},
};

pub(crate) async fn run(args: &AnalyzeQueriesArgs, json: bool) -> anyhow::Result<Outcome> {
    match &args.database_url {
        Some(url) => from_database(args, url, json).await,
        None => from_server(args, json).await,
    }
}

// ---- a running server ------------------------------------------------------------------

async fn from_server(args: &AnalyzeQueriesArgs, json: bool) -> anyhow::Result<Outcome> {
    let client = AdminClient::new(&args.server)?;
    let mut raw: serde_json::Value = client.get("/api/admin/queries").await?;
    let mut report: QueryReport = serde_json::from_value(snake_case_keys(raw.clone()))
        .map_err(|e| {
            anyhow::anyhow!(
                "{} answered query statistics in an unexpected shape ({e}): is it a hotel-server of this version?",
                client.base()
            )
        })?;
    let top: Vec<_> = report
        .top(SortKey::from(args.sort), args.top)
        .into_iter()
        .cloned()
        .collect();
    let shapes = report.queries.len();
    report.queries = top;
    if json {
        // The endpoint's document, with `queries` cut to the top N in the order asked for.
        let mut by_id: std::collections::HashMap<String, serde_json::Value> = raw["queries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| Some((q["fingerprintId"].as_str()?.to_owned(), q.clone())))
            .collect();
        raw["queries"] = report
            .queries
            .iter()
            .filter_map(|q| by_id.remove(&q.fingerprint_id.to_string()))
            .collect();
        println!("{}", serde_json::to_string_pretty(&raw)?);
    } else {
        print!(
            "{}",
            render_server(&report, client.base().as_str(), args.sort, shapes)
        );
    }
    Ok(Outcome::Ok)
}

fn render_server(report: &QueryReport, url: &str, sort: SortBy, shapes: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Queries of {url} since {}: {} statements ({} failed, {} slow at >= {}), {} of database time, {shapes} shapes",
        report.since.format("%Y-%m-%d %H:%M:%S UTC"),
        report.statements,
        report.errors,
        report.slow_statements,
        table::duration(report.slow_threshold),
        table::duration(report.database_time),
    );
    let _ = writeln!(out);
    if report.queries.is_empty() {
        let _ = writeln!(out, "  no statements recorded yet");
    } else {
        let _ = writeln!(out, "Top {} by {}:", report.queries.len(), sort.describe());
        let mut table = Table::new(&[
            ("#", Align::Right),
            ("calls", Align::Right),
            ("errors", Align::Right),
            ("total ms", Align::Right),
            ("mean ms", Align::Right),
            ("p50 ms", Align::Right),
            ("p95 ms", Align::Right),
            ("p99 ms", Align::Right),
            ("max ms", Align::Right),
            ("query", Align::Left),
        ]);
        for (i, q) in report.queries.iter().enumerate() {
            table.row([
                (i + 1).to_string(),
                q.calls.to_string(),
                q.errors.to_string(),
                table::millis(q.total),
                table::millis(q.mean),
                table::millis(q.p50),
                table::millis(q.p95),
                table::millis(q.p99),
                table::millis(q.max),
                table::abbreviate_sql(&q.fingerprint, 120),
            ]);
        }
        let _ = write!(out, "{table}");
    }
    if !report.n_plus_one.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Likely N+1 queries (one shape repeated >= {} times in one request):",
            report.n_plus_one_threshold
        );
        let mut table = Table::new(&[
            ("scope", Align::Left),
            ("requests", Align::Right),
            ("max repeats", Align::Right),
            ("query", Align::Left),
        ]);
        for n in &report.n_plus_one {
            table.row([
                n.scope.clone(),
                n.occurrences.to_string(),
                n.max_repeats.to_string(),
                table::abbreviate_sql(&n.fingerprint, 120),
            ]);
        }
        let _ = write!(out, "{table}");
    }
    if !report.slow_queries.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Recent slow queries (newest first):");
        let mut table = Table::new(&[
            ("at (UTC)", Align::Left),
            ("ms", Align::Right),
            ("failed", Align::Left),
            ("query", Align::Left),
        ]);
        for s in &report.slow_queries {
            table.row([
                s.at.format("%H:%M:%S%.3f").to_string(),
                table::millis(s.duration),
                if s.failed { "yes" } else { "" }.to_owned(),
                table::abbreviate_sql(&s.sql, 120),
            ]);
        }
        let _ = write!(out, "{table}");
    }
    out
}

// ---- a database --------------------------------------------------------------------------

/// One hot query's timings, as `--json` prints them.
#[derive(Debug, Serialize)]
struct Timed {
    name: &'static str,
    /// Whether it writes (run in a rolled-back transaction).
    write: bool,
    /// Rows the last run returned or changed.
    rows: u64,
    latency: LatencySummary,
}

#[derive(Debug, Serialize)]
struct DatabaseReport {
    database: String,
    backend: &'static str,
    runs: u64,
    warmup: u64,
    room_type_id: i64,
    user_id: i64,
    today: chrono::NaiveDate,
    queries: Vec<Timed>,
}

/// Whether a statement may change data: anything but a query (`SELECT`, `WITH`, `VALUES`).
fn is_write(sql: &str) -> bool {
    let first = sql
        .split(|c: char| c.is_whitespace() || c == '(')
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    !["SELECT", "WITH", "VALUES"]
        .iter()
        .any(|read| first.eq_ignore_ascii_case(read))
}

/// Runs `statement` once: how long it took and the rows it returned or changed. A write runs
/// in a transaction that is rolled back after the clock stops, so the database is left as it
/// was.
async fn time_once(
    db: &DatabaseConnection,
    statement: &Statement,
    write: bool,
) -> anyhow::Result<(std::time::Duration, u64)> {
    if write {
        let txn = db.begin().await?;
        let started = Instant::now();
        let result = txn.execute_raw(statement.clone()).await?;
        let elapsed = started.elapsed();
        txn.rollback().await?;
        Ok((elapsed, result.rows_affected()))
    } else {
        let started = Instant::now();
        let rows = db.query_all_raw(statement.clone()).await?;
        Ok((started.elapsed(), rows.len() as u64))
    }
}

async fn from_database(
    args: &AnalyzeQueriesArgs,
    url: &str,
    json: bool,
) -> anyhow::Result<Outcome> {
    let db = database::open_existing(url).await?;
    let backend = Backend::of_connection(&db);
    let picked = sample::pick(&db, &args.sample).await?;
    let hot = optimized_queries::hot_queries(&db, &picked);
    let bar = progress::bar(
        hot.len() as u64 * (args.runs + args.warmup),
        "running hot queries",
    );
    let mut timed = Vec::with_capacity(hot.len());
    for query in &hot {
        bar.set_message(query.name);
        let write = is_write(&query.statement.sql);
        // Untimed: the first run on each pooled connection prepares the statement, and the
        // first ones read pages from disk.
        let mut rows = 0;
        for _ in 0..args.warmup {
            rows = time_once(&db, &query.statement, write)
                .await
                .with_context(|| format!("while running the hot query {}", query.name))?
                .1;
            bar.inc(1);
        }
        let mut latency = LatencyHistogram::new();
        for _ in 0..args.runs {
            let (elapsed, n) = time_once(&db, &query.statement, write)
                .await
                .with_context(|| format!("while running the hot query {}", query.name))?;
            latency.record(elapsed);
            rows = n;
            bar.inc(1);
        }
        timed.push(Timed {
            name: query.name,
            write,
            rows,
            latency: latency.summary(),
        });
    }
    bar.finish_and_clear();
    db.close().await.context("while closing the connection")?;
    let report = DatabaseReport {
        database: db_connect::redact_password(url),
        backend: backend.name(),
        runs: args.runs,
        warmup: args.warmup,
        room_type_id: picked.room_type_id,
        user_id: picked.user_id,
        today: picked.today,
        queries: timed,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_database(&report));
    }
    Ok(Outcome::Ok)
}

fn render_database(report: &DatabaseReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Hot queries on {} ({}), {} timed runs each after {} warm-up (room type {}, user {}, today {}):",
        report.database,
        report.backend,
        report.runs,
        report.warmup,
        report.room_type_id,
        report.user_id,
        report.today
    );
    let mut table = Table::new(&[
        ("query", Align::Left),
        ("rows", Align::Right),
        ("mean", Align::Right),
        ("p50", Align::Right),
        ("p95", Align::Right),
        ("p99", Align::Right),
        ("max", Align::Right),
        ("", Align::Left),
    ]);
    for q in &report.queries {
        table.row([
            q.name.to_owned(),
            q.rows.to_string(),
            table::duration(q.latency.mean),
            table::duration(q.latency.p50),
            table::duration(q.latency.p95),
            table::duration(q.latency.p99),
            table::duration(q.latency.max),
            if q.write { "write, rolled back" } else { "" }.to_owned(),
        ]);
    }
    let _ = write!(out, "{table}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_told_from_reads() {
        assert!(is_write("UPDATE room_inventory SET available_rooms = 1"));
        assert!(is_write("  insert into t values (1)"));
        assert!(!is_write("SELECT * FROM bookings"));
        assert!(!is_write("select 1"));
        assert!(!is_write("(SELECT 1) UNION (SELECT 2)"));
        assert!(!is_write("WITH x AS (SELECT 1) SELECT * FROM x"));
    }
}
