//! `check-indexes`: the database's indexes against the composite-index migration, and the real
//! plans of the hot queries.

use std::fmt::Write;

use anyhow::Context;
use db_connect::Backend;
use migration::EXPECTED_INDEXES;
use optimized_queries::HotQuerySample;
use perf_stats::{
    ExpectedIndex, HotQuery, IndexComparison, PlanCheck, PlanOptions, PlanVerdict, check_plans,
    compare_indexes,
};
use serde::Serialize;

use crate::{
    Outcome,
    cli::{CheckIndexesArgs, PlanMode},
    database,
    marks::Marks,
    sample,
    table::{Align, Table},
};

/// The share of hot queries an index should serve (the original system's target).
const TARGET_SHARE: f64 = 0.95;

/// Everything `check-indexes` found, as `--json` prints it.
#[derive(Debug, Serialize)]
struct IndexReport {
    database: String,
    backend: &'static str,
    plan_mode: &'static str,
    sample: Sample,
    indexes: IndexComparison,
    plans: PlanCheck,
    /// Whether every expected index is there and no hot query scans.
    ok: bool,
}

#[derive(Debug, Serialize)]
struct Sample {
    room_type_id: i64,
    user_id: i64,
    today: chrono::NaiveDate,
}

impl From<HotQuerySample> for Sample {
    fn from(s: HotQuerySample) -> Self {
        Self {
            room_type_id: s.room_type_id,
            user_id: s.user_id,
            today: s.today,
        }
    }
}

/// The registry's expected indexes ([`migration::EXPECTED_INDEXES`]), as perf-stats expects them.
pub(crate) fn expected_indexes() -> Vec<ExpectedIndex> {
    EXPECTED_INDEXES
        .iter()
        .map(|spec| ExpectedIndex::new(spec.name, spec.table, spec.columns.iter().copied()))
        .collect()
}

pub(crate) async fn run(args: &CheckIndexesArgs, json: bool) -> anyhow::Result<Outcome> {
    let db = database::open_existing(&args.database_url).await?;
    let backend = Backend::of_connection(&db);
    let indexes = compare_indexes(&db, &expected_indexes())
        .await
        .context("while listing the database's indexes")?;
    let picked = sample::pick(&db, &args.sample).await?;
    let hot: Vec<HotQuery> = optimized_queries::hot_queries(&db, &picked)
        .into_iter()
        .map(|h| HotQuery::new(h.name, h.statement))
        .collect();
    let options = match args.plans {
        PlanMode::Forced => PlanOptions::default(),
        PlanMode::Realistic => PlanOptions::realistic(),
    };
    let plans = check_plans(&db, &hot, &options)
        .await
        .context("while explaining the hot queries")?;
    db.close().await.context("while closing the connection")?;

    let ok = indexes.missing.is_empty() && indexes.mismatched.is_empty() && !plans.has_problems();
    let report = IndexReport {
        database: db_connect::redact_password(&args.database_url),
        backend: backend.name(),
        plan_mode: match args.plans {
            PlanMode::Forced => "forced",
            PlanMode::Realistic => "realistic",
        },
        sample: picked.into(),
        indexes,
        plans,
        ok,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, Marks::for_stdout()));
    }
    Ok(if ok {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}

fn verdict(v: PlanVerdict) -> &'static str {
    match v {
        PlanVerdict::Indexed => "index used",
        PlanVerdict::Unfiltered => "no filter",
        PlanVerdict::FullScan => "FULL SCAN",
        PlanVerdict::AutomaticIndex => "AUTOMATIC INDEX",
    }
}

fn render(report: &IndexReport, marks: Marks) -> String {
    let mut out = String::new();
    let mut line = |text: &str| {
        let _ = writeln!(out, "{text}");
    };
    line(&format!(
        "Indexes of {} ({}) against the composite-index migration:",
        report.database, report.backend
    ));
    // perf-stats' own summary: counts, then MISSING / MISMATCH / UNEXPECTED lines.
    for l in report.indexes.to_string().lines() {
        line(&format!("  {}", l.trim_start()));
    }
    if !report.indexes.unexpected.is_empty() {
        line(
            "  (an undeclared index slows every write to its table: declare it in a migration or drop it)",
        );
    }

    line("");
    let mode = match (report.backend, report.plan_mode) {
        ("postgres", "forced") => {
            "; PostgreSQL plans with sequential scans disabled (--plans forced)"
        }
        ("postgres", _) => "; PostgreSQL plans as the planner chooses (--plans realistic)",
        _ => "",
    };
    line(&format!(
        "Hot query plans (room type {}, user {}, today {}{mode}):",
        report.sample.room_type_id, report.sample.user_id, report.sample.today
    ));
    let mut table = Table::new(&[
        ("query", Align::Left),
        ("verdict", Align::Left),
        ("temp sort", Align::Left),
        ("index used / table scanned", Align::Left),
    ]);
    for q in &report.plans.queries {
        let how = match q.verdict {
            PlanVerdict::FullScan => format!("scans {}", q.full_scans.join(", ")),
            PlanVerdict::AutomaticIndex => "SQLite builds a temporary index per statement".into(),
            _ => q.indexes_used.join(", "),
        };
        table.row([
            q.name.clone(),
            verdict(q.verdict).to_owned(),
            if q.temp_sort { "yes" } else { "" }.to_owned(),
            how,
        ]);
    }
    for l in table.to_string().lines() {
        line(l);
    }
    let plans = &report.plans;
    line(&format!(
        "  served by an index: {}/{} filtering hot queries ({:.1} %; target above {:.0} %) {}",
        plans.indexed,
        plans.filtered,
        plans.share_indexed * 100.0,
        TARGET_SHARE * 100.0,
        if plans.share_indexed > TARGET_SHARE {
            marks.pick("✅", "(met)")
        } else {
            marks.pick("❌", "(missed)")
        }
    ));

    let suggestions: Vec<_> = plans
        .queries
        .iter()
        .flat_map(|q| q.suggestions.iter().map(move |s| (q, s)))
        .collect();
    if !suggestions.is_empty() {
        line("");
        line("Suggested indexes:");
        for (q, s) in suggestions {
            line(&format!("  for {} ({}):", q.name, verdict(q.verdict)));
            line(&format!("    {}", s.sql));
            if let Some(existing) = &s.existing_index {
                line(&format!(
                    "    (the existing index {existing} has these leading columns; the planner did not use it)"
                ));
            }
            line("    as a migration step:");
            for l in s.migration.lines() {
                line(&format!("      {l}"));
            }
        }
    }

    line("");
    let mut problems = Vec::new();
    if !report.indexes.missing.is_empty() {
        let names: Vec<&str> = report
            .indexes
            .missing
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        problems.push(format!(
            "{} missing index(es): {} (apply them: `cargo run -p migration -- up`)",
            names.len(),
            names.join(", ")
        ));
    }
    if !report.indexes.mismatched.is_empty() {
        let names: Vec<&str> = report
            .indexes
            .mismatched
            .iter()
            .map(|m| m.expected.name.as_str())
            .collect();
        problems.push(format!("index(es) on other columns: {}", names.join(", ")));
    }
    let scanning: Vec<&str> = plans
        .queries
        .iter()
        .filter(|q| q.is_problem())
        .map(|q| q.name.as_str())
        .collect();
    if !scanning.is_empty() {
        problems.push(format!(
            "{} hot quer{} without an index: {}",
            scanning.len(),
            if scanning.len() == 1 { "y" } else { "ies" },
            scanning.join(", ")
        ));
        if report.backend == "postgres" && report.plan_mode == "realistic" {
            problems.push(
                "(realistic PostgreSQL plans scan small tables whatever the indexes: \
                 try --plans forced unless this is production-sized data)"
                    .into(),
            );
        }
    }
    if problems.is_empty() {
        line(&format!(
            "{}OK: every expected index is present and every hot query is served by an index",
            marks.pick("✅ ", "")
        ));
    } else {
        line(&format!("{}FAILED:", marks.pick("❌ ", "")));
        for p in problems {
            line(&format!("  {p}"));
        }
    }
    out
}
