//! `migration`: applies and reverts the hotel schema's migrations on `DATABASE_URL`.
//!
//! ```text
//! cargo run -p migration -- status
//! cargo run -p migration -- up          # every pending migration
//! cargo run -p migration -- down -n 1   # revert the newest one
//! cargo run -p migration -- fresh       # drop every table, then apply everything
//! ```

use anyhow::Context;
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use sea_orm_migration::MigrationStatus;

/// Applies and reverts the hotel schema's migrations.
///
/// Works on SQLite (the default: a file under data/, created when missing) and PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Database to migrate: sqlite://path or postgres://user@host/db.
    #[arg(long, short = 'u', env = "DATABASE_URL", default_value = db_connect::DEFAULT_DATABASE_URL, global = true)]
    database_url: String,

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
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = db_connect::redact_password(&cli.database_url);
    let db = db_connect::connect(&cli.database_url)
        .await
        .with_context(|| format!("while connecting to {url}"))?;
    match cli.command {
        Command::Status => {
            for migration in Migrator::get_migration_with_status(&db).await? {
                let status = match migration.status() {
                    MigrationStatus::Applied => "applied",
                    MigrationStatus::Pending => "pending",
                };
                println!("{status:8} {}", migration.name());
            }
        }
        Command::Up { steps } => {
            let pending = Migrator::get_pending_migrations(&db).await?.len();
            Migrator::up(&db, steps)
                .await
                .context("while applying migrations")?;
            let applied = steps.map_or(pending, |n| pending.min(n as usize));
            println!("applied {applied} migration(s) to {url}");
        }
        Command::Down { steps } => {
            let applied = Migrator::get_applied_migrations(&db).await?.len();
            Migrator::down(&db, Some(steps))
                .await
                .context("while reverting migrations")?;
            println!(
                "reverted {} migration(s) on {url}",
                applied.min(steps as usize)
            );
        }
        Command::Fresh => {
            Migrator::fresh(&db)
                .await
                .context("while recreating the schema")?;
            println!("dropped every table and applied every migration on {url}");
        }
        Command::Refresh => {
            Migrator::refresh(&db)
                .await
                .context("while refreshing the schema")?;
            println!("reverted and re-applied every migration on {url}");
        }
        Command::Reset => {
            Migrator::reset(&db)
                .await
                .context("while reverting every migration")?;
            println!("reverted every migration on {url}");
        }
    }
    db.close().await.context("while closing the connection")?;
    Ok(())
}
