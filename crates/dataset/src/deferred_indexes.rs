//! Secondary indexes set aside during a bulk load and rebuilt after it.
//!
//! Filling a B-tree index row by row in random key order costs several times more than building
//! it once from sorted data, so (as `pg_restore` does) the non-unique indexes are dropped before
//! the load and recreated from their own definitions after it. Unique indexes stay: they enforce
//! constraints. Both SQLite and PostgreSQL have transactional DDL, and the load runs in one
//! transaction, so a failed load leaves the indexes as they were.

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use crate::{Result, error::DbContext};

/// The definitions of the indexes dropped by [`drop_secondary_indexes`].
pub(crate) struct DeferredIndexes {
    definitions: Vec<String>,
}

/// Drops the non-unique indexes of `tables`, returning how to recreate them.
pub(crate) async fn drop_secondary_indexes<C: ConnectionTrait>(
    conn: &C,
    tables: &[&str],
) -> Result<DeferredIndexes> {
    let backend = conn.get_database_backend();
    let table_list = tables
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = match backend {
        DatabaseBackend::Postgres => format!(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename IN ({table_list}) AND indexdef NOT LIKE 'CREATE UNIQUE%' ORDER BY indexname"
        ),
        _ => format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ({table_list}) AND sql NOT LIKE 'CREATE UNIQUE%' ORDER BY name"
        ),
    };
    let rows = conn
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .doing("reading index definitions")?;
    let mut definitions = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get_by_index(0).doing("reading an index name")?;
        let definition: String = row
            .try_get_by_index(1)
            .doing("reading an index definition")?;
        conn.execute_unprepared(&format!("DROP INDEX \"{name}\""))
            .await
            .doing("setting an index aside for the load")?;
        definitions.push(definition);
    }
    Ok(DeferredIndexes { definitions })
}

impl DeferredIndexes {
    /// Recreates every index that was dropped.
    pub(crate) async fn rebuild<C: ConnectionTrait>(self, conn: &C) -> Result<()> {
        for definition in self.definitions {
            conn.execute_unprepared(&definition)
                .await
                .doing("rebuilding an index after the load")?;
        }
        Ok(())
    }
}
