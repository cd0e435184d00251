//! Command line and environment configuration.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Shown after `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  stopped by SIGINT or SIGTERM after finishing the requests in flight, or a token command
     succeeded
  1  failed to start (database, migrations, bind address, pre-migration backup) or to serve;
     the cause is on stderr
  2  usage error: an unknown or invalid option";

/// The hotel booking API server.
///
/// Serves the booking API, Prometheus metrics at /metrics and a live performance dashboard at
/// /admin/dashboard. On start it applies pending migrations (after a verified pre-migration
/// backup when the database already holds data), pre-warms the cache and logs where it listens.
/// Every option can also be set through the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "hotel-server", version, about, long_about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Database: sqlite://path (created when missing) or postgres://user@host/db.
    #[arg(long, env = "DATABASE_URL", default_value = db_connect::DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,

    /// Logging (`--log-format`; RUST_LOG sets the levels, default info).
    #[command(flatten)]
    pub log: cli_support::LogArgs,

    /// A token command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of the server.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// SQLite's `synchronous` setting for the server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSynchronous {
    /// Every commit is on disk before it returns (durable commits).
    Full,
    /// Commits reach the disk at WAL checkpoints; a power loss may lose the last ones.
    Normal,
}

impl SqliteSynchronous {
    /// Whether commits are durable.
    pub fn durable(self) -> bool {
        self == Self::Full
    }
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or revoke API tokens.
    Token {
        /// The token action.
        #[command(subcommand)]
        action: TokenAction,
    },
}

/// Token management.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create the user if needed and print a new token for it (shown once; only its SHA-256
    /// is stored).
    Create {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// The user's role; for an existing user, changes it.
        #[arg(long, value_enum)]
        role: Option<Role>,
        /// The user's display name, for a new user (default: the email's local part).
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a token, or every token of a user.
    Revoke {
        /// The token to revoke.
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        token: Option<String>,
        /// Revoke every token of this user.
        #[arg(long)]
        email: Option<String>,
    },
}

/// A user's role, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Books rooms for themselves.
    Guest,
    /// Manages inventory and reads reports.
    Admin,
}

impl From<Role> for entity::UserRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Guest => entity::UserRole::Guest,
            Role::Admin => entity::UserRole::Admin,
        }
    }
}

/// Options of the server itself.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// A PostgreSQL streaming standby of the primary, for reports. A report reads it only once
    /// it has replayed every write that returned before the report began, so it never shows
    /// the past; while it is down, lagging or promoted, reports read the primary. Its lag is
    /// the metric `hotel_replica_lag_seconds`.
    #[arg(long, env = "READ_REPLICA_URL")]
    pub read_replica_url: Option<String>,

    /// With READ_REPLICA_URL: how long, in milliseconds, a report waits for the standby to
    /// replay the primary's latest writes before it reads the primary instead.
    #[arg(long, env = "REPLICA_MAX_WAIT_MS", default_value_t = 100)]
    pub replica_max_wait_ms: u64,

    /// Redis for the shared cache tier (L2) and cross-instance invalidation, for several
    /// instances behind a load balancer. Without it the in-process cache works alone.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "hotel:cache")]
    pub redis_prefix: String,

    /// With REDIS_URL: the longest, in milliseconds, an entry stays in this instance's own
    /// cache before it is read from Redis again. It bounds how long an instance can serve a
    /// value whose invalidation message it missed; 0 keeps nothing in process (every lookup is
    /// a Redis round trip).
    #[arg(long, env = "CACHE_L1_MAX_TTL_MS", default_value_t = 5_000)]
    pub cache_l1_max_ttl_ms: u64,

    /// Most entries the in-process query cache holds.
    #[arg(long, env = "CACHE_MAX_ENTRIES", default_value_t = 50_000)]
    pub cache_max_entries: usize,

    /// SQLite only: when a commit reaches the disk. `full` (the default) syncs the write-ahead
    /// log before every commit returns, so an acknowledged booking survives a power loss.
    /// `normal` syncs only at checkpoints: each write is a little faster (see
    /// docs/PERFORMANCE.md, "Durable commits"), a crash of the process still loses nothing,
    /// but a power loss may roll back the last bookings after their 201 was sent.
    #[arg(long, env = "SQLITE_SYNCHRONOUS", value_enum, default_value = "full")]
    pub sqlite_synchronous: SqliteSynchronous,

    /// Statements slower than this many milliseconds are logged and counted as slow.
    #[arg(long, env = "SLOW_QUERY_MS", default_value_t = 100)]
    pub slow_query_ms: u64,

    /// Directory of the database backups (health shown at /api/admin/backups; the
    /// pre-migration backup is written there).
    #[arg(long, env = "BACKUP_DIR", default_value = "data/backups")]
    pub backup_dir: PathBuf,

    /// Apply pending migrations without the verified pre-migration backup. Use only when
    /// another backup of the database exists.
    #[arg(long)]
    pub skip_backup: bool,

    /// Replicate the SQLite database continuously into this repository (a directory or
    /// s3://bucket/prefix?endpoint=…&region=…, credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY): every committed change is shipped within a second, and
    /// `hotel-backup restore --latest` or `--to-time` rebuilds the database from it.
    #[arg(long, env = "REPLICATE_TO", value_parser = parse_repository)]
    pub replicate_to: Option<backup::RepositoryLocation>,

    /// Seconds a request may take, reading its body included, before it is answered 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Requests handled at once. More are answered 503 with Retry-After at once rather than
    /// queued (/healthz and /metrics are never refused). At most half of MAX_CONNECTIONS.
    #[arg(long, env = "MAX_REQUESTS_IN_FLIGHT", default_value_t = 512)]
    pub max_requests_in_flight: usize,

    /// Client connections open at once. At the limit the connection idle the longest is closed
    /// to make room for a new one. Lowered to fit the open-files limit (`ulimit -n`, raised to
    /// its hard limit at start) less 128 descriptors kept for the database and logs.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Seconds from the first byte of a request to the end of its headers; a slower client
    /// (a slowloris) is disconnected.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds a connection may stay open with no request in progress and none arriving
    /// (keep-alive between requests, or a connection that never sends anything).
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// First run on a fresh machine: create the SQLite database, migrate it, generate the
    /// small dataset (when empty), create an admin and a guest and print their tokens as
    /// ADMIN_TOKEN=... and GUEST_TOKEN=... lines before serving. Reuses the data when run again.
    #[arg(long)]
    pub demo: bool,
}

impl ServeArgs {
    /// The request and connection limits these options set.
    pub fn http_limits(&self) -> crate::app::HttpLimits {
        crate::app::HttpLimits {
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_body_bytes: self.max_body_bytes,
            max_requests_in_flight: self.max_requests_in_flight,
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

fn parse_repository(text: &str) -> Result<backup::RepositoryLocation, String> {
    backup::RepositoryLocation::parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn commits_are_durable_unless_traded_away() {
        let default = Cli::try_parse_from(["hotel-server"]).unwrap();
        assert!(default.serve.sqlite_synchronous.durable());
        let normal =
            Cli::try_parse_from(["hotel-server", "--sqlite-synchronous", "normal"]).unwrap();
        assert!(!normal.serve.sqlite_synchronous.durable());
        assert!(Cli::try_parse_from(["hotel-server", "--sqlite-synchronous", "off"]).is_err());
    }
}
