//! The command line: every command and option, with the help text `--help` prints.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use dataset::Scale;
use perf_stats::SortKey;

/// Shown after every `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success: the report was printed and nothing failed
  1  a check failed: check-indexes found a missing index or a hot query that scans;
     cache-stats found poor cache reuse (under 2 hits per entry) after --min-lookups lookups
  2  usage error, or the command could not run: bad option, unreachable server or database,
     token refused, unexpected answer or database error

Logs go to stderr (RUST_LOG sets the levels, default warn); reports go to stdout.";

/// Performance reports for the hotel backend: a running server's cache and queries, a
/// database's indexes and query plans, and the measured before/after table.
///
/// Tables are aligned for people; --json prints one JSON document for scripts. Long work
/// shows a progress bar when stderr is a terminal.
#[derive(Debug, Parser)]
#[command(name = "hotel-stats", version, about, long_about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print the report as one JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Logging (`--log-format`; RUST_LOG sets the levels, default warn).
    #[command(flatten)]
    pub log: cli_support::LogArgs,

    /// What to report.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The live statistics of a running server's query cache, with the reuse assessment.
    ///
    /// Reads GET /api/admin/cache/stats: size and fill, hits, misses, hit ratio, hits per
    /// entry, expirations, evictions and loads since the server started, and the original
    /// system's assessment (excellent above 5 hits per entry, good from 2, poor below).
    /// Exits 1 when reuse is poor after at least --min-lookups lookups.
    #[command(after_help = EXIT_CODES)]
    CacheStats(CacheStatsArgs),

    /// The top query shapes of a running server, or latency percentiles of the hot queries
    /// run against a database.
    ///
    /// With --url (the default): reads GET /api/admin/queries and prints the top --top query
    /// shapes by --sort, with calls, errors and p50/p95/p99, then likely N+1 patterns and
    /// recent slow queries.
    ///
    /// With --database-url: runs each of the hotel's hot queries (exactly as the
    /// optimized-queries helpers build them, with ids and dates picked from the data)
    /// --runs times after --warmup untimed runs and prints p50/p95/p99 per query. Writes run inside a transaction that is
    /// rolled back, so the database is left as it was.
    #[command(after_help = EXIT_CODES)]
    AnalyzeQueries(AnalyzeQueriesArgs),

    /// Compares the database's indexes with the composite-index migration and EXPLAINs every
    /// hot query.
    ///
    /// Prints missing, mismatched and undeclared indexes; for each hot query whether an index
    /// serves it, or it reads a filtered table whole (full scan), sorts in a temporary
    /// structure or needs an automatic index; the share of hot queries served by an index
    /// (target above 95 %); and for each scan the composite index that would serve it, as SQL
    /// and as a ready sea-orm migration snippet. Exits 1 when an expected index is missing or
    /// a hot query scans.
    #[command(after_help = EXIT_CODES)]
    CheckIndexes(CheckIndexesArgs),

    /// Measures the original system's Before/After table on a generated dataset.
    ///
    /// Generates the dataset (--scale) into an empty database, then times each of the five
    /// operations (room types, availability for 7 nights, a guest's bookings with room type
    /// and payments, create booking, a one-year report): the optimized helpers and the cached
    /// helpers with the composite-index migration applied, then the naive baseline after
    /// rolling that migration back (it is re-applied at the end). Prints p50 and p95 over
    /// --runs after --warmup runs, and the improvement factors naive p50 / optimized p50 and
    /// naive p50 / cached p50, beside the original's figures. Bookings made while measuring
    /// are cancelled (untimed), so the inventory never drains.
    #[command(after_help = EXIT_CODES)]
    PerfTable(PerfTableArgs),
}

/// How to reach a running hotel-server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Base URL of the running hotel-server (plain http).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,

    /// An administrator's API token (`hotel-server token create --email E --role admin`).
    /// Sent as `Authorization: Bearer`; never printed or logged.
    #[arg(long, env = "HOTEL_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<AdminToken>,

    /// Seconds to wait for the server's answer.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
}

/// An API token: shown as `***` by `Debug`, so it cannot leak into a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// The token itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

impl std::str::FromStr for AdminToken {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Options of `cache-stats`.
#[derive(Debug, Clone, Args)]
pub struct CacheStatsArgs {
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,

    /// Lookups the cache must have served before its reuse is assessed (and poor reuse exits
    /// 1): a server that just started, with only its pre-warming behind it, is not unhealthy.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub min_lookups: u64,
}

/// What to rank query shapes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    /// Total time spent in the shape: where the database time goes.
    TotalTime,
    /// 99th percentile: the worst experiences.
    P99,
    /// Number of executions: chatty code, N+1 loops.
    Calls,
}

impl From<SortBy> for SortKey {
    fn from(sort: SortBy) -> Self {
        match sort {
            SortBy::TotalTime => SortKey::TotalTime,
            SortBy::P99 => SortKey::P99,
            SortBy::Calls => SortKey::Calls,
        }
    }
}

impl SortBy {
    /// The words used in report titles.
    pub fn describe(self) -> &'static str {
        match self {
            SortBy::TotalTime => "total time",
            SortBy::P99 => "p99",
            SortBy::Calls => "calls",
        }
    }
}

/// Ids and the date that make the hot queries realistic; each is picked from the data when
/// not given.
#[derive(Debug, Clone, Default, Args)]
pub struct SampleArgs {
    /// Room type for the per-room-type hot queries. Default: the most booked one.
    #[arg(long, value_name = "ID")]
    pub room_type_id: Option<i64>,

    /// Guest for the per-guest hot queries. Default: the guest with the most bookings.
    #[arg(long, value_name = "ID")]
    pub user_id: Option<i64>,

    /// "Today" (YYYY-MM-DD): availability is asked for the week after it, reports for the year
    /// before it. Default: today (UTC), moved into the inventory's dates when outside them.
    #[arg(long, value_name = "DATE")]
    pub today: Option<NaiveDate>,
}

/// Options of `analyze-queries`.
#[derive(Debug, Clone, Args)]
pub struct AnalyzeQueriesArgs {
    /// The server (ignored with --database-url or DATABASE_URL).
    #[command(flatten)]
    pub server: ServerArgs,

    /// Run the hot queries against this database instead of asking a server:
    /// sqlite://path or postgres://user@host/db. The database is left as it was. Like every
    /// --database-url of the three binaries it reads DATABASE_URL; a server is asked when
    /// neither is set.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// How many query shapes to list (server mode).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,

    /// What to rank query shapes by (server mode).
    #[arg(long, value_enum, default_value = "total-time")]
    pub sort: SortBy,

    /// Timed runs of each hot query (--database-url mode).
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,

    /// Untimed runs of each hot query first (--database-url mode). Keep it at least the pool's
    /// size (8 on SQLite, 10 on PostgreSQL): each pooled connection prepares a statement on
    /// its first use.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub warmup: u64,

    /// Parameters of the hot queries (--database-url mode).
    #[command(flatten)]
    pub sample: SampleArgs,
}

/// How PostgreSQL plans are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanMode {
    /// Sequential scans disabled for the EXPLAIN (in a rolled-back transaction): the plan says
    /// whether an index CAN serve the query, whatever the table's size. Right for test and
    /// development data, where PostgreSQL rightly reads small tables whole.
    Forced,
    /// The planner's own choice. On small PostgreSQL tables every query then "scans" whatever
    /// the indexes; use this on production-sized data to see the plans really taken.
    Realistic,
}

/// Options of `check-indexes`.
#[derive(Debug, Clone, Args)]
pub struct CheckIndexesArgs {
    /// Database to check: sqlite://path or postgres://user@host/db. Nothing is written.
    #[arg(long, env = "DATABASE_URL", default_value = db_connect::DEFAULT_DATABASE_URL, value_name = "URL", hide_env_values = true)]
    pub database_url: String,

    /// How PostgreSQL plans are taken (SQLite's planner uses an index whenever one fits, so
    /// both modes give the same plans there).
    #[arg(long, value_enum, default_value = "forced")]
    pub plans: PlanMode,

    /// Parameters of the hot queries.
    #[command(flatten)]
    pub sample: SampleArgs,
}

/// Options of `perf-table`.
#[derive(Debug, Clone, Args)]
pub struct PerfTableArgs {
    /// Dataset size: tiny (tests), small (~20k bookings, the quick default), medium (~200k),
    /// large (~1M bookings, the documented run).
    #[arg(long, default_value = "small")]
    pub scale: Scale,

    /// An EMPTY database to generate into: sqlite://path or postgres://user@host/db (it keeps
    /// the data and the indexes afterwards). Default: a temporary SQLite file, deleted at the
    /// end. Deliberately not read from DATABASE_URL (the application's database is never
    /// empty), hence not named --database-url, which the old name still accepts.
    #[arg(long = "generate-into", alias = "database-url", value_name = "URL")]
    pub generate_into: Option<String>,

    /// Timed runs of each operation and variant.
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,

    /// Untimed runs before the timed ones. Keep it at least the connection pool's size (8 on
    /// SQLite, 10 on PostgreSQL): sequential runs take the pooled connections in turn and each
    /// prepares a statement on first use, which would otherwise land in the timed runs. The
    /// cached variant is also loaded with every parameter the timed runs use.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub warmup: u64,

    /// Seed of the dataset.
    #[arg(long, default_value_t = dataset::DEFAULT_SEED)]
    pub seed: u64,

    /// The dataset's "today" (YYYY-MM-DD). Default: today (UTC).
    #[arg(long, value_name = "DATE")]
    pub reference_date: Option<NaiveDate>,

    /// Also write the table as markdown, with the command, date, machine, dataset and backend,
    /// ready for docs/PERFORMANCE.md.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_parse() {
        let cli = Cli::try_parse_from([
            "hotel-stats",
            "analyze-queries",
            "--sort",
            "p99",
            "--top",
            "3",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let Command::AnalyzeQueries(args) = cli.command else {
            panic!("analyze-queries parsed as {:?}", cli.command);
        };
        assert_eq!((args.sort, args.top), (SortBy::P99, 3));
        assert_eq!(args.server.url, "http://127.0.0.1:3000");
        assert!(args.database_url.is_none());

        let cli =
            Cli::try_parse_from(["hotel-stats", "cache-stats", "--token", "htk_secret"]).unwrap();
        let debug = format!("{cli:?}");
        assert!(!debug.contains("htk_secret"), "{debug}");
        let Command::CacheStats(args) = cli.command else {
            panic!("cache-stats parsed as {:?}", cli.command);
        };
        assert_eq!(args.server.token.unwrap().expose(), "htk_secret");

        let cli = Cli::try_parse_from(["hotel-stats", "perf-table", "--scale", "tiny"]).unwrap();
        let Command::PerfTable(args) = cli.command else {
            panic!("perf-table parsed as {:?}", cli.command);
        };
        assert_eq!((args.scale, args.runs, args.warmup), (Scale::Tiny, 20, 10));
        assert!(Cli::try_parse_from(["hotel-stats", "perf-table", "--runs", "0"]).is_err());
        assert!(Cli::try_parse_from(["hotel-stats", "perf-table", "--scale", "huge"]).is_err());
    }
}
