//! Each command: call the library, print the result, choose the exit code.

use std::future::Future;

use anyhow::Context;
use backup::{
    BackupManifest, BackupRepository, Error, PgTools, RestoreMode, RestoreOptions, S3Settings,
    Source, VerifyDepth, VerifyOptions, monitor,
    replicate::{Replicator, RestorePoint},
};
use chrono::Utc;
use serde::Serialize;

use crate::{
    bar::Bar,
    cli::{Cli, Command},
    render,
};

/// Exit codes (documented in `--help`).
pub(crate) const EXIT_FAILURE: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_VERIFICATION_FAILED: u8 = 3;
pub(crate) const EXIT_LOCK_HELD: u8 = 4;
pub(crate) const EXIT_IN_USE: u8 = 5;

/// The exit code of a failed command.
pub(crate) fn exit_code_of(err: &anyhow::Error) -> u8 {
    if let Some(Interrupted { signal }) = err.downcast_ref::<Interrupted>() {
        return u8::try_from(128 + signal).unwrap_or(EXIT_FAILURE);
    }
    match err.downcast_ref::<Error>() {
        Some(Error::VerificationFailed { .. }) => EXIT_VERIFICATION_FAILED,
        Some(Error::LockHeld { .. }) => EXIT_LOCK_HELD,
        Some(Error::DatabaseInUse { .. }) => EXIT_IN_USE,
        Some(e) if e.is_invalid_request() => EXIT_USAGE,
        _ => EXIT_FAILURE,
    }
}

/// A command stopped by SIGINT or SIGTERM (exit code 128 + the signal's number).
#[derive(Debug)]
pub(crate) struct Interrupted {
    signal: i32,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.signal {
            2 => "SIGINT",
            15 => "SIGTERM",
            _ => "a signal",
        };
        write!(f, "interrupted by {name}")
    }
}

impl std::error::Error for Interrupted {}

/// After a command was stopped by `signal` (its future dropped): removes the scratch state it
/// left (a scratch or half-restored PostgreSQL database; files went with the future), so the
/// next run starts clean. Returns the error to report.
pub(crate) async fn interrupted(cli: &Cli, signal: i32) -> anyhow::Error {
    let error = anyhow::Error::new(Interrupted { signal });
    if cli.command.is_read_only() {
        return error;
    }
    let Ok(repo) = repository(cli, false) else {
        return error;
    };
    // The server whose credentials can drop a scratch database: the restore target, or the
    // database (whose server verification uses).
    let server = match &cli.command {
        Command::Restore { to: Some(to), .. } => Source::from_url(to).ok(),
        _ => cli
            .command
            .database()
            .and_then(|d| Source::from_url(&d.database_url).ok()),
    };
    match repo.clean_leftovers(server.as_ref()).await {
        Ok(removed) => {
            for leftover in removed {
                tracing::info!(what = %leftover.what, "removed the scratch state of the interrupted run");
            }
            error.context("the interrupted run's scratch state was removed")
        }
        Err(e) => anyhow::Error::new(e)
            .context("while removing the interrupted run's scratch state; the next run removes it")
            .context(Interrupted { signal }),
    }
}

/// Prints `value` as JSON, or `human` as text.
fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).context("while printing JSON")?
        );
    } else {
        println!("{}", human());
    }
    Ok(())
}

/// Opens the repository; only commands that take backups (`create`) make a missing one.
pub(crate) fn repository(cli: &Cli, create: bool) -> anyhow::Result<BackupRepository> {
    let mut builder = BackupRepository::builder(cli.repository.clone())
        .create_if_missing(create)
        .s3_settings(S3Settings::from_lookup(|name| std::env::var(name).ok()));
    let settings = cli.command.repository_settings();
    if let Some(lock) = settings.lock {
        builder = builder.lock_wait(lock.lock_wait);
    }
    if let Some(compression) = settings
        .take
        .map(|t| &t.compression)
        .or(settings.compression)
    {
        builder = builder.compression_level(compression.compression_level);
    }
    let mut tools = PgTools::default();
    if let Some(take) = settings.take {
        tools.pg_dump = take.pg_dump.clone();
    }
    if let Some(load) = settings.load {
        tools.pg_restore = load.pg_restore.clone();
    }
    builder = builder.pg_tools(tools);
    if let Some(scratch) = &cli.scratch_dir {
        builder = builder.scratch_dir(scratch);
    }
    builder
        .open()
        .with_context(|| format!("while opening the repository {}", cli.repository))
}

fn source(url: &str) -> anyhow::Result<Source> {
    Source::from_url(url).context("while reading the database URL")
}

/// PostgreSQL backups are verified on the server of --database-url, with its credentials.
fn verify_options(cli: &Cli, depth: VerifyDepth) -> VerifyOptions {
    VerifyOptions {
        depth,
        postgres_server: cli
            .database_url()
            .ok()
            .and_then(|url| Source::from_url(url).ok())
            .filter(|s| matches!(s, Source::Postgres { .. })),
    }
}

/// Runs the command; returns the exit code of a completed command (errors are the caller's).
pub(crate) async fn run(cli: &Cli, shutdown: impl Future<Output = ()>) -> anyhow::Result<u8> {
    let bar = Bar::new();
    let progress = |p| bar.report(p);
    let json = cli.json;
    let code = match &cli.command {
        Command::Create { reason, .. } => {
            let source = source(cli.database_url()?)?;
            let repo = repository(cli, true)?;
            let manifest = repo
                .create(&source, *reason, &progress)
                .await
                .with_context(|| format!("while backing up {source}"))?;
            bar.finish();
            emit(json, &manifest, || render::created(&manifest))?;
            0
        }
        Command::PreMigration { .. } => {
            let source = source(cli.database_url()?)?;
            let repo = repository(cli, true)?;
            let report = repo
                .pre_migration(&source, &verify_options(cli, VerifyDepth::Full), &progress)
                .await
                .with_context(|| format!("while taking the pre-migration backup of {source}"))?;
            bar.finish();
            emit(json, &report, || {
                format!(
                    "{}\n{}",
                    render::created(&report.manifest),
                    render::verified(&report.verification)
                )
            })?;
            0
        }
        Command::List => {
            let repo = repository(cli, false)?;
            let listing = repo.list().await.context("while listing backups")?;
            let now = Utc::now();
            let rows: Vec<ListedBackup<'_>> = listing
                .backups
                .iter()
                .map(|m| ListedBackup {
                    age_seconds: (now - m.created_at).num_seconds().max(0),
                    status: render::status(m),
                    manifest: m,
                })
                .collect();
            emit(
                json,
                &serde_json::json!({ "backups": rows, "ignored": listing.ignored }),
                || render::listing(&listing, now),
            )?;
            0
        }
        Command::Verify { id, all, quick, .. } => {
            let repo = repository(cli, false)?;
            let depth = if *quick {
                VerifyDepth::Quick
            } else {
                VerifyDepth::Full
            };
            let options = verify_options(cli, depth);
            let reports = if *all {
                repo.verify_all(&options, &progress).await
            } else {
                let id = match id {
                    Some(id) => id.clone(),
                    None => newest(&repo).await?.id,
                };
                repo.verify(&id, &options, &progress).await.map(|r| vec![r])
            }
            .context("while verifying")?;
            bar.finish();
            let ok = reports.iter().all(|r| r.ok);
            emit(
                json,
                &serde_json::json!({ "ok": ok, "reports": reports }),
                || {
                    if reports.is_empty() {
                        "no backup to verify".to_owned()
                    } else {
                        reports
                            .iter()
                            .map(render::verified)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                },
            )?;
            if ok { 0 } else { EXIT_VERIFICATION_FAILED }
        }
        Command::Restore {
            id,
            latest,
            to_time,
            generation,
            to,
            dry_run,
            force,
            clean,
            no_safety_backup,
            pitr,
            ..
        } => {
            if let Some(pgdata) = &pitr.pgdata {
                let target = match (to_time, pitr.to_lsn) {
                    (Some(at), _) => backup::RecoveryTarget::Time(*at),
                    (None, Some(lsn)) => backup::RecoveryTarget::Lsn(lsn),
                    (None, None) => backup::RecoveryTarget::Latest,
                };
                return crate::pitr::restore(cli, pgdata, target, pitr).await;
            }
            let repo = repository(cli, false)?;
            let target = source(match to {
                Some(to) => to,
                None => cli.database_url()?,
            })?;
            let options = RestoreOptions {
                dry_run: *dry_run,
                force: *force,
                mode: if *clean {
                    RestoreMode::Clean
                } else {
                    RestoreMode::Replace
                },
                skip_safety_backup: *no_safety_backup,
            };
            let report = match (id, to_time) {
                (Some(id), _) => repo
                    .restore(id, &target, &options, &progress)
                    .await
                    .with_context(|| format!("while restoring backup {id} into {target}"))?,
                (None, at) => {
                    let point = match at {
                        Some(at) => RestorePoint::Time(*at),
                        None => {
                            debug_assert!(*latest);
                            RestorePoint::Latest
                        }
                    };
                    repo.restore_to_point(
                        point,
                        generation.as_deref(),
                        &target,
                        &options,
                        &progress,
                    )
                    .await
                    .with_context(|| match at {
                        Some(at) => format!("while restoring {target} as it was at {at}"),
                        None => format!("while restoring the latest state of {target}"),
                    })?
                }
            };
            bar.finish();
            emit(json, &report, || render::restored(&report))?;
            0
        }
        Command::Prune {
            dry_run,
            retention,
            keep_base,
            ..
        } => {
            let repo = repository(cli, false)?;
            let report = repo
                .prune(&retention.policy(), Utc::now(), *dry_run)
                .await
                .context("while pruning")?;
            match crate::pitr::prune(&repo, *keep_base, *dry_run).await? {
                None => emit(json, &report, || render::pruned(&report))?,
                Some(pitr) => {
                    // The logical report's fields, and the PostgreSQL half under `pitr`.
                    let mut value = serde_json::to_value(&report).context("while printing JSON")?;
                    value["pitr"] = serde_json::to_value(&pitr).context("while printing JSON")?;
                    emit(json, &value, || {
                        format!("{}{}", render::pruned(&report), crate::pitr::pruned(&pitr))
                    })?;
                }
            }
            0
        }
        Command::Monitor(args) => {
            // Monitoring must not create the directory it checks.
            let report = match cli.repository.local_dir() {
                Some(dir) if !dir.is_dir() => missing_directory(cli),
                _ => {
                    let repo = repository(cli, false)?;
                    // The archiver is only asked where PostgreSQL archives into the repository.
                    let url = cli.database_url()?;
                    let server = (!args.no_server
                        && matches!(Source::from_url(url), Ok(Source::Postgres { .. })))
                    .then_some(url);
                    monitor::assess_with_server(&repo, &args.policy(), server, Utc::now()).await
                }
            };
            if let Some(path) = &args.prometheus {
                report
                    .write_prometheus(path)
                    .with_context(|| format!("while writing {}", path.display()))?;
            }
            emit(json, &report, || render::health(&report))?;
            report.status.exit_code()
        }
        Command::Schedule {
            every, retention, ..
        } => {
            let source = source(cli.database_url()?)?;
            let repo = repository(cli, true)?;
            let options = verify_options(cli, VerifyDepth::Full);
            let policy = retention.policy();
            tracing::info!(every = %humantime::format_duration(*every), source = %source, repository = %repo.location(), "scheduler started");
            // A first run refused as a mistake (no such database, a wrong URL) would be
            // refused at every run: the scheduler stops with it (exit 2) instead of logging it
            // forever. Later refusals are logged and retried (a volume unmounted for a while).
            let mistake = std::sync::Mutex::new(None);
            let stop = tokio::sync::Notify::new();
            let shutdown = async {
                tokio::select! {
                    () = shutdown => {}
                    () = stop.notified() => {}
                }
            };
            let runs = backup::schedule::run_every(*every, shutdown, |n| {
                let (repo, source, options) = (&repo, &source, &options);
                let (mistake, stop) = (&mistake, &stop);
                async move {
                    match repo.run_scheduled(source, options, &policy, &|_| {}).await {
                        Ok(run) => {
                            tracing::info!(
                                run = n,
                                id = %run.created.id,
                                compressed_bytes = run.created.compressed_bytes,
                                verified = run.verification.ok,
                                pruned = run.prune.deleted.len(),
                                "scheduled run succeeded"
                            );
                            if json
                                && let Ok(line) = serde_json::to_string(&run)
                            {
                                println!("{line}");
                            }
                        }
                        Err(e) if n == 1 && e.is_invalid_request() => {
                            *mistake.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                                Some(e);
                            stop.notify_one();
                        }
                        Err(e) => {
                            tracing::error!(run = n, error = %backup::error_chain(&e), "scheduled run failed");
                        }
                    }
                }
            })
            .await;
            if let Some(e) = mistake
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                return Err(anyhow::Error::new(e).context("the scheduler's first run"));
            }
            tracing::info!(runs, "scheduler stopped");
            0
        }
        Command::WalPush { path } => crate::pitr::wal_push(cli, path).await?,
        Command::WalFetch { name, dest } => crate::pitr::wal_fetch(cli, name, dest).await?,
        Command::BaseBackup { args, .. } => crate::pitr::base_backup(cli, args).await?,
        Command::VerifyBase(args) => crate::pitr::verify_base(cli, args).await?,
        Command::Replicate { args, .. } => {
            let Source::Sqlite { path } = source(cli.database_url()?)? else {
                return Err(Error::InvalidConfig(
                    "replicate follows a SQLite database's write-ahead log; for PostgreSQL use \
                     its own WAL archiving"
                        .to_owned(),
                )
                .into());
            };
            let repo = repository(cli, true)?;
            let replicator = Replicator::new(repo.clone(), &path, args.options());
            let status = replicator.status();
            tracing::info!(database = %path.display(), repository = %repo.location(), interval_ms = args.interval.as_millis() as u64, "replication started");
            let report = tokio::spawn(report_progress(status, json));
            let last = replicator.run(shutdown).await.with_context(|| {
                format!(
                    "while replicating {} into {}",
                    path.display(),
                    repo.location()
                )
            });
            report.abort();
            let last = last?;
            tracing::info!(
                segments = last.segments,
                bytes_uploaded = last.bytes_uploaded,
                "replication stopped"
            );
            emit(json, &last, || {
                format!(
                    "replication stopped: {} segments, {} snapshots, {} uploaded",
                    last.segments,
                    last.snapshots,
                    backup::human_bytes(last.bytes_uploaded)
                )
            })?;
            0
        }
    };
    Ok(code)
}

/// Logs the replicator's progress every minute, and each change of its error state at once.
async fn report_progress(
    mut status: tokio::sync::watch::Receiver<backup::replicate::ReplicationStatus>,
    json: bool,
) {
    let mut last_error: Option<String> = None;
    let mut last_log = std::time::Instant::now();
    while status.changed().await.is_ok() {
        let s = status.borrow_and_update().clone();
        if s.last_error != last_error {
            match &s.last_error {
                Some(e) => {
                    tracing::warn!(error = %e, pending = s.pending_transactions, "replication is failing; retrying")
                }
                None => tracing::info!(segments = s.segments, "replication caught up"),
            }
            last_error = s.last_error.clone();
        }
        if last_log.elapsed() >= std::time::Duration::from_secs(60) {
            last_log = std::time::Instant::now();
            tracing::info!(
                generation = s.generation.as_deref().unwrap_or("-"),
                last_seq = s.last_seq,
                synced_at = %s.synced_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                pending = s.pending_transactions,
                segments = s.segments,
                bytes_uploaded = s.bytes_uploaded,
                "replicating"
            );
            if json && let Ok(line) = serde_json::to_string(&s) {
                println!("{line}");
            }
        }
    }
}

async fn newest(repo: &BackupRepository) -> anyhow::Result<BackupManifest> {
    repo.list()
        .await
        .context("while listing backups")?
        .backups
        .into_iter()
        .next()
        .with_context(|| format!("there is no backup in {}", repo.location()))
}

fn missing_directory(cli: &Cli) -> monitor::HealthReport {
    monitor::HealthReport {
        status: monitor::Status::Unknown,
        checks: vec![monitor::Check {
            name: "directory",
            status: monitor::Status::Unknown,
            message: format!("the backup directory {} does not exist", cli.repository),
        }],
        metrics: monitor::HealthMetrics::default(),
        assessed_at: Utc::now(),
    }
}

/// A backup as `list --json` shows it.
#[derive(Serialize)]
struct ListedBackup<'a> {
    #[serde(flatten)]
    manifest: &'a BackupManifest,
    age_seconds: i64,
    status: &'static str,
}
