//! Retention with a fixed clock, on backup directories laid out as a year of use leaves them.

use std::path::Path;

use backup::{BackupRepository, RetentionPolicy};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;

use crate::support::files;

const M1: &str = "m20250101_000001_create";
const M2: &str = "m20250310_000002_more";

/// Writes a backup's manifest and (dummy) data file as `create` would have.
fn write_backup(
    dir: &Path,
    at: DateTime<Utc>,
    reason: &str,
    verified: Option<bool>,
    migration: &str,
) -> String {
    let id = at.format("%Y%m%dT%H%M%SZ").to_string();
    let file = format!("{id}.sqlite.zst");
    std::fs::write(dir.join(&file), b"z").unwrap();
    let verification = verified.map(|ok| {
        json!({
            "verified_at": (at + Duration::minutes(5)).to_rfc3339(),
            "ok": ok,
            "depth": "full",
            "failure": if ok { serde_json::Value::Null } else { json!({"kind": "data-file-missing"}) },
            "duration_ms": 10
        })
    });
    let manifest = json!({
        "format_version": 1,
        "id": id,
        "created_at": at.to_rfc3339(),
        "database": "sqlite",
        "source": "data/app.sqlite",
        "file": file,
        "snapshot_method": "sqlite-page-stream",
        "compression": {"algorithm": "zstd", "level": 3},
        "raw_bytes": 4096,
        "compressed_bytes": 1,
        "sha256": "0".repeat(64),
        "tables": {"t": 1},
        "migration_version": migration,
        "tool_version": "backup 0.1.0",
        "reason": reason,
        "duration_ms": 1,
        "verification": verification,
    });
    std::fs::write(
        dir.join(format!("{id}.json")),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    id
}

fn day(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(
        &NaiveDate::from_ymd_opt(2025, m, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap(),
    )
}

fn kept_ids(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
        .filter(|f| f != "last-run")
        .collect()
}

/// A year of daily backups at 02:00 UTC, with a pre-migration backup before a migration that
/// succeeded, one before a migration that did not, and one backup that failed verification.
#[tokio::test]
async fn a_year_of_daily_backups_keeps_exactly_the_expected_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut at = day(1, 1, 2);
    while at < day(12, 31, 3) {
        let migration = if at < day(3, 10, 12) { M1 } else { M2 };
        write_backup(dir.path(), at, "scheduled", Some(true), migration);
        at += Duration::days(1);
    }
    let succeeded_gate = write_backup(dir.path(), day(3, 10, 12), "pre-migration", Some(true), M1);
    let open_gate = write_backup(dir.path(), day(12, 20, 12), "pre-migration", Some(true), M2);
    let failed = write_backup(dir.path(), day(12, 30, 12), "manual", Some(false), M2);
    let repo = BackupRepository::open(dir.path()).unwrap();
    assert_eq!(repo.list().await.unwrap().backups.len(), 365 + 3);

    let policy = RetentionPolicy {
        keep_last: 3,
        keep_daily: 7,
        keep_weekly: 4,
        keep_monthly: 6,
        pre_migration_newer: 3,
    };
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();

    // The dry run explains every decision and deletes nothing.
    let plan = repo.prune(&policy, now, true).await.unwrap();
    assert!(plan.dry_run);
    assert_eq!(repo.list().await.unwrap().backups.len(), 368);
    let why = |id: &str| {
        plan.decisions
            .iter()
            .find(|d| d.id.as_str() == id)
            .unwrap()
            .why
            .join("; ")
    };
    assert_eq!(
        why("20251231T020000Z"),
        "keep-last #1; keep-daily 2025-12-31; keep-weekly 2026-W01; keep-monthly 2025-12; the newest verified backup"
    );
    assert_eq!(why("20251221T020000Z"), "keep-weekly 2025-W51");
    assert_eq!(why("20250731T020000Z"), "keep-monthly 2025-07");
    assert!(
        why(&open_gate)
            .contains("protected until 3 newer backup(s) at a later migration exist (0 so far)"),
        "{}",
        why(&open_gate)
    );
    assert_eq!(
        why(&succeeded_gate),
        "matches no keep rule, and a newer verified backup exists"
    );
    assert_eq!(
        why(&failed),
        "failed verification, and a newer verified backup exists"
    );
    assert_eq!(
        why("20250630T020000Z"),
        "matches no keep rule, and a newer verified backup exists"
    );

    let report = repo.prune(&policy, now, false).await.unwrap();
    assert_eq!(report.deleted.len(), 368 - 15);
    let mut expected: Vec<String> = [
        (12, 31),
        (12, 30),
        (12, 29),
        (12, 28),
        (12, 27),
        (12, 26),
        (12, 25), // last 3, daily 7
        (12, 21),
        (12, 14), // weekly
        (11, 30),
        (10, 31),
        (9, 30),
        (8, 31),
        (7, 31), // monthly
    ]
    .iter()
    .map(|&(m, d)| day(m, d, 2).format("%Y%m%dT%H%M%SZ").to_string())
    .collect();
    expected.push(open_gate.clone());
    expected.sort();
    assert_eq!(kept_ids(dir.path()), expected);
    // Data files went with their manifests.
    assert_eq!(
        files(dir.path())
            .iter()
            .filter(|f| f.ends_with(".zst"))
            .count(),
        15
    );

    // Once the new schema has been backed up three times, the open gate's backup may go too.
    for d in 1..=3 {
        let at = Utc.with_ymd_and_hms(2026, 1, d, 2, 0, 0).unwrap();
        write_backup(
            dir.path(),
            at,
            "scheduled",
            Some(true),
            "m20260101_000003_later",
        );
    }
    let later = Utc.with_ymd_and_hms(2026, 1, 4, 0, 0, 0).unwrap();
    let report = repo.prune(&policy, later, false).await.unwrap();
    assert!(report.deleted.iter().any(|id| id.as_str() == open_gate));
}

/// Nothing is deleted on the strength of backups that were never verified.
#[tokio::test]
async fn nothing_is_deleted_without_a_newer_verified_backup() {
    let dir = tempfile::tempdir().unwrap();
    let oldest = write_backup(dir.path(), day(6, 1, 2), "scheduled", Some(true), M2);
    let mut newer = Vec::new();
    for d in 2..=10 {
        newer.push(write_backup(
            dir.path(),
            day(6, d, 2),
            "scheduled",
            None,
            M2,
        ));
    }
    let repo = BackupRepository::open(dir.path()).unwrap();
    let policy = RetentionPolicy {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        pre_migration_newer: 1,
    };
    let now = day(6, 11, 0);
    let report = repo.prune(&policy, now, false).await.unwrap();
    assert!(report.deleted.is_empty(), "{:?}", report.deleted);
    let oldest_decision = report
        .decisions
        .iter()
        .find(|d| d.id.as_str() == oldest)
        .unwrap();
    assert_eq!(oldest_decision.why, ["the newest verified backup"]);
    let middle = report
        .decisions
        .iter()
        .find(|d| d.id.as_str() == newer[3])
        .unwrap();
    assert_eq!(middle.why, ["no newer verified backup exists yet"]);

    // Once the newest is verified, everything but it may go.
    let newest = newer.last().unwrap();
    let path = dir.path().join(format!("{newest}.json"));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["verification"] = json!({"verified_at": now.to_rfc3339(), "ok": true, "depth": "full", "failure": null, "duration_ms": 1});
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let report = repo.prune(&policy, now, false).await.unwrap();
    assert_eq!(report.deleted.len(), 9);
    assert_eq!(kept_ids(dir.path()), std::slice::from_ref(newest));
}

#[tokio::test]
async fn a_policy_that_keeps_nothing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_backup(dir.path(), day(6, 1, 2), "scheduled", Some(true), M2);
    let repo = BackupRepository::open(dir.path()).unwrap();
    let policy = RetentionPolicy {
        keep_last: 0,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        pre_migration_newer: 1,
    };
    let err = repo.prune(&policy, day(6, 2, 0), false).await.unwrap_err();
    assert!(matches!(err, backup::Error::InvalidConfig(_)), "{err}");
    assert_eq!(kept_ids(dir.path()).len(), 1);
}

/// Retention waits for the directory's lock: it never deletes what a restore is reading.
#[tokio::test]
async fn prune_waits_for_the_lock_of_a_running_operation() {
    let dir = tempfile::tempdir().unwrap();
    write_backup(dir.path(), day(6, 1, 2), "scheduled", Some(true), M2);
    write_backup(dir.path(), day(6, 2, 2), "scheduled", Some(true), M2);
    let repo = BackupRepository::open(dir.path()).unwrap();
    let lock = std::fs::File::create(dir.path().join(".lock")).unwrap();
    lock.try_lock().unwrap();
    let policy = RetentionPolicy {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        pre_migration_newer: 1,
    };
    let err = repo.prune(&policy, day(6, 3, 0), false).await.unwrap_err();
    assert!(matches!(err, backup::Error::LockHeld { .. }), "{err}");
    assert_eq!(
        kept_ids(dir.path()).len(),
        2,
        "nothing deleted while locked"
    );
    drop(lock);
    let report = repo.prune(&policy, day(6, 3, 0), false).await.unwrap();
    assert_eq!(report.deleted.len(), 1);
}
