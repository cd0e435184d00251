//! sea-orm migrations of the hotel booking schema.
//!
//! | migration | what it does |
//! |---|---|
//! | [`m20261125_000001_create_tables`] | the tables, with keys, foreign keys and CHECK constraints only |
//! | [`m20261125_000002_booking_daily_stats`] | bookings summed per arrival date, room type and status, for fast reports |
//! | [`m20261125_000003_composite_indexes`] | the composite indexes of the original system (its entries of [`EXPECTED_INDEXES`]) |
//! | [`m20261128_000005_monthly_rollups`] | bookings and inventory summed by month, kept exact by triggers, for reports over long ranges |
//! | [`m20261129_000006_idempotency_keys_per_user`] | idempotency keys unique per user (`user_id`, `idempotency_key`) instead of across all users |
//!
//! The indexes live in their own migration so their effect can be measured with and without
//! them: [`drop_composite_indexes`] and [`create_composite_indexes`] run that migration's own
//! `down` and `up`, whatever came after it.
//!
//! [`EXPECTED_INDEXES`] ([`indexes`]) is the registry of every index the migrations create,
//! each with the migration that creates it: the migrations create their entries, and the index
//! checks (`hotel-stats check-indexes`, tests) expect all of them.
//!
//! An applied migration is never edited; a change is a new migration.
//!
//! # Feature flags
//!
//! - `backup`: the pre-migration gate ([`gate`]): a verified backup before migrating a
//!   database that holds data (pulls in the backup crate).
//! - `cli` (default): the `migration` binary; implies `backup`. A library user who only
//!   needs [`Migrator`] sets `default-features = false` and compiles neither clap nor the
//!   backup crate.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The trait that runs [`Migrator`] (`Migrator::up(&db, None)`), re-exported so that a caller
/// needs no direct dependency on sea-orm-migration.
#[doc(no_inline)]
pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

pub mod exclusive;
#[cfg(feature = "backup")]
#[cfg_attr(docsrs, doc(cfg(feature = "backup")))]
pub mod gate;
pub mod indexes;

pub mod m20261125_000001_create_tables;
pub mod m20261125_000002_booking_daily_stats;
pub mod m20261125_000003_composite_indexes;
pub mod m20261128_000005_monthly_rollups;
pub mod m20261129_000006_idempotency_keys_per_user;

pub use exclusive::{MIGRATION_LOCK_KEY, MigrationLock, apply_pending};
#[cfg(feature = "backup")]
#[cfg_attr(docsrs, doc(cfg(feature = "backup")))]
pub use gate::{Gate, MigrateError, Migrated, migrate_behind_backup, pre_migration_backup};
pub use indexes::{EXPECTED_INDEXES, IndexSpec};
pub use m20261125_000003_composite_indexes::{create_composite_indexes, drop_composite_indexes};

/// The hotel schema's migrator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_tables::Migration),
            Box::new(m20261125_000002_booking_daily_stats::Migration),
            Box::new(m20261125_000003_composite_indexes::Migration),
            Box::new(m20261128_000005_monthly_rollups::Migration),
            Box::new(m20261129_000006_idempotency_keys_per_user::Migration),
        ]
    }
}
