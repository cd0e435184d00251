//! Human-readable output.

use backup::{
    BackupManifest, Listing, PruneReport, RestoreReport, VerifyReport, human_bytes as bytes,
    monitor,
};
use chrono::{DateTime, Utc};
use cli_support::table::{Align, Table};

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `verified`, `FAILED` or `unverified`.
pub(crate) fn status(m: &BackupManifest) -> &'static str {
    match &m.verification {
        Some(v) if v.ok => "verified",
        Some(_) => "FAILED",
        None => "unverified",
    }
}

pub(crate) fn created(m: &BackupManifest) -> String {
    let ratio = if m.compressed_bytes > 0 {
        m.raw_bytes as f64 / m.compressed_bytes as f64
    } else {
        0.0
    };
    format!(
        "created backup {} of {} ({}): {} -> {} (zstd -{}, {ratio:.1}x) in {:.1} s; {} tables, {} rows; migration {}",
        m.id,
        m.source,
        m.reason,
        bytes(m.raw_bytes),
        bytes(m.compressed_bytes),
        m.compression.level,
        m.duration_ms as f64 / 1000.0,
        m.tables.len(),
        m.total_rows(),
        m.migration_version.as_deref().unwrap_or("none"),
    )
}

pub(crate) fn verified(r: &VerifyReport) -> String {
    match &r.failure {
        None => format!(
            "backup {}: verified ({}; {} tables, row counts match the manifest) in {:.1} s",
            r.id,
            match r.depth {
                backup::VerifyDepth::Quick => "quick_check",
                _ => "integrity_check",
            },
            r.tables.len(),
            r.duration.as_secs_f64()
        ),
        Some(failure) => format!("backup {}: FAILED verification: {failure}", r.id),
    }
}

pub(crate) fn listing(listing: &Listing, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    if listing.backups.is_empty() {
        out.push_str("no backups\n");
    } else {
        let mut table = Table::new(&[
            ("ID", Align::Left),
            ("AGE", Align::Right),
            ("REASON", Align::Left),
            ("SIZE", Align::Right),
            ("RAW", Align::Right),
            ("STATUS", Align::Left),
            ("MIGRATION", Align::Left),
        ])
        .indent(0);
        for m in &listing.backups {
            table.row([
                m.id.as_str().to_owned(),
                age((now - m.created_at).num_seconds().max(0)),
                m.reason.as_str().to_owned(),
                bytes(m.compressed_bytes),
                bytes(m.raw_bytes),
                status(m).to_string(),
                m.migration_version.as_deref().unwrap_or("-").to_owned(),
            ]);
        }
        out.push_str(&table.to_string());
    }
    for ignored in &listing.ignored {
        out.push_str(&format!("ignored {}: {}\n", ignored.object, ignored.why));
    }
    out.trim_end().to_owned()
}

pub(crate) fn restored(r: &RestoreReport) -> String {
    let mut out = String::new();
    out.push_str(if r.executed {
        "plan carried out:\n"
    } else {
        "dry run; nothing was changed. The plan:\n"
    });
    for (i, step) in r.plan.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {step}\n", i + 1));
    }
    if r.executed {
        out.push_str(&format!(
            "restored backup {} into {} in {:.1} s ({} tables, {} rows)",
            r.plan.backup,
            r.plan.target,
            r.duration.as_secs_f64(),
            r.tables.len(),
            r.tables.values().sum::<u64>()
        ));
        if let Some(replayed) = &r.replayed {
            out.push_str(&format!(
                "\nreplayed {} transactions of generation {} (segments up to {}) on snapshot {}: the database as of {}",
                replayed.transactions,
                replayed.generation,
                replayed.last_seq,
                replayed.snapshot,
                replayed.as_of.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ));
        }
        if !r.check_duration.is_zero() {
            out.push_str(&format!(
                "\nof which the checks of the rebuilt copy (integrity_check, foreign_key_check): {:.1} s",
                r.check_duration.as_secs_f64()
            ));
        }
        if let Some(id) = &r.safety_backup {
            out.push_str(&format!("\nsafety backup of the replaced database: {id}"));
        }
        if let Some(db) = &r.replaced_database {
            out.push_str(&format!(
                "\nthe replaced database is kept as {db}; drop it once you are satisfied"
            ));
        }
        for f in &r.removed_files {
            out.push_str(&format!("\nremoved stale {}", f.display()));
        }
    }
    out.trim_end().to_owned()
}

pub(crate) fn pruned(r: &PruneReport) -> String {
    let mut out = String::new();
    for d in &r.decisions {
        out.push_str(&format!(
            "{:<12} {:<20} {:<14} {}\n",
            if d.keep {
                "keep"
            } else if r.dry_run {
                "would delete"
            } else {
                "delete"
            },
            d.id.as_str(),
            d.reason.as_str(),
            d.why.join("; ")
        ));
    }
    for f in &r.removed_files {
        out.push_str(&format!(
            "{} {f} (a data object without manifest)\n",
            if r.dry_run { "would remove" } else { "removed" },
        ));
    }
    for g in &r.generations {
        let verb = if r.dry_run { "would delete" } else { "delete" };
        match g.deleted_segments {
            Some((first, last)) => out.push_str(&format!(
                "{verb} segments {first}-{last} ({} segments, {}) of generation {}{}: {}\n",
                g.deleted_count,
                bytes(g.deleted_bytes),
                g.generation,
                if g.removes_generation {
                    ", and the generation"
                } else {
                    ""
                },
                g.why
            )),
            None if g.removes_generation => {
                out.push_str(&format!("{verb} generation {}: {}\n", g.generation, g.why))
            }
            None => out.push_str(&format!(
                "keep the {} segments of generation {}: {}\n",
                g.kept_segments, g.generation, g.why
            )),
        }
    }
    out.push_str(&format!(
        "{} backup(s) {}deleted, {} kept",
        r.deleted.len(),
        if r.dry_run { "would be " } else { "" },
        r.decisions.len() - r.deleted.len()
    ));
    out
}

pub(crate) fn health(r: &monitor::HealthReport) -> String {
    let mut out = r.nagios_line();
    for c in &r.checks {
        out.push_str(&format!(
            "\n{:<9} {:<12} {}",
            c.status.to_string(),
            c.name,
            c.message
        ));
    }
    out
}
