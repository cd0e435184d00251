//! The backup library against real SQLite files and PostgreSQL databases.
//!
//! Every scenario of the "faults and bad input" list runs here on both backends where
//! it applies (tests named `<scenario>::sqlite` and `<scenario>::postgres`).

mod create;
mod faults;
mod monitor;
mod restore;
mod retention;
mod schedule;
mod support;
