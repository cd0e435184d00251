//! The fault suite (issue 16): real processes and real faults, each followed by an audit.
//!
//! - `concurrent_start`: hotel-server processes started together on a fresh database;
//! - `dead_connections`: backends terminated under the pool, idle and under load;
//! - `database_restart`: the PostgreSQL server killed with SIGKILL and restarted mid-storm, or
//!   paused with SIGSTOP for longer than the request timeout;
//! - `read_replica`: a streaming standby behind the reports, paused, killed and restarted;
//! - `redis_outage`: the shared Redis stopped, restarted empty and paused under two instances;
//! - `server_kill`: a hotel-server killed mid-storm and restarted, on SQLite and PostgreSQL.
//!
//! After each fault, `support::audit` reads the database and checks it against every answer
//! the clients got (see its docs).
//!
//! Every scenario runs on servers of its own (a PostgreSQL cluster, a redis-server, several
//! hotel-server processes), so scenarios run in parallel and never touch the shared services.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod audit_check;
mod concurrent_start;
mod database_restart;
mod dead_connections;
mod read_replica;
mod redis_outage;
mod server_kill;
mod support;
