//! Applying migrations when several processes may start at once.

use sea_orm_migration::{
    MigratorTrait,
    sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, TransactionTrait},
};

use crate::Migrator;

/// The PostgreSQL advisory lock key taken while migrating (an arbitrary constant: "hotelmig"
/// in ASCII), so that no other application's lock is mistaken for it.
pub const MIGRATION_LOCK_KEY: i64 = 0x686f_7465_6c6d_6967;

/// Applies pending migrations (all, or the next `steps`) so that processes starting
/// together apply each migration exactly once.
///
/// On PostgreSQL the migrations run in one transaction holding a transaction-scoped advisory
/// lock ([`MIGRATION_LOCK_KEY`]): a second instance waits for the first to commit, then finds
/// nothing pending. Each migration still runs in its own savepoint, and if one fails every
/// migration of the call is rolled back, so the schema is never left half-migrated. On
/// SQLite, an embedded database with one server process, this is [`MigratorTrait::up`].
///
/// # Errors
///
/// When a migration fails or the database cannot be reached; nothing of the call is applied
/// then on PostgreSQL.
pub async fn apply_pending(db: &DatabaseConnection, steps: Option<u32>) -> Result<(), DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Migrator::up(db, steps).await;
    }
    let transaction = db.begin().await?;
    transaction
        .execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
        ))
        .await?;
    Migrator::up(&transaction, steps).await?;
    transaction.commit().await
}
