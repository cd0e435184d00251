//! The backup library against real SQLite files and PostgreSQL databases.
//!
//! Every scenario of the "faults and bad input" list runs here on both backends where
//! it applies (tests named `<scenario>::sqlite` and `<scenario>::postgres`).

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod create;
mod faults;
mod in_use;
mod leftovers;
mod monitor;
mod point_in_time;
mod replicate;
mod restore;
mod retention;
mod schedule;
mod support;
