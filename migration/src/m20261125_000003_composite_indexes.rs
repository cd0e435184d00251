//! The composite indexes of the original system, each named `idx_<table>_<columns>`.
//!
//! [`COMPOSITE_INDEXES`] lists them as data, so tools (index checks, tests) compare the database
//! against exactly what this migration creates; `down` drops exactly that list.

use sea_orm_migration::prelude::*;

/// One index this migration creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index's name.
    pub name: &'static str,
    /// The indexed table.
    pub table: &'static str,
    /// The indexed columns, in order.
    pub columns: &'static [&'static str],
}

/// Every index the composite-index migration creates.
pub const COMPOSITE_INDEXES: &[IndexSpec] = &[
    IndexSpec {
        name: "idx_bookings_status_start_end",
        table: "bookings",
        columns: &["status", "start_date", "end_date"],
    },
    IndexSpec {
        name: "idx_bookings_user_status_created",
        table: "bookings",
        columns: &["user_id", "status", "created_at"],
    },
    IndexSpec {
        name: "idx_bookings_room_type_start_end",
        table: "bookings",
        columns: &["room_type_id", "start_date", "end_date"],
    },
    IndexSpec {
        name: "idx_bookings_start_end_room_type_status",
        table: "bookings",
        columns: &["start_date", "end_date", "room_type_id", "status"],
    },
    IndexSpec {
        name: "idx_room_inventory_room_type_date_available",
        table: "room_inventory",
        columns: &["room_type_id", "date", "available_rooms"],
    },
    IndexSpec {
        name: "idx_waitlist_entries_status_start_end",
        table: "waitlist_entries",
        columns: &["status", "start_date", "end_date"],
    },
    IndexSpec {
        name: "idx_waitlist_entries_room_type_status_created",
        table: "waitlist_entries",
        columns: &["room_type_id", "status", "created_at"],
    },
    IndexSpec {
        name: "idx_payments_status_created",
        table: "payments",
        columns: &["status", "created_at"],
    },
    IndexSpec {
        name: "idx_payments_user_status",
        table: "payments",
        columns: &["user_id", "status"],
    },
    IndexSpec {
        name: "idx_payments_booking",
        table: "payments",
        columns: &["booking_id"],
    },
    IndexSpec {
        name: "idx_notifications_status_scheduled",
        table: "notifications",
        columns: &["status", "scheduled_at"],
    },
    IndexSpec {
        name: "idx_notifications_user_kind_status",
        table: "notifications",
        columns: &["user_id", "kind", "status"],
    },
];

/// Creates the composite indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for spec in COMPOSITE_INDEXES {
            let mut index = Index::create();
            index.name(spec.name).table(Alias::new(spec.table));
            for column in spec.columns {
                index.col(Alias::new(*column));
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for spec in COMPOSITE_INDEXES.iter().rev() {
            manager
                .drop_index(
                    Index::drop()
                        .name(spec.name)
                        .table(Alias::new(spec.table))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Drops the composite indexes with this migration's own `down`, leaving the migration table
/// (and every later migration) as it is: for measuring the schema without them. Put them back
/// with [`create_composite_indexes`].
///
/// # Errors
///
/// The database's, e.g. when the indexes are not there.
pub async fn drop_composite_indexes(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    let transaction = begin_with_fresh_schema(db).await?;
    Migration.down(&SchemaManager::new(&transaction)).await?;
    transaction.commit().await
}

/// Creates the composite indexes again after [`drop_composite_indexes`], with this migration's
/// own `up`.
///
/// # Errors
///
/// The database's, e.g. when an index is already there.
pub async fn create_composite_indexes(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    let transaction = begin_with_fresh_schema(db).await?;
    Migration.up(&SchemaManager::new(&transaction)).await?;
    transaction.commit().await
}

/// A transaction whose connection sees the schema as it is now.
///
/// A pooled SQLite connection checks `CREATE INDEX` and `DROP INDEX` against the schema it
/// last read, which is stale when another connection changed it since: the index that
/// connection dropped then "already exists". Reading `sqlite_schema` inside the transaction
/// makes SQLite compare the schema cookie and reload.
async fn begin_with_fresh_schema(
    db: &sea_orm::DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let transaction = db.begin().await?;
    if transaction.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        transaction
            .execute_unprepared("SELECT count(*) FROM sqlite_schema")
            .await?;
    }
    Ok(transaction)
}
