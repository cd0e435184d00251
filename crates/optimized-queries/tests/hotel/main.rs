//! optimized-queries on real SQLite and PostgreSQL databases.

mod cache;
mod concurrency;
mod consistency;
mod fixture;
mod reads;
mod writes;
