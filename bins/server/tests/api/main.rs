//! hotel-server end to end: the real server on a random port, on SQLite and PostgreSQL.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod admin;
mod bad_input;
mod bookings;
mod catalog;
mod cli;
mod concurrency;
mod contract;
mod dates;
mod harness;
mod hostile_clients;
mod observability;
mod operations;
mod readme;
mod replication;
mod scale_out;
mod server_process;
