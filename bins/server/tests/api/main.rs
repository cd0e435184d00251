//! hotel-server end to end: the real server on a random port, on SQLite and PostgreSQL.

mod admin;
mod bookings;
mod catalog;
mod cli;
mod concurrency;
mod harness;
mod operations;
mod scale_out;
