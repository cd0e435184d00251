//! Which backups to keep: restic's keep-last / keep-daily / keep-weekly / keep-monthly rules in
//! UTC buckets, plus the protections that make pruning safe.

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use crate::{BackupId, BackupManifest, Error, Reason, Result};

/// How many backups to keep.
///
/// The bucket rules follow restic: going from the newest backup to the oldest, `keep_daily: 7`
/// keeps the newest backup of each of the 7 most recent UTC days that have backups; weekly
/// buckets are ISO weeks, monthly ones calendar months. A backup kept by several rules is kept
/// once. Backups that failed verification count for no rule.
///
/// On top of the rules, a backup is always kept when
/// - it is the newest verified backup;
/// - it is a pre-migration backup, until at least [`RetentionPolicy::pre_migration_newer`]
///   newer backups taken at a later migration version exist (that is, a later migration
///   succeeded and the new schema has been backed up since);
/// - no verified backup newer than it exists (nothing is deleted on the strength of backups
///   that might be bad);
/// - it is the newest snapshot of the newest replicated generation.
///
/// Segments of continuous replication follow the snapshots: prune keeps those after the
/// oldest kept snapshot of each generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// Keep the n newest backups.
    pub keep_last: u32,
    /// Keep the newest backup of each of the n most recent days with backups.
    pub keep_daily: u32,
    /// Keep the newest backup of each of the n most recent ISO weeks with backups.
    pub keep_weekly: u32,
    /// Keep the newest backup of each of the n most recent months with backups.
    pub keep_monthly: u32,
    /// Newer backups at a later migration version needed before a pre-migration backup may
    /// go (at least 1).
    pub pre_migration_newer: u32,
}

impl Default for RetentionPolicy {
    /// 7 last, 7 daily, 4 weekly, 6 monthly; pre-migration backups kept until 3 newer ones.
    fn default() -> Self {
        Self {
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            pre_migration_newer: 3,
        }
    }
}

/// The decision about one backup, with every reason for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneDecision {
    /// The backup.
    pub id: BackupId,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Why it was taken.
    pub reason: Reason,
    /// Whether it is kept.
    pub keep: bool,
    /// Why it is kept (every rule that keeps it), or why it may be deleted.
    pub why: Vec<String>,
}

/// A rule's bucket of a backup's creation time.
type Bucket = fn(DateTime<Utc>) -> String;

impl RetentionPolicy {
    /// Decides, for every backup, whether it is kept; newest first.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when every `keep_*` is 0 (that would keep only what the
    /// protections keep; restic refuses it too).
    ///
    /// # Examples
    ///
    /// ```
    /// use backup::RetentionPolicy;
    /// let policy = RetentionPolicy { keep_last: 1, keep_daily: 0, keep_weekly: 0, keep_monthly: 0, pre_migration_newer: 1 };
    /// let decisions = policy.plan(&[], chrono::Utc::now()).unwrap();
    /// assert!(decisions.is_empty());
    /// ```
    pub fn plan(
        &self,
        backups: &[BackupManifest],
        now: DateTime<Utc>,
    ) -> Result<Vec<PruneDecision>> {
        if self.keep_last + self.keep_daily + self.keep_weekly + self.keep_monthly == 0 {
            return Err(Error::InvalidConfig(
                "the retention policy keeps nothing: give at least one keep-* a value above 0"
                    .to_owned(),
            ));
        }
        let mut sorted: Vec<&BackupManifest> = backups.iter().collect();
        sorted.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));

        let rules: [(&str, u32, Bucket); 4] = [
            ("last", self.keep_last, |_| String::new()),
            ("daily", self.keep_daily, |t| {
                t.format("%Y-%m-%d").to_string()
            }),
            ("weekly", self.keep_weekly, |t| {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }),
            ("monthly", self.keep_monthly, |t| {
                t.format("%Y-%m").to_string()
            }),
        ];
        let mut reasons: Vec<Vec<String>> = vec![Vec::new(); sorted.len()];
        for (name, n, bucket) in rules {
            let mut remaining = n;
            let mut last_bucket: Option<String> = None;
            for (i, m) in sorted.iter().enumerate() {
                if remaining == 0 {
                    break;
                }
                if m.failed_verification() {
                    continue;
                }
                let b = if name == "last" {
                    format!("#{}", n - remaining + 1)
                } else {
                    bucket(m.created_at)
                };
                if last_bucket.as_ref() != Some(&b) {
                    reasons[i].push(format!("keep-{name} {b}"));
                    last_bucket = Some(b);
                    remaining -= 1;
                }
            }
        }

        let newest_verified = sorted.iter().position(|m| m.is_verified());
        // A restore of the latest state of a replicated database starts from the newest
        // snapshot of the newest generation.
        let replica_base = sorted
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.replication.as_ref().map(|r| (i, r)))
            .max_by(|(_, a), (_, b)| (&a.generation, a.seq).cmp(&(&b.generation, b.seq)))
            .map(|(i, _)| i);
        let min_newer = self.pre_migration_newer.max(1) as usize;
        let mut decisions = Vec::with_capacity(sorted.len());
        for (i, m) in sorted.iter().enumerate() {
            let mut why = std::mem::take(&mut reasons[i]);
            if m.created_at > now {
                why.push("created after now (clock skew?)".to_owned());
            }
            if newest_verified == Some(i) {
                why.push("the newest verified backup".to_owned());
            }
            if replica_base == Some(i) {
                why.push(
                    "the newest snapshot of the newest replicated generation (where a restore \
                     of the latest state starts)"
                        .to_owned(),
                );
            }
            if m.reason == Reason::PreMigration && !m.failed_verification() {
                let later = sorted[..i]
                    .iter()
                    .filter(|n| {
                        !n.failed_verification() && n.migration_version > m.migration_version
                    })
                    .count();
                if later < min_newer {
                    why.push(format!(
                        "pre-migration backup at migration {}: protected until {min_newer} newer \
                         backup(s) at a later migration exist ({later} so far)",
                        m.migration_version.as_deref().unwrap_or("none")
                    ));
                }
            }
            let newer_verified = newest_verified.is_some_and(|v| v < i);
            let keep = !why.is_empty() || !newer_verified;
            if why.is_empty() && !newer_verified {
                why.push("no newer verified backup exists yet".to_owned());
            }
            if !keep {
                why.push(if m.failed_verification() {
                    "failed verification, and a newer verified backup exists".to_owned()
                } else {
                    "matches no keep rule, and a newer verified backup exists".to_owned()
                });
            }
            decisions.push(PruneDecision {
                id: m.id.clone(),
                created_at: m.created_at,
                reason: m.reason,
                keep,
                why,
            });
        }
        Ok(decisions)
    }
}
