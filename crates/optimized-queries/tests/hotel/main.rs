//! optimized-queries on real SQLite and PostgreSQL databases.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod cache;
mod concurrency;
mod consistency;
mod dead_connections;
mod executor;
mod fixture;
mod reads;
mod rollups;
mod writes;
