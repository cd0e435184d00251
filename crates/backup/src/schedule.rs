//! Scheduled runs: create, verify and prune every so often until told to stop.

use std::{future::Future, time::Duration};

use chrono::Utc;
use serde::Serialize;
use tokio::time::MissedTickBehavior;

use crate::{
    BackupManifest, BackupRepository, Error, PruneReport, Reason, Result, RetentionPolicy, Source,
    VerifyOptions, VerifyReport, progress::ProgressFn,
};

/// Runs `job` at once and then every `every`, until `shutdown` completes; returns how many
/// runs were started.
///
/// Stopping is graceful: a run in progress when `shutdown` completes is finished first, and no
/// new one starts. A run that takes longer than `every` delays the next one instead of
/// causing a burst of catch-up runs.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// let runs = backup::schedule::run_every(
///     Duration::from_secs(3600),
///     tokio::time::sleep(Duration::from_secs(3 * 3600 + 1)),
///     |n| async move { println!("run {n}") },
/// )
/// .await;
/// assert_eq!(runs, 4); // at 0 h, 1 h, 2 h and 3 h
/// # }
/// ```
pub async fn run_every<F, Fut>(
    every: Duration,
    shutdown: impl Future<Output = ()>,
    mut job: F,
) -> u64
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut runs = 0;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return runs,
            _ = interval.tick() => {}
        }
        runs += 1;
        let run = job(runs);
        tokio::pin!(run);
        tokio::select! {
            () = &mut run => {}
            () = &mut shutdown => {
                tracing::info!(run = runs, "stop requested; finishing the current run first");
                run.await;
                return runs;
            }
        }
    }
}

/// What one scheduled run did.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledRun {
    /// The backup taken.
    pub created: BackupManifest,
    /// Its verification.
    pub verification: VerifyReport,
    /// What retention deleted.
    pub prune: PruneReport,
}

impl BackupRepository {
    /// One scheduled run: a backup (reason `scheduled`), its verification, then pruning.
    /// Nothing is pruned after a failed verification.
    ///
    /// # Errors
    ///
    /// As [`BackupRepository::create`] and [`BackupRepository::prune`];
    /// [`Error::VerificationFailed`] when the new backup fails verification.
    pub async fn run_scheduled(
        &self,
        source: &Source,
        verify: &VerifyOptions,
        policy: &RetentionPolicy,
        progress: &ProgressFn<'_>,
    ) -> Result<ScheduledRun> {
        let created = self.create(source, Reason::Scheduled, progress).await?;
        let verification = self
            .verify(&created.id, verify, progress)
            .await?
            .into_result()?;
        let prune = self.prune(policy, Utc::now(), false).await?;
        Ok(ScheduledRun {
            created,
            verification,
            prune,
        })
    }
}

/// What the pre-migration gate did.
#[derive(Debug, Clone, Serialize)]
pub struct PreMigrationReport {
    /// The backup taken.
    pub manifest: BackupManifest,
    /// Its verification (passed).
    pub verification: VerifyReport,
}

impl BackupRepository {
    /// The pre-migration gate: takes a backup (reason `pre-migration`) and verifies it, under
    /// one lock. Only when this returns `Ok` may migrations run.
    ///
    /// Retention keeps the backup until a later migration has succeeded and been backed up
    /// (see [`RetentionPolicy`]).
    ///
    /// # Errors
    ///
    /// As [`BackupRepository::create`]; [`Error::VerificationFailed`] when the backup fails
    /// verification.
    pub async fn pre_migration(
        &self,
        source: &Source,
        verify: &VerifyOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<PreMigrationReport> {
        let lock = self.lock(crate::run_log::Operation::PreMigration).await?;
        let started = Utc::now();
        let result = async {
            let manifest = self
                .create_locked(&lock, source, Reason::PreMigration, progress)
                .await?;
            let verification = self
                .verify_recorded(&lock, &manifest.id, verify, progress)
                .await?
                .into_result()?;
            let manifest = self.manifest(&manifest.id).await?;
            Ok::<_, Error>(PreMigrationReport {
                manifest,
                verification,
            })
        }
        .await;
        let (backup, error) = match &result {
            Ok(report) => (Some(report.manifest.id.clone()), None),
            Err(e) => (None, Some(crate::error_chain(e))),
        };
        self.record(
            crate::run_log::Operation::PreMigration,
            started,
            backup,
            error,
        )
        .await;
        result
    }
}
