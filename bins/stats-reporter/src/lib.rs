//! `hotel-stats`: performance reports for the hotel backend, for operators and scripts.
//!
//! | command | reads | exits 1 when |
//! |---|---|---|
//! | `cache-stats` | a running server's `GET /api/admin/cache/stats` | reuse is poor (after `--min-lookups` lookups) |
//! | `analyze-queries` | a running server's `GET /api/admin/queries`, or runs the hot queries against `--database-url` | never |
//! | `check-indexes` | a database: its indexes and the plans of the hot queries | an expected index is missing or a hot query scans |
//! | `perf-table` | a dataset it generates | never |
//!
//! Every command prints aligned tables, or one JSON document with `--json`. Usage errors and
//! failures to run (unreachable server or database, refused token) exit 2.
//!
//! The binary's `main` parses the [`Cli`], installs the tracing subscriber and calls [`run`];
//! the libraries do the work: perf-stats (percentiles, index and plan checks), optimized-queries
//! (the hot queries and the measured workload), dataset and migration.

mod admin_api;
mod analyze_queries;
mod cache_stats;
mod check_indexes;
pub mod cli;
mod database;
mod marks;
mod perf_table;
mod progress;
mod sample;
mod table;

use std::process::ExitCode;

pub use cli::Cli;

/// How a command that ran to the end turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing failed: exit 0.
    Ok,
    /// A check failed or the server is unhealthy: exit 1.
    CheckFailed,
}

/// Exit code of a command that could not run (usage, connection, refused token): 2, as clap
/// uses for usage errors.
pub const EXIT_ERROR: u8 = 2;

impl Outcome {
    /// The process exit code: 0 or 1.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::CheckFailed => ExitCode::from(1),
        }
    }
}

/// Runs the command `cli` asks for and prints its report on stdout.
///
/// # Errors
///
/// When the command cannot run: a bad URL, an unreachable server or database, a refused token,
/// an unexpected answer, a database error. The caller exits with [`EXIT_ERROR`].
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        cli::Command::CacheStats(args) => cache_stats::run(&args, cli.json).await,
        cli::Command::AnalyzeQueries(args) => analyze_queries::run(&args, cli.json).await,
        cli::Command::CheckIndexes(args) => check_indexes::run(&args, cli.json).await,
        cli::Command::PerfTable(args) => perf_table::run(&args, cli.json).await,
    }
}
