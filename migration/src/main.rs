//! `migration`: applies and reverts the hotel schema's migrations on `DATABASE_URL`.
//!
//! ```text
//! cargo run -p migration -- status
//! cargo run -p migration -- up          # every pending migration
//! cargo run -p migration -- down -n 1   # revert the newest one
//! cargo run -p migration -- fresh       # drop every table, then apply everything
//! ```
//!
//! Every command that changes the schema first runs the pre-migration gate when the database
//! holds data: a backup into `--backup-dir`, verified, or nothing is applied.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use sea_orm_migration::MigrationStatus;

/// Applies and reverts the hotel schema's migrations.
///
/// Works on SQLite (the default: a file under data/, created when missing) and PostgreSQL.
/// Before any command that changes the schema of a database holding data, a backup is taken
/// and verified (as `hotel-backup pre-migration` does); if it fails, nothing is applied and the
/// exit code is 3. Exit codes: 0 success, 1 failure, 2 bad usage, 3 the pre-migration backup
/// failed. Read-only commands (status) and commands that revert (down, refresh, reset) never
/// create a database: a SQLite path that does not exist is an error (exit 2).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Database to migrate: sqlite://path or postgres://user@host/db.
    #[arg(long, short = 'u', env = "DATABASE_URL", default_value = db_connect::DEFAULT_DATABASE_URL, global = true)]
    database_url: String,

    /// Where the pre-migration backup goes (see hotel-backup).
    #[arg(
        long,
        env = "BACKUP_DIR",
        default_value = "data/backups",
        global = true
    )]
    backup_dir: PathBuf,

    /// Change the schema without the verified pre-migration backup. For throw-away databases
    /// only: a failed migration can then lose data.
    #[arg(long, global = true)]
    skip_backup: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every migration and whether it is applied.
    Status,
    /// Apply pending migrations (all of them unless -n is given).
    Up {
        /// Apply at most this many.
        #[arg(short = 'n', long)]
        steps: Option<u32>,
    },
    /// Revert applied migrations, newest first (one unless -n is given).
    Down {
        /// Revert this many.
        #[arg(short = 'n', long, default_value_t = 1)]
        steps: u32,
    },
    /// Drop every table, then apply every migration. Destroys all data.
    Fresh,
    /// Revert every applied migration, then apply them all again. Destroys all data.
    Refresh,
    /// Revert every applied migration. Destroys all data.
    Reset,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(exit_code(&err))
        }
    }
}

/// 3 when the pre-migration backup failed, 2 for what the user asked wrongly (no database at
/// the URL for a command that needs one, a URL of an unknown kind), 1 for anything else.
fn exit_code(err: &anyhow::Error) -> u8 {
    if err.is::<GateFailed>() {
        return 3;
    }
    let usage = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<db_connect::Error>(),
            Some(
                db_connect::Error::DatabaseNotFound { .. }
                    | db_connect::Error::UnsupportedUrl { .. }
            )
        )
    });
    if usage { 2 } else { 1 }
}

/// The pre-migration backup failed; nothing was applied.
#[derive(Debug)]
struct GateFailed;

impl std::fmt::Display for GateFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the pre-migration backup failed, so nothing was applied (--skip-backup to go ahead without one)")
    }
}

impl std::error::Error for GateFailed {}

impl Command {
    /// Whether the command may create the database: only `up` and `fresh` build a schema from
    /// nothing. The others read or revert one, and a mistyped SQLite path must not leave an
    /// empty database behind.
    fn creates_database(&self) -> bool {
        matches!(self, Command::Up { .. } | Command::Fresh)
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = db_connect::redact_password(&cli.database_url);
    let settings = db_connect::ConnectionSettings {
        create_if_missing: cli.command.creates_database(),
        ..db_connect::ConnectionSettings::default()
    };
    let db = db_connect::connect_with(&cli.database_url, &settings)
        .await
        .with_context(|| format!("while connecting to {url}"))?;
    if let Command::Status = cli.command {
        // Reads only: a database never migrated has every migration pending, and no
        // migration table is created to say so.
        for migration in Migrator::get_migration_with_status_read_only(&db).await? {
            let status = match migration.status() {
                MigrationStatus::Applied => "applied",
                MigrationStatus::Pending => "pending",
            };
            println!("{status:8} {}", migration.name());
        }
        db.close().await.context("while closing the connection")?;
        return Ok(());
    }
    // From reading what is applied to the last change, no other process may migrate.
    let lock = migration::MigrationLock::acquire(&db)
        .await
        .context("while taking the migration lock")?;
    let pending = lock.pending().await?;
    let applied = lock.applied().await?;
    let changes_schema = match cli.command {
        Command::Status => false,
        Command::Up { .. } => !pending.is_empty(),
        Command::Down { .. } | Command::Refresh | Command::Reset => !applied.is_empty(),
        Command::Fresh => true,
    };
    if changes_schema {
        let gate =
            migration::pre_migration_backup(&cli.database_url, &cli.backup_dir, cli.skip_backup)
                .await
                .with_context(|| {
                    format!(
                        "while taking the pre-migration backup into {}",
                        cli.backup_dir.display()
                    )
                });
        match gate {
            Ok(migration::Gate::BackedUp(id)) => println!(
                "pre-migration backup {id} taken and verified in {}",
                cli.backup_dir.display()
            ),
            Ok(migration::Gate::NothingToBackUp) => {}
            Ok(migration::Gate::Skipped) => {
                eprintln!(
                    "warning: --skip-backup: changing the schema without a pre-migration backup"
                );
            }
            Err(err) => return Err(err.context(GateFailed)),
        }
    }
    let done = match cli.command {
        Command::Status => String::new(),
        Command::Up { steps } => {
            lock.apply(steps)
                .await
                .context("while applying migrations")?;
            let count = steps.map_or(pending.len(), |n| pending.len().min(n as usize));
            format!("applied {count} migration(s) to {url}")
        }
        Command::Down { steps } => {
            lock.revert(Some(steps))
                .await
                .context("while reverting migrations")?;
            format!(
                "reverted {} migration(s) on {url}",
                applied.len().min(steps as usize)
            )
        }
        Command::Fresh => {
            Migrator::fresh(lock.executor())
                .await
                .context("while recreating the schema")?;
            format!("dropped every table and applied every migration on {url}")
        }
        Command::Refresh => {
            Migrator::refresh(lock.executor())
                .await
                .context("while refreshing the schema")?;
            format!("reverted and re-applied every migration on {url}")
        }
        Command::Reset => {
            Migrator::reset(lock.executor())
                .await
                .context("while reverting every migration")?;
            format!("reverted every migration on {url}")
        }
    };
    lock.release()
        .await
        .context("while committing the schema change")?;
    println!("{done}");
    db.close().await.context("while closing the connection")?;
    Ok(())
}
