//! Restoring a replicated SQLite database to a point in time: the newest snapshot before it,
//! the segments after it, into a new file that is checked before it replaces anything.

use std::{fs::OpenOptions, time::Instant};

use chrono::Utc;

use crate::{
    BackupRepository, DatabaseKind, Error, Result, Source, VerifyDepth,
    display::error_chain,
    progress::{Phase, ProgressFn},
    replicate::RestorePoint,
    run_log::Operation,
    sqlite::{check::check_copy, materialize::decompress},
};

use super::{RestoreMode, RestoreOptions, RestoreReport, refuse_if_in_use, restore_temp_path};

impl BackupRepository {
    /// Restores a replicated SQLite database as it was at `point` (the latest shipped state,
    /// or an instant), from generation `generation` or else the one that covers the point.
    ///
    /// The newest snapshot at or before the point is decompressed beside the target (its
    /// SHA-256 checked), the segments after it are applied in order, each checked to continue
    /// the one before (a gap or a damaged segment stops the restore: it is never skipped), and
    /// the result must pass `PRAGMA integrity_check` and `foreign_key_check` before anything
    /// is replaced. Then the same rules as [`BackupRepository::restore`]: a target in use is
    /// refused unless `force`, a safety backup of an existing target is taken first, stale
    /// `-wal`/`-shm` files are removed.
    ///
    /// A transaction is in the result when it was seen committed at or before the point: every
    /// transaction committed before `point` less [`crate::replicate::ReplicatorOptions::poll`]
    /// is, none committed after is.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when nothing covers the point; [`Error::Corrupt`] for a damaged
    /// or missing segment; [`Error::VerificationFailed`] when the snapshot or the result fails
    /// its checks (the target is untouched); as [`BackupRepository::restore`] otherwise.
    pub async fn restore_to_point(
        &self,
        point: RestorePoint,
        generation: Option<&str>,
        target: &Source,
        options: &RestoreOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<RestoreReport> {
        let Source::Sqlite { path } = target else {
            return Err(Error::KindMismatch {
                id: "a replicated generation".to_owned(),
                backup: DatabaseKind::Sqlite.to_string(),
                target: target.kind().to_string(),
            });
        };
        if options.mode == RestoreMode::Clean {
            return Err(Error::InvalidConfig(
                "--clean applies to PostgreSQL only; SQLite restores replace the file".to_owned(),
            ));
        }
        let replay = self.plan_replay(point, generation).await?;
        let mut plan = self.plan(&replay.snapshot, target, options).await?;
        let (first, last) = (
            replay.segments.first().map(|s| s.0),
            replay.segments.last().map(|s| s.0),
        );
        let generation_id = replay
            .snapshot
            .replication
            .as_ref()
            .map(|r| r.generation.clone())
            .unwrap_or_default();
        plan.steps.insert(
            2,
            match (first, last) {
                (Some(first), Some(last)) => format!(
                    "apply segments {first} to {last} of generation {generation_id} to the copy{}, \
                     each checked to continue the one before",
                    match point {
                        RestorePoint::Latest => String::new(),
                        RestorePoint::Time(at) =>
                            format!(", up to the last transaction seen by {at}"),
                    }
                ),
                _ => format!("no segment of generation {generation_id} follows the snapshot"),
            },
        );
        if let Some(step) = plan.steps.get_mut(1) {
            *step = format!(
                "decompress snapshot {} beside the target, then check the rebuilt copy \
                 (integrity_check, foreign_key_check) before it replaces anything",
                replay.snapshot.id
            );
        }
        if options.dry_run {
            return Ok(RestoreReport::planned(plan));
        }
        let lock = self.lock(Operation::Restore).await?;
        let started = Utc::now();
        let timer = Instant::now();
        let result = async {
            refuse_if_in_use(&plan, options)?;
            self.refuse_foreign_target(&plan, target, options).await?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("create the directory", parent, e))?;
            }
            let snapshot = &replay.snapshot;
            let temp = restore_temp_path(path, &snapshot.id);
            let claim = self
                .scratch()
                .claim_file(&temp, &Operation::Restore.to_string())?;
            // The segments download while the snapshot is decompressed.
            let segments = self.fetch_segments(&replay);
            // Not fsync'd here: the replay fsyncs the file once it has applied the segments.
            let copy = decompress(&self.store, temp, claim, snapshot, false, progress).await?;
            if let Err(failure) = copy.outcome {
                return Err(Error::VerificationFailed {
                    id: snapshot.id.to_string(),
                    failure,
                });
            }
            let replayed = self
                .apply_replay(&replay, segments, copy.temp.path())
                .await?;
            // The rebuilt file goes to disk while it is checked: both are done before it
            // replaces anything.
            let synced = {
                let path = copy.temp.path().to_path_buf();
                tokio::task::spawn_blocking(move || {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|file| file.sync_all())
                        .map_err(|e| Error::io("fsync", &path, e))
                })
            };
            progress(crate::Progress {
                phase: Phase::Check,
                done: 0,
                total: None,
            });
            let checking = Instant::now();
            let checked = check_copy(
                copy.temp.path(),
                None,
                VerifyDepth::Full,
                &self.config.migration_table,
            )
            .await;
            let check_duration = checking.elapsed();
            synced
                .await
                .map_err(|e| Error::Internal(format!("an fsync worker failed: {e}")))??;
            if let Some(failure) = checked.failure {
                return Err(Error::VerificationFailed {
                    id: format!(
                        "{} replayed to segment {} of generation {}",
                        snapshot.id, replayed.last_seq, replayed.generation
                    ),
                    failure,
                });
            }
            let (safety_backup, removed_files) = self
                .replace_sqlite(&lock, copy.temp, path, &plan, options, progress)
                .await?;
            tracing::info!(
                check_ms = u64::try_from(check_duration.as_millis()).unwrap_or(u64::MAX),
                generation = %replayed.generation,
                seq = replayed.last_seq,
                as_of = %replayed.as_of,
                target = %path.display(),
                "replicated database restored"
            );
            Ok::<_, Error>(RestoreReport {
                executed: true,
                safety_backup,
                removed_files,
                tables: checked.tables,
                duration: timer.elapsed(),
                check_duration,
                replayed: Some(replayed),
                ..RestoreReport::planned(plan)
            })
        }
        .await;
        if !matches!(&result, Err(e) if e.is_invalid_request()) {
            let error = result.as_ref().err().map(|e| error_chain(e));
            self.record(Operation::Restore, started, None, error).await;
        }
        result
    }
}
