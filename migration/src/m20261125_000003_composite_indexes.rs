//! The composite indexes of the original system, each named `idx_<table>_<columns>`.
//!
//! They are the entries of the registry [`crate::indexes::EXPECTED_INDEXES`] that name this
//! migration; `down` drops exactly those. The registry is the list the index checks read too.

use sea_orm_migration::prelude::*;

use crate::indexes::created_by;

/// Creates the composite indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for spec in created_by(self.name()) {
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
        for spec in created_by(self.name()).rev() {
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
