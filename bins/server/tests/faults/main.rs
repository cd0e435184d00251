//! The fault suite (issue 16): real processes and real faults, each followed by an audit.
//!
//! - `concurrent_start`: hotel-server processes started together on a fresh database;
//! - `dead_connections`: backends terminated under the pool, idle and under load;
//!
//! Every scenario runs on servers of its own (a PostgreSQL cluster, a redis-server, several
//! hotel-server processes), so scenarios run in parallel and never touch the shared services.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod concurrent_start;
mod dead_connections;
mod support;
