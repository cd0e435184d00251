//! The command line.

use std::{path::PathBuf, time::Duration};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Shown after `--help` (and after each command's).
const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    failure
  2    bad usage or configuration: an invalid argument, a database URL or repository that
       names nothing (or another database than the repository's), a backup that does not
       exist (such a refusal is not recorded as a failed run, so `monitor` never reports it)
  3    a backup failed verification (or a restore refused a damaged backup)
  4    another operation holds the repository's lock
  5    the restore target is in use
  130  interrupted by SIGINT, 143 by SIGTERM (what the run had built is removed before it
       exits; a second signal exits at once, and the next run removes the rest)
`monitor` exits with Nagios codes instead, `wal-fetch` with
restore_command's.";

/// Shown after `monitor --help`.
const NAGIOS_EXIT_CODES: &str = "\
Exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL (or bad usage), 3 UNKNOWN.";

/// Shown after `wal-fetch --help`.
const WAL_FETCH_EXIT_CODES: &str = "\
Exit codes (restore_command): 0 fetched, 1 the archive has no such file (recovery has reached
its end), 2 bad usage, 126 the file is damaged or the repository fails (recovery stops).";

/// Parses the command line (exiting on a usage error or after --help), with each command's
/// exit codes after its help.
pub(crate) fn parse() -> Cli {
    let command = Cli::command().mut_subcommands(|sub| {
        let codes = match sub.get_name() {
            "monitor" => NAGIOS_EXIT_CODES,
            "wal-fetch" => WAL_FETCH_EXIT_CODES,
            _ => EXIT_CODES,
        };
        sub.after_help(codes)
    });
    let matches = command
        .try_get_matches()
        .unwrap_or_else(|e| cli_support::exit_on_usage_error(e));
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| cli_support::exit_on_usage_error(e))
}

/// Takes, verifies, restores, prunes and monitors backups of a SQLite or PostgreSQL database.
///
/// A backup is a zstd-compressed snapshot plus a JSON manifest (sizes, SHA-256, the row count
/// of every table, the migration version), written atomically into the backup directory.
/// "Verified" means restored into a scratch database that passed the integrity checks and
/// matched the manifest's row counts.
///
/// Only create, pre-migration and schedule make a repository that does not exist; every other
/// command refuses a missing one and changes nothing.
///
/// Each command lists its own options (`hotel-backup <command> --help`); -d, --scratch-dir,
/// --json and --log-format apply to all.
#[derive(Debug, Parser)]
#[command(name = "hotel-backup", version, about, long_about, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// The repository: a directory (created when missing) or an S3-compatible bucket,
    /// s3://bucket/prefix?endpoint=http://host:9000&region=eu-west-1 (credentials from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; AWS_REGION and
    /// AWS_ENDPOINT_URL are the defaults for what the URL leaves out). It holds the backups
    /// of one database, their manifests, verification and run records.
    #[arg(
        long = "backup-dir",
        short = 'd',
        env = "BACKUP_DIR",
        default_value = "data/backups",
        value_parser = parse_location,
        global = true
    )]
    pub(crate) repository: backup::RepositoryLocation,

    /// Where verification decompresses SQLite backups (it needs the database's size free);
    /// for a repository in an object store, also where its local lock and work directory
    /// live. Default: the backup directory; for an object store, a directory in the system's
    /// temporary directory.
    #[arg(long, env = "BACKUP_SCRATCH_DIR", global = true)]
    pub(crate) scratch_dir: Option<PathBuf>,

    /// Print the result as JSON on stdout (errors too), instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Logging (`--log-format`; RUST_LOG sets the levels, default info for schedule and
    /// replicate, warn otherwise).
    #[command(flatten)]
    pub(crate) log: cli_support::LogArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The command's --database-url.
    ///
    /// # Errors
    /// When the command takes no database (a caller's mistake, reported instead of a panic).
    pub(crate) fn database_url(&self) -> anyhow::Result<&str> {
        self.command
            .database()
            .map(|d| d.database_url.as_str())
            .ok_or_else(|| anyhow::anyhow!("this command takes no --database-url"))
    }
}

/// The database a command reads or writes.
#[derive(Debug, Args)]
pub(crate) struct DatabaseArgs {
    /// The database: sqlite://path or postgres://user:password@host/db. The password is never
    /// printed or recorded.
    #[arg(long, short = 'u', env = "DATABASE_URL", default_value = db_connect::DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub(crate) database_url: String,
}

/// Waiting for the repository's lock, for the commands that take it.
#[derive(Debug, Args)]
pub(crate) struct LockArgs {
    /// How long to wait for another create/verify/restore/prune to finish before giving up
    /// (exit code 4), e.g. 30s or 5m.
    #[arg(long, env = "BACKUP_LOCK_WAIT", default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) lock_wait: Duration,
}

/// The compression of what a command writes.
#[derive(Debug, Args)]
pub(crate) struct CompressionArgs {
    /// zstd level of new backups (1-19).
    #[arg(long, env = "BACKUP_COMPRESSION_LEVEL", default_value_t = 3)]
    pub(crate) compression_level: i32,
}

/// How the commands that take logical backups take them.
#[derive(Debug, Args)]
pub(crate) struct TakeArgs {
    #[command(flatten)]
    pub(crate) compression: CompressionArgs,
    /// The pg_dump program (its major version must be at least the server's).
    #[arg(long, env = "PG_DUMP", default_value = "pg_dump")]
    pub(crate) pg_dump: PathBuf,
}

/// How the commands that verify or restore PostgreSQL backups load them.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The pg_restore program.
    #[arg(long, env = "PG_RESTORE", default_value = "pg_restore")]
    pub(crate) pg_restore: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Take a backup of the database.
    Create {
        /// Why: manual, scheduled, pre-migration or pre-restore.
        #[arg(long, default_value = "manual")]
        reason: backup::Reason,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        take: TakeArgs,
    },
    /// Take a backup and verify it; exit non-zero if either fails. Run before migrations.
    PreMigration {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        take: TakeArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// List the backups, newest first, with age, size, reason and verification status.
    List,
    /// Verify backups: checksum, decompress, restore into scratch, integrity and row counts.
    /// Without ID or --all, verifies the newest backup.
    Verify {
        /// The backup to verify.
        id: Option<backup::BackupId>,
        /// Verify every backup.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// SQLite: PRAGMA quick_check instead of integrity_check (skips comparing indexes with
        /// their tables; several times faster on large databases).
        #[arg(long)]
        quick: bool,
        // PostgreSQL backups are verified on this database's server, with its credentials.
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Restore a backup: verify it, take a safety backup of the current database, replace it.
    ///
    /// A replicated SQLite database can instead be restored to a point: --latest (everything
    /// shipped) or --to-time T (every transaction seen committed by T): its newest snapshot
    /// before the point plus the segments after it, into a new file checked with
    /// integrity_check and foreign_key_check before it replaces anything.
    #[command(verbatim_doc_comment)]
    Restore {
        /// The backup to restore (or use --latest / --to-time).
        #[arg(required_unless_present_any = ["latest", "to_time", "to_lsn"])]
        id: Option<backup::BackupId>,
        /// Restore a replicated database to everything shipped.
        #[arg(long, conflicts_with_all = ["id", "to_time"])]
        latest: bool,
        /// Restore a replicated database as it was at this instant (RFC 3339, e.g.
        /// 2026-11-28T10:00:00Z).
        #[arg(long, conflicts_with = "id", value_parser = parse_time)]
        to_time: Option<chrono::DateTime<chrono::Utc>>,
        /// With --latest or --to-time: the generation to restore from (default: the one that
        /// covers the point; `list` shows them).
        #[arg(long, conflicts_with = "id")]
        generation: Option<String>,
        /// Restore into this database instead of --database-url.
        #[arg(long)]
        to: Option<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Restore even though the target is in use (PostgreSQL: its sessions are ended).
        #[arg(long)]
        force: bool,
        /// PostgreSQL: pg_restore --clean --single-transaction into the target itself instead
        /// of restoring into a new database and swapping names.
        #[arg(long)]
        clean: bool,
        /// Do not back up the database being replaced (when it is too damaged to be read).
        #[arg(long)]
        no_safety_backup: bool,
        #[command(flatten)]
        pitr: crate::pitr::PitrArgs,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        take: TakeArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Delete the backups the retention policy does not keep. PostgreSQL point-in-time
    /// recovery: keep the --keep-base newest base backups and exactly the archived WAL they
    /// need (on each of their timelines, from the oldest one's start); delete the rest, saying
    /// why.
    Prune {
        /// Say what would be deleted and why each backup is kept, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        retention: RetentionArgs,
        /// How many PostgreSQL base backups to keep (at least 1: without one, the whole WAL
        /// archive is useless). Checked before anything is deleted.
        #[arg(long, env = "BACKUP_KEEP_BASE", default_value_t = 7,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        keep_base: usize,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Check the backups' health; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios).
    /// With PostgreSQL point-in-time recovery also: failing archive_command runs and the
    /// backlog of unarchived segments (pg_stat_archiver of --database-url's server), the age
    /// of the newest base backup and archived segment, the restorable window.
    Monitor(MonitorArgs),
    /// Run create, verify and prune every --every until SIGINT or SIGTERM (the run in progress
    /// is finished first).
    Schedule {
        /// The interval, e.g. 1h, 30m, 1day (at least 1s).
        #[arg(long, value_parser = parse_interval)]
        every: Duration,
        #[command(flatten)]
        retention: RetentionArgs,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        take: TakeArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Follow the SQLite database (in WAL mode) and ship every committed transaction to the
    /// repository within --interval, as checksummed segments on top of snapshots, until SIGINT
    /// or SIGTERM. It checkpoints the log itself: give the application's writers a busy
    /// timeout of a few seconds, and preferably PRAGMA wal_autocheckpoint=0.
    Replicate {
        #[command(flatten)]
        args: ReplicateArgs,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        compression: CompressionArgs,
    },
    /// PostgreSQL archive_command: archive the WAL file at PATH (%p) into the repository,
    /// compressed and checksummed. Archiving the same file again succeeds; another file under
    /// an archived name fails. archive_command = 'hotel-backup -d /backups wal-push %p'
    WalPush {
        /// The file (%p).
        path: PathBuf,
    },
    /// PostgreSQL restore_command: fetch the archived WAL file NAME (%f) into DEST (%p).
    /// Exits 1 when the archive has no such file (how recovery finds the archive's end),
    /// 126 when it is damaged or the repository fails (PostgreSQL then stops recovery
    /// instead of ending it early).
    WalFetch {
        /// The file's name (%f).
        name: String,
        /// Where to write it (%p).
        dest: PathBuf,
    },
    /// Take a physical base backup of the PostgreSQL cluster of --database-url with
    /// pg_basebackup, streamed into the repository, for point-in-time restores (restore
    /// --pgdata). The cluster must archive its WAL there (archive_command = 'hotel-backup
    /// wal-push %p').
    BaseBackup {
        #[command(flatten)]
        args: crate::pitr::BaseBackupArgs,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        compression: CompressionArgs,
    },
    /// Verify a PostgreSQL base backup by a real recovery: restore it into a scratch data
    /// directory, replay its WAL to where its row counts were taken, start PostgreSQL on a free
    /// port, compare the counts, remove everything. Exit 3 when it fails. Run it as the
    /// database's operating-system user.
    VerifyBase(crate::pitr::VerifyBaseArgs),
}

/// How `replicate` works.
#[derive(Debug, Args)]
pub(crate) struct ReplicateArgs {
    /// A committed transaction is in the repository at most this long after its commit
    /// while the store answers.
    #[arg(long, env = "REPLICATE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) interval: Duration,
    /// How often the log is read: the precision of point-in-time restores.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub(crate) poll: Duration,
    /// A new snapshot this often, so a restore replays at most this much of the log.
    #[arg(long, env = "REPLICATE_SNAPSHOT_EVERY", default_value = "24h", value_parser = humantime::parse_duration)]
    pub(crate) snapshot_every: Duration,
    /// With nothing committed, an empty segment this often (so monitor tells an idle database
    /// from a stopped replicator).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub(crate) heartbeat: Duration,
    /// Checkpoint the log once it is this large and shipped.
    #[arg(long, default_value_t = 4 << 20)]
    pub(crate) checkpoint_bytes: u64,
    /// The longest wait between attempts while the store fails.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) retry_max: Duration,
}

impl ReplicateArgs {
    pub(crate) fn options(&self) -> backup::replicate::ReplicatorOptions {
        backup::replicate::ReplicatorOptions {
            interval: self.interval,
            poll: self.poll,
            snapshot_every: self.snapshot_every,
            heartbeat: self.heartbeat,
            checkpoint_bytes: self.checkpoint_bytes,
            retry_max: self.retry_max,
            ..backup::replicate::ReplicatorOptions::default()
        }
    }
}

fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("`{text}` is not an RFC 3339 time such as 2026-11-28T10:00:00Z: {e}"))
}

/// A schedule's interval: a duration of at least a second.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if every < Duration::from_secs(1) {
        return Err(format!("{text} is shorter than the shortest interval, 1s"));
    }
    Ok(every)
}

impl Command {
    /// Whether the command only reads (so there is nothing to clean up after it).
    pub(crate) fn is_read_only(&self) -> bool {
        matches!(
            self,
            Self::List
                | Self::Monitor(_)
                | Self::WalPush { .. }
                | Self::WalFetch { .. }
                | Self::Restore { dry_run: true, .. }
                | Self::Prune { dry_run: true, .. }
        )
    }

    /// Whether the command runs until SIGINT or SIGTERM (and then stops by itself).
    pub(crate) fn runs_until_stopped(&self) -> bool {
        matches!(self, Self::Schedule { .. } | Self::Replicate { .. })
    }

    /// The command's database, for the commands that take one.
    pub(crate) fn database(&self) -> Option<&DatabaseArgs> {
        match self {
            Self::Create { database, .. }
            | Self::PreMigration { database, .. }
            | Self::Verify { database, .. }
            | Self::Restore { database, .. }
            | Self::Schedule { database, .. }
            | Self::Replicate { database, .. }
            | Self::BaseBackup { database, .. } => Some(database),
            Self::Monitor(args) => Some(&args.database),
            _ => None,
        }
    }

    /// The repository settings the command was given; the library's defaults apply to the
    /// rest (a command that takes no backup has no compression level to set).
    pub(crate) fn repository_settings(&self) -> RepositorySettings<'_> {
        let mut settings = RepositorySettings::default();
        match self {
            Self::Create { lock, take, .. } => {
                settings.lock = Some(lock);
                settings.take = Some(take);
            }
            Self::PreMigration {
                lock, take, load, ..
            }
            | Self::Restore {
                lock, take, load, ..
            }
            | Self::Schedule {
                lock, take, load, ..
            } => {
                settings.lock = Some(lock);
                settings.take = Some(take);
                settings.load = Some(load);
            }
            Self::Verify { lock, load, .. } => {
                settings.lock = Some(lock);
                settings.load = Some(load);
            }
            Self::Prune { lock, .. } => settings.lock = Some(lock),
            Self::Replicate {
                lock, compression, ..
            }
            | Self::BaseBackup {
                lock, compression, ..
            } => {
                settings.lock = Some(lock);
                settings.compression = Some(compression);
            }
            _ => {}
        }
        settings
    }
}

/// The repository settings of a command line (see [`Command::repository_settings`]).
#[derive(Debug, Default)]
pub(crate) struct RepositorySettings<'a> {
    pub(crate) lock: Option<&'a LockArgs>,
    pub(crate) take: Option<&'a TakeArgs>,
    /// Compression alone, for the commands that write but never run pg_dump.
    pub(crate) compression: Option<&'a CompressionArgs>,
    pub(crate) load: Option<&'a LoadArgs>,
}

fn parse_location(text: &str) -> Result<backup::RepositoryLocation, String> {
    backup::RepositoryLocation::parse(text).map_err(|e| e.to_string())
}

/// The retention policy (restic semantics, UTC buckets).
#[derive(Debug, Args)]
pub(crate) struct RetentionArgs {
    /// Keep the N newest backups.
    #[arg(long, env = "BACKUP_KEEP_LAST", default_value_t = 7)]
    pub(crate) keep_last: u32,
    /// Keep the newest backup of each of the N most recent days with backups.
    #[arg(long, env = "BACKUP_KEEP_DAILY", default_value_t = 7)]
    pub(crate) keep_daily: u32,
    /// Keep the newest backup of each of the N most recent ISO weeks with backups.
    #[arg(long, env = "BACKUP_KEEP_WEEKLY", default_value_t = 4)]
    pub(crate) keep_weekly: u32,
    /// Keep the newest backup of each of the N most recent months with backups.
    #[arg(long, env = "BACKUP_KEEP_MONTHLY", default_value_t = 6)]
    pub(crate) keep_monthly: u32,
    /// Keep a pre-migration backup until N newer backups at a later migration exist.
    #[arg(long, env = "BACKUP_KEEP_PRE_MIGRATION", default_value_t = 3)]
    pub(crate) pre_migration_newer: u32,
}

impl RetentionArgs {
    pub(crate) fn policy(&self) -> backup::RetentionPolicy {
        backup::RetentionPolicy {
            keep_last: self.keep_last,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            pre_migration_newer: self.pre_migration_newer,
        }
    }
}

/// Health thresholds.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// With PostgreSQL point-in-time recovery: the server whose archiver (pg_stat_archiver) is
    /// checked.
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    /// WARNING when the newest verified backup is older than this.
    #[arg(long, default_value = "26h", value_parser = humantime::parse_duration)]
    pub(crate) warn_age: Duration,
    /// CRITICAL when the newest verified backup is older than this.
    #[arg(long, default_value = "50h", value_parser = humantime::parse_duration)]
    pub(crate) crit_age: Duration,
    /// WARNING with fewer usable backups than this.
    #[arg(long, default_value_t = 3)]
    pub(crate) min_backups: usize,
    /// WARNING when the newest backup is this fraction smaller than the median of recent ones.
    #[arg(long, default_value_t = 0.25)]
    pub(crate) size_drop_warn: f64,
    /// CRITICAL when the newest backup is this fraction smaller (an empty dump).
    #[arg(long, default_value_t = 0.5)]
    pub(crate) size_drop_crit: f64,
    /// WARNING when the newest backup is still unverified after this long.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub(crate) verify_grace: Duration,
    /// WARNING when less than this many bytes are free on the backup directory's disk (for an
    /// object store: the scratch directory's).
    #[arg(long, default_value_t = 1 << 30)]
    pub(crate) min_free_bytes: u64,
    /// For a replicated database: WARNING when the newest shipped change (or heartbeat) is
    /// older than this.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) warn_lag: Duration,
    /// CRITICAL when it is older than this.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) crit_lag: Duration,
    /// Also write the health as Prometheus metrics to this file (atomically), for
    /// node_exporter's textfile collector.
    #[arg(long, env = "BACKUP_PROMETHEUS_FILE")]
    pub(crate) prometheus: Option<PathBuf>,
    /// PostgreSQL point-in-time recovery: WARNING when the newest base backup is older than
    /// this.
    #[arg(long, default_value = "26h", value_parser = humantime::parse_duration)]
    pub(crate) warn_base_age: Duration,
    /// CRITICAL when it is older than this.
    #[arg(long, default_value = "50h", value_parser = humantime::parse_duration)]
    pub(crate) crit_base_age: Duration,
    /// WARNING when this many finished WAL segments wait to be archived.
    #[arg(long, default_value_t = 4)]
    pub(crate) warn_segments_behind: u64,
    /// Do not read the archiver of --database-url's PostgreSQL server (pg_stat_archiver);
    /// look at the repository only.
    #[arg(long)]
    pub(crate) no_server: bool,
}

impl MonitorArgs {
    pub(crate) fn policy(&self) -> backup::monitor::HealthPolicy {
        backup::monitor::HealthPolicy {
            warn_age: self.warn_age,
            crit_age: self.crit_age,
            min_backups: self.min_backups,
            size_window: 7,
            size_drop_warn: self.size_drop_warn,
            size_drop_crit: self.size_drop_crit,
            verify_grace: self.verify_grace,
            min_free_bytes: self.min_free_bytes,
            warn_lag: self.warn_lag,
            crit_lag: self.crit_lag,
            pitr: backup::PitrHealthPolicy {
                warn_base_age: self.warn_base_age,
                crit_base_age: self.crit_base_age,
                warn_segments_behind: self.warn_segments_behind,
            },
        }
    }
}
