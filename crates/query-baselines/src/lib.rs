//! The baselines the hotel data layer is measured against, kept out of its production API.
//!
//! - [`naive`]: the original system's way of answering each question — a query per row for its
//!   relations, rows loaded into memory to be filtered and summed. Same answers as
//!   `optimized_queries`, so the two can be checked against each other.
//! - [`workload`]: the original's five operations, each naive, optimized and cached, with
//!   deterministic parameters taken from a generated dataset. The criterion benches,
//!   `hotel-stats perf-table` and the examples run these, so the improvement is measured.
//!
//! Nothing here belongs in a service: depend on `optimized-queries` for that.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use chrono::NaiveDate;
//! use dataset::{DatasetOptions, Scale};
//! use migration::MigratorTrait;
//! use query_baselines::naive;
//!
//! let db = db_connect::connect("sqlite::memory:").await?;
//! migration::Migrator::up(&db, None).await?;
//! let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
//! dataset::generate(&db, &DatasetOptions::new(Scale::Tiny).reference_date(today), &|_| {}).await?;
//!
//! let slow = naive::room_types(&db).await?;
//! assert_eq!(slow, optimized_queries::room_types(&db).await?);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod naive;
pub mod workload;
