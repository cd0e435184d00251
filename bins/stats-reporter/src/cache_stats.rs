//! `cache-stats`: a running server's cache statistics with the original's assessment, read
//! live from the server (the original script read an empty cache in a process of its own).

use std::fmt::Write;

use serde::Deserialize;

use crate::{Outcome, admin_api::AdminClient, cli::CacheStatsArgs, marks::Marks};

/// The fields of the cache statistics this report reads, as the server serialises them
/// (camelCase, like every body of its API).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    hits: u64,
    misses: u64,
    hit_ratio: f64,
    hits_per_entry: f64,
    stale_hits: u64,
    loads: u64,
    load_errors: u64,
    mean_load_time_ms: f64,
    single_flight_joins: u64,
    evictions: u64,
    expirations: u64,
    invalidations: u64,
    entries: u64,
    capacity: u64,
    fill_percent: f64,
}

/// `GET /api/admin/cache/stats`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheReport {
    stats: Stats,
    assessment: String,
    assessment_text: String,
}

impl CacheReport {
    fn lookups(&self) -> u64 {
        self.stats.hits + self.stats.misses
    }

    /// Whether enough lookups were served for the assessment to mean something.
    fn is_assessable(&self, min_lookups: u64) -> bool {
        self.lookups() >= min_lookups.max(1)
    }

    /// Poor reuse over enough lookups.
    fn is_unhealthy(&self, min_lookups: u64) -> bool {
        self.assessment == "poor" && self.is_assessable(min_lookups)
    }
}

pub(crate) async fn run(args: &CacheStatsArgs, json: bool) -> anyhow::Result<Outcome> {
    let client = AdminClient::new(&args.server)?;
    let raw: serde_json::Value = client.get("/api/admin/cache/stats").await?;
    let report: CacheReport = serde_json::from_value(raw.clone()).map_err(|e| {
        anyhow::anyhow!(
            "{} answered cache statistics in an unexpected shape ({e}): is it a hotel-server of this version?",
            client.base()
        )
    })?;
    if json {
        // The server's own document, so scripts read the same fields as the endpoint.
        println!("{}", serde_json::to_string_pretty(&raw)?);
    } else {
        print!(
            "{}",
            render(
                &report,
                client.base().as_str(),
                args.min_lookups,
                Marks::for_stdout()
            )
        );
    }
    Ok(if report.is_unhealthy(args.min_lookups) {
        Outcome::CheckFailed
    } else {
        Outcome::Ok
    })
}

fn render(report: &CacheReport, url: &str, min_lookups: u64, marks: Marks) -> String {
    let s = &report.stats;
    let mut out = String::new();
    let mut line = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    line(format!(
        "{}Cache Performance Statistics ({url})",
        marks.pick("📊 ", "")
    ));
    line(String::new());
    line(format!("{}Cache Size:", marks.pick("📦 ", "")));
    line(format!(
        "  Current: {} / {} entries ({:.1}% full)",
        s.entries, s.capacity, s.fill_percent
    ));
    line(String::new());
    line(format!("{}Cache Efficiency:", marks.pick("🎯 ", "")));
    let rows = [
        ("Total Hits", s.hits.to_string()),
        ("Misses", s.misses.to_string()),
        (
            "Hit Ratio",
            if report.lookups() == 0 {
                "n/a (no lookups yet)".to_owned()
            } else {
                format!(
                    "{:.1} % of {} lookups answered from the cache",
                    s.hit_ratio * 100.0,
                    report.lookups()
                )
            },
        ),
        ("Hits per Entry", format!("{:.2}", s.hits_per_entry)),
        ("Stale Hits", s.stale_hits.to_string()),
        (
            "Expired Entries",
            format!("{} (removed after their TTL)", s.expirations),
        ),
        (
            "Evictions",
            format!("{} (to stay within capacity)", s.evictions),
        ),
        (
            "Invalidations",
            format!("{} (after writes)", s.invalidations),
        ),
        (
            "Loads",
            format!(
                "{} ({} failed, {} callers joined a running load), mean {:.3} ms",
                s.loads, s.load_errors, s.single_flight_joins, s.mean_load_time_ms
            ),
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in rows {
        line(format!("  {:<width$} {value}", format!("{key}:")));
    }
    line(String::new());
    line(format!("{}Performance Assessment:", marks.pick("📈 ", "")));
    if report.is_assessable(min_lookups) {
        let mark = match report.assessment.as_str() {
            "excellent" => marks.pick("✅", "[ok]"),
            "good" => marks.pick("⚠️ ", "[fair]"),
            _ => marks.pick("❌", "[poor]"),
        };
        line(format!("  {mark} {}", report.assessment_text));
    } else {
        line(format!(
            "  {}Too few lookups to assess: {} so far, --min-lookups is {min_lookups} (the server reads: {})",
            marks.pick("ℹ️  ", ""),
            report.lookups(),
            report.assessment_text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(hits: u64, misses: u64, entries: u64, assessment: &str) -> CacheReport {
        let json = serde_json::json!({
            "stats": {
                "hits": hits, "misses": misses,
                "hitRatio": if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 },
                "hitsPerEntry": if entries == 0 { 0.0 } else { hits as f64 / entries as f64 },
                "staleHits": 0, "loads": misses, "loadErrors": 0, "abandonedLoads": 0,
                "discardedLoads": 0, "rejected": 0, "singleFlightJoins": 0,
                "totalLoadTimeMs": 10.0, "meanLoadTimeMs": 1.25, "inserts": misses,
                "evictions": 0, "expirations": 12, "invalidations": 3, "entries": entries,
                "capacity": 1000, "fillPercent": entries as f64 / 10.0, "weight": 0, "maxWeight": null
            },
            "assessment": assessment,
            "assessmentText": format!("{assessment} text"),
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn renders_the_originals_sections_with_a_true_hit_ratio() {
        let r = report(1567, 233, 234, "excellent");
        let text = render(&r, "http://127.0.0.1:3000/", 100, Marks::emoji(true));
        assert!(text.contains("📊 Cache Performance Statistics"), "{text}");
        assert!(
            text.contains("Current: 234 / 1000 entries (23.4% full)"),
            "{text}"
        );
        assert!(text.contains("Total Hits:      1567"), "{text}");
        assert!(text.contains("Hits per Entry:  6.70"), "{text}");
        assert!(
            text.contains("Hit Ratio:       87.1 % of 1800 lookups"),
            "{text}"
        );
        assert!(text.contains("Expired Entries: 12"), "{text}");
        assert!(text.contains("✅ excellent text"), "{text}");
        assert!(!r.is_unhealthy(100));
    }

    #[test]
    fn poor_reuse_is_unhealthy_only_after_enough_lookups() {
        let poor = report(1, 40, 40, "poor");
        assert!(poor.is_unhealthy(41));
        assert!(!poor.is_unhealthy(42));
        let text = render(&poor, "http://h/", 100, Marks::emoji(true));
        assert!(
            text.contains("Too few lookups to assess: 41 so far, --min-lookups is 100"),
            "{text}"
        );
        assert!(render(&poor, "http://h/", 10, Marks::emoji(true)).contains("❌ poor text"));
        let idle = report(0, 0, 2, "poor");
        assert!(!idle.is_unhealthy(0), "no lookups: nothing to assess");
        let text = render(&idle, "http://h/", 0, Marks::emoji(true));
        assert!(text.contains("Hit Ratio:       n/a"), "{text}");
    }

    #[test]
    fn piped_output_has_words_instead_of_emoji() {
        let poor = report(1, 40, 40, "poor");
        for min_lookups in [10, 100] {
            let text = render(&poor, "http://h/", min_lookups, Marks::emoji(false));
            assert!(!crate::marks::has_emoji(&text), "{text}");
        }
        let text = render(&poor, "http://h/", 10, Marks::emoji(false));
        assert!(text.starts_with("Cache Performance Statistics"), "{text}");
        assert!(text.contains("[poor] poor text"), "{text}");
        assert!(crate::marks::has_emoji(&render(
            &poor,
            "http://h/",
            10,
            Marks::emoji(true)
        )));
    }
}
