//! PostgreSQL point-in-time recovery: `wal-push` and `wal-fetch` (archive_command and
//! restore_command), `base-backup`, and `restore --pgdata` (the arguments and the runs).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use backup::{
    BaseBackupOptions, Lsn, PitrRestoreOptions, RecoveryTarget, WalFetch, WalPushOutcome,
};
use clap::Args;

use crate::{bar::Bar, cli::Cli};

/// Exit code of `wal-fetch` for any failure other than a missing file. PostgreSQL takes an
/// exit status above 125 from restore_command as fatal and stops recovery, where any lower
/// one means "not in the archive" and would end recovery early, silently, at a damaged
/// segment.
pub(crate) const EXIT_WAL_FETCH_FAILED: u8 = 126;

/// `base-backup` options.
#[derive(Debug, Args)]
pub(crate) struct BaseBackupArgs {
    /// The pg_basebackup program (the server's major version).
    #[arg(long, env = "PG_BASEBACKUP", default_value = "pg_basebackup")]
    pub(crate) pg_basebackup: PathBuf,
    /// How long to wait for the backup's last WAL segment to be archived.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub(crate) archive_wait: Duration,
}

/// `restore` options for a physical (point-in-time) restore of a PostgreSQL cluster.
#[derive(Debug, Args)]
pub(crate) struct PitrArgs {
    /// PostgreSQL point-in-time recovery: the data directory to create (missing or empty) from
    /// the newest base backup before the target (--latest, --to-time or --to-lsn), with the
    /// recovery settings that replay the archived WAL up to the target.
    #[arg(long, conflicts_with_all = ["id", "generation", "to", "clean", "no_safety_backup", "dry_run"])]
    pub(crate) pgdata: Option<PathBuf>,
    /// With --pgdata: recover up to and including this WAL position (e.g. 0/3000148).
    #[arg(long, requires = "pgdata", conflicts_with_all = ["latest", "to_time"], value_parser = parse_lsn)]
    pub(crate) to_lsn: Option<Lsn>,
    /// With --pgdata: start the recovered server on this port of 127.0.0.1, wait for recovery
    /// to end, print its row counts, and leave it running.
    #[arg(long, requires = "pgdata")]
    pub(crate) start_on_port: Option<u16>,
    /// With --start-on-port: the role to connect as.
    #[arg(long, default_value = "postgres", requires = "start_on_port")]
    pub(crate) check_user: String,
    /// With --start-on-port: how long recovery may take.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) recovery_timeout: Duration,
    /// The directory of the PostgreSQL server programs (pg_ctl). Default: the newest
    /// `/usr/lib/postgresql/<version>/bin`, else the PATH.
    #[arg(long, env = "PG_BIN_DIR")]
    pub(crate) pg_bin_dir: Option<PathBuf>,
    /// With --pgdata: keep the backup's archive_mode in the restored cluster (default: off,
    /// so a drill never archives a new timeline into the repository; turn it on once the
    /// restored cluster replaces the original).
    #[arg(long, requires = "pgdata")]
    pub(crate) keep_archiving: bool,
}

fn parse_lsn(text: &str) -> Result<Lsn, String> {
    text.parse().map_err(|e: backup::Error| e.to_string())
}

/// `wal-push PATH`: quiet on success (its output goes to the server's log).
pub(crate) async fn wal_push(cli: &Cli, path: &Path) -> anyhow::Result<u8> {
    let repo = crate::run::repository(cli, true)?;
    let report = repo
        .wal_push(path)
        .await
        .with_context(|| format!("while archiving {}", path.display()))?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.outcome == WalPushOutcome::AlreadyArchived {
        eprintln!("{} was already archived with the same content", report.name);
    }
    Ok(0)
}

/// `wal-fetch NAME DEST`: 0 fetched, 1 not in the archive (quietly: that is how recovery
/// learns where the archive ends), [`EXIT_WAL_FETCH_FAILED`] for anything else.
pub(crate) async fn wal_fetch(cli: &Cli, name: &str, dest: &Path) -> anyhow::Result<u8> {
    let fetched = async {
        let repo = crate::run::repository(cli, false)?;
        repo.wal_fetch(name, dest)
            .await
            .with_context(|| format!("while fetching the WAL file {name}"))
    }
    .await;
    match fetched {
        Ok(WalFetch::Restored { .. }) => Ok(0),
        Ok(_) => Ok(crate::run::EXIT_FAILURE),
        Err(err) => {
            eprintln!("error: {err:#}");
            Ok(EXIT_WAL_FETCH_FAILED)
        }
    }
}

/// `base-backup`.
pub(crate) async fn base_backup(cli: &Cli, args: &BaseBackupArgs) -> anyhow::Result<u8> {
    let repo = crate::run::repository(cli, true)?;
    let bar = Bar::new();
    let options = BaseBackupOptions {
        pg_basebackup: args.pg_basebackup.clone(),
        archive_wait: args.archive_wait,
    };
    let manifest = repo
        .base_backup(cli.database_url()?, &options, &|p| bar.report(p))
        .await
        .context("while taking a base backup")?;
    bar.finish();
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
    } else {
        let rows: u64 = manifest
            .databases
            .values()
            .flat_map(|d| d.tables.values())
            .sum();
        println!(
            "base backup {}: {} → {} ({}), WAL {} .. {} on timeline {}, {} databases, {rows} rows",
            manifest.id,
            backup::human_bytes(manifest.raw_bytes),
            backup::human_bytes(manifest.compressed_bytes),
            manifest.server_version,
            manifest.start_lsn,
            manifest.stop_lsn,
            manifest.timeline,
            manifest.databases.len(),
        );
    }
    Ok(0)
}

/// Single-quotes a word for `sh`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The server programs: the option, else Debian's newest, else the PATH.
fn pg_bin_dir(given: Option<&Path>) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_path_buf();
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let version: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("pg_ctl").exists().then_some((version, bin))
                })
                .max_by_key(|(version, _)| *version)
        })
        .map(|(_, bin)| bin)
        .unwrap_or_default()
}

/// The restore_command that runs this program's `wal-fetch` on the repository.
fn restore_command(cli: &Cli) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("while finding this program for restore_command")?;
    // PostgreSQL runs restore_command in the data directory: a relative path would not do.
    let location = match &cli.repository {
        backup::RepositoryLocation::Local(dir) => std::path::absolute(dir)
            .with_context(|| format!("while resolving {}", dir.display()))?
            .display()
            .to_string(),
        other => other.to_url(),
    };
    Ok(format!(
        "{} -d {} wal-fetch %f %p",
        shell_quote(&exe.display().to_string()),
        shell_quote(&location)
    ))
}

/// `verify-base` options.
#[derive(Debug, Args)]
pub(crate) struct VerifyBaseArgs {
    /// The base backup (default: the newest).
    pub(crate) id: Option<backup::BackupId>,
    /// The role to connect to the recovered server as.
    #[arg(long, default_value = "postgres")]
    pub(crate) check_user: String,
    /// How long recovery may take.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) recovery_timeout: Duration,
    /// The directory of the PostgreSQL server programs (pg_ctl). Default: the newest
    /// `/usr/lib/postgresql/<version>/bin`, else the PATH.
    #[arg(long, env = "PG_BIN_DIR")]
    pub(crate) pg_bin_dir: Option<PathBuf>,
}

/// `verify-base [ID]`: exit 0 when it recovered and matched, 3 otherwise.
pub(crate) async fn verify_base(cli: &Cli, args: &VerifyBaseArgs) -> anyhow::Result<u8> {
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        anyhow::bail!(
            "PostgreSQL does not run as root: run `hotel-backup verify-base` as the database's \
             operating-system user (postgres)"
        );
    }
    let repo = crate::run::repository(cli, false)?;
    let options = backup::BaseVerifyOptions {
        bin_dir: pg_bin_dir(args.pg_bin_dir.as_deref()),
        user: args.check_user.clone(),
        restore_command: restore_command(cli)?,
        patience: args.recovery_timeout,
    };
    let bar = Bar::new();
    let report = repo
        .verify_base_backup(args.id.as_ref(), &options, &|p| bar.report(p))
        .await
        .context("while verifying a base backup")?;
    bar.finish();
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.ok {
        println!(
            "base backup {}: recovered to {} in {:.1}s, every row count matches",
            report.id,
            report
                .recovered_to
                .map_or_else(String::new, |l| l.to_string()),
            report.seconds
        );
    } else {
        println!("base backup {} FAILED verification:", report.id);
        for problem in &report.problems {
            println!("  {problem}");
        }
    }
    Ok(if report.ok {
        0
    } else {
        crate::run::EXIT_VERIFICATION_FAILED
    })
}

/// The PostgreSQL half of `prune`: keeps `keep_base` base backups and the WAL they need, when
/// the repository holds base backups or archived WAL (`None` otherwise).
pub(crate) async fn prune(
    repo: &backup::BackupRepository,
    keep_base: usize,
    dry_run: bool,
) -> anyhow::Result<Option<backup::PitrPruneReport>> {
    let in_use = !repo.base_backups().await?.is_empty() || !repo.archived_wal().await?.is_empty();
    if !in_use {
        return Ok(None);
    }
    let report = repo
        .prune_pitr(keep_base, dry_run)
        .await
        .context("while pruning base backups and WAL")?;
    Ok(Some(report))
}

/// The PostgreSQL half of `prune`, for a person.
pub(crate) fn pruned(report: &backup::PitrPruneReport) -> String {
    let mut out = report.explanation.join("\n");
    out.push_str(&format!(
        "\n{}{} base backups and {} WAL files ({})",
        if report.dry_run {
            "would delete "
        } else {
            "deleted "
        },
        report.deleted.len(),
        report.wal_deleted,
        backup::human_bytes(report.wal_deleted_bytes)
    ));
    out
}

/// `restore --pgdata DIR (--latest | --to-time T | --to-lsn L)`.
pub(crate) async fn restore(
    cli: &Cli,
    pgdata: &Path,
    target: RecoveryTarget,
    args: &PitrArgs,
) -> anyhow::Result<u8> {
    if args.start_on_port.is_some() && std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        anyhow::bail!(
            "PostgreSQL does not run as root: run `hotel-backup restore --start-on-port` as the \
             database's operating-system user (postgres)"
        );
    }
    let repo = crate::run::repository(cli, false)?;
    let restore_command = restore_command(cli)?;
    let bar = Bar::new();
    let options = PitrRestoreOptions {
        pgdata: pgdata.to_path_buf(),
        target,
        restore_command,
        keep_archiving: args.keep_archiving,
    };
    let report = repo
        .restore_pitr(&options, &|p| bar.report(p))
        .await
        .with_context(|| format!("while restoring into {}", pgdata.display()))?;
    bar.finish();
    let server = match args.start_on_port {
        Some(port) => Some(
            repo.start_recovered(
                &report.pgdata,
                &pg_bin_dir(args.pg_bin_dir.as_deref()),
                port,
                &args.check_user,
                args.recovery_timeout,
            )
            .await
            .with_context(|| format!("while starting the recovered cluster on port {port}"))?,
        ),
        None => None,
    };
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": true, "restore": report, "server": server,
            }))?
        );
    } else {
        println!(
            "restored base backup {} into {} (WAL {} .. {} checked in the archive); recovery \
             settings:\n  {}",
            report.base_backup.id,
            report.pgdata.display(),
            report.wal_from,
            report.wal_to,
            report.settings.join("\n  ")
        );
        match &server {
            Some(server) => {
                println!(
                    "recovered server runs on 127.0.0.1:{} (pid {}), recovered to {}:",
                    server.port,
                    server.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                    server.wal_position
                );
                for (db, counts) in &server.databases {
                    for (table, rows) in &counts.tables {
                        println!("  {db}.{table}: {rows} rows");
                    }
                }
            }
            None => println!(
                "start PostgreSQL on it to replay the WAL (pg_ctl -D {} start); it promotes \
                 itself at the target",
                report.pgdata.display()
            ),
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
