//! Idempotency keys scoped per user: the unique constraint on `bookings.idempotency_key` alone
//! becomes one on `(user_id, idempotency_key)`.
//!
//! A key is a client's name for one request of its own. Unique across all users, a key that
//! user B happened to send after user A collided with A's booking (issue 16, item 8); scoped
//! per user, B's key names B's request and nothing of A's. The new constraint's index also
//! serves the write path's lookup by user and key.
//!
//! PostgreSQL swaps the constraints in place. SQLite cannot drop a constraint declared with
//! its column, so the table is rebuilt the way SQLite documents
//! (<https://www.sqlite.org/lang_altertable.html#otheralter>): on one connection with foreign
//! keys off (`payments` references `bookings`, and dropping the old table would otherwise
//! fail), in one `IMMEDIATE` transaction, the new table is created from the stored definition
//! with only the constraint changed, the rows are copied, the old table dropped, the new one
//! renamed, its indexes and triggers re-created and its `AUTOINCREMENT` counter kept (so no id
//! is ever handed out twice), and the foreign keys are checked before the commit.
//!
//! `down` restores the global constraint, and refuses, changing nothing, while a key is used
//! by more than one user: the old schema cannot hold those bookings.

use std::sync::Arc;

use sea_orm_migration::{
    prelude::*,
    sea_orm::{
        ConnectionTrait, DatabaseBackend, DatabaseExecutor, RuntimeErr, Statement,
        sqlx::{self, AssertSqlSafe, Connection, SqliteConnection},
    },
};

/// Moves the idempotency key's uniqueness from the key alone to the user and the key.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The name of the per-user constraint (and of its index), on both backends.
pub const USER_KEY_CONSTRAINT: &str = "uq_bookings_user_idempotency_key";

/// What PostgreSQL named the global constraint that migration 1 declared with the column.
const POSTGRES_GLOBAL_CONSTRAINT: &str = "bookings_idempotency_key_key";

/// The column as migration 1 declared it on SQLite, and as it is without its constraint.
const SQLITE_GLOBAL_COLUMN: &str = r#""idempotency_key" varchar(255) NULL UNIQUE,"#;
const SQLITE_PLAIN_COLUMN: &str = r#""idempotency_key" varchar(255) NULL,"#;
/// The per-user constraint, appended as the table's last clause.
const SQLITE_USER_KEY_CLAUSE: &str =
    r#", CONSTRAINT "uq_bookings_user_idempotency_key" UNIQUE ("user_id", "idempotency_key")"#;

const SQLITE_CREATE: &str = r#"CREATE TABLE "bookings" ("#;
const SQLITE_REBUILT: &str = "bookings_rebuilt";

/// Keys that more than one user has used: what the global constraint cannot hold.
const SHARED_KEYS_SQL: &str = "SELECT COUNT(*) FROM (SELECT idempotency_key FROM bookings \
     WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key HAVING COUNT(*) > 1) AS shared";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Global,
    PerUser,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "ALTER TABLE bookings DROP CONSTRAINT {POSTGRES_GLOBAL_CONSTRAINT}"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "ALTER TABLE bookings ADD CONSTRAINT {USER_KEY_CONSTRAINT} \
                     UNIQUE (user_id, idempotency_key)"
                ))
                .await?;
                Ok(())
            }
            _ => rebuild_sqlite_bookings(db, Scope::PerUser).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                let shared = db
                    .query_one_raw(Statement::from_string(
                        DatabaseBackend::Postgres,
                        SHARED_KEYS_SQL,
                    ))
                    .await?
                    .map(|row| row.try_get_by_index::<i64>(0))
                    .transpose()?
                    .unwrap_or(0);
                refuse_shared_keys(shared)?;
                db.execute_unprepared(&format!(
                    "ALTER TABLE bookings DROP CONSTRAINT {USER_KEY_CONSTRAINT}"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "ALTER TABLE bookings ADD CONSTRAINT {POSTGRES_GLOBAL_CONSTRAINT} \
                     UNIQUE (idempotency_key)"
                ))
                .await?;
                Ok(())
            }
            _ => rebuild_sqlite_bookings(db, Scope::Global).await,
        }
    }
}

fn refuse_shared_keys(shared: i64) -> Result<(), DbErr> {
    if shared > 0 {
        return Err(DbErr::Migration(format!(
            "cannot restore globally unique idempotency keys: {shared} key(s) are used by more \
             than one user; clear them (UPDATE bookings SET idempotency_key = NULL ...) first"
        )));
    }
    Ok(())
}

fn sqlx_error(err: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err)))
}

/// Rebuilds `bookings` with the idempotency key unique in `scope`, on a connection of its own
/// with foreign keys off, restoring that connection's setting afterwards.
async fn rebuild_sqlite_bookings(db: &DatabaseExecutor<'_>, scope: Scope) -> Result<(), DbErr> {
    let DatabaseExecutor::Connection(pool) = db else {
        // Foreign keys cannot be turned off inside a transaction, and the rebuild needs them off.
        return Err(DbErr::Migration(
            "on SQLite this migration rebuilds the bookings table and must run on a connection, \
             not inside a transaction"
                .to_owned(),
        ));
    };
    let mut connection = pool
        .get_sqlite_connection_pool()
        .acquire()
        .await
        .map_err(sqlx_error)?;
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *connection)
        .await
        .map_err(sqlx_error)?;
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *connection)
        .await
        .map_err(sqlx_error)?;
    let rebuilt = in_transaction(&mut connection, scope).await;
    if foreign_keys != 0 {
        let restored = sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *connection)
            .await;
        if restored.is_err() {
            // Never hand the pool a connection that ignores foreign keys.
            connection.close_on_drop();
        }
    }
    rebuilt
}

async fn in_transaction(connection: &mut SqliteConnection, scope: Scope) -> Result<(), DbErr> {
    let mut transaction = connection
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(sqlx_error)?;
    match rebuild(&mut transaction, scope).await {
        Ok(()) => transaction.commit().await.map_err(sqlx_error),
        Err(err) => {
            // The rebuild's own error says what went wrong; a failed rollback adds nothing.
            let _ = transaction.rollback().await;
            Err(err)
        }
    }
}

/// The table's definition with the key unique in `scope`, or why the stored one is not the
/// definition this migration expects.
fn definition_for(stored: &str, scope: Scope) -> Result<String, DbErr> {
    let unexpected = |what: &str| {
        DbErr::Migration(format!(
            "the bookings table is not as this migration expects ({what}): {stored}"
        ))
    };
    let body = stored
        .strip_prefix(SQLITE_CREATE)
        .ok_or_else(|| unexpected("its CREATE TABLE"))?;
    let definition = match scope {
        Scope::PerUser => {
            if body.matches(SQLITE_GLOBAL_COLUMN).count() != 1 {
                return Err(unexpected("a globally unique idempotency_key"));
            }
            let body = body
                .replacen(SQLITE_GLOBAL_COLUMN, SQLITE_PLAIN_COLUMN, 1)
                .trim_end()
                .strip_suffix(')')
                .ok_or_else(|| unexpected("the closing parenthesis"))?
                .trim_end()
                .to_owned();
            format!("{body}{SQLITE_USER_KEY_CLAUSE} )")
        }
        Scope::Global => {
            if body.matches(SQLITE_USER_KEY_CLAUSE).count() != 1
                || body.matches(SQLITE_PLAIN_COLUMN).count() != 1
            {
                return Err(unexpected("an idempotency_key unique per user"));
            }
            body.replacen(SQLITE_USER_KEY_CLAUSE, "", 1).replacen(
                SQLITE_PLAIN_COLUMN,
                SQLITE_GLOBAL_COLUMN,
                1,
            )
        }
    };
    Ok(format!(r#"CREATE TABLE "{SQLITE_REBUILT}" ({definition}"#))
}

async fn rebuild(connection: &mut SqliteConnection, scope: Scope) -> Result<(), DbErr> {
    let stored: String = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'bookings'",
    )
    .fetch_one(&mut *connection)
    .await
    .map_err(sqlx_error)?;
    let create = definition_for(&stored, scope)?;
    if scope == Scope::Global {
        let shared: i64 = sqlx::query_scalar(SHARED_KEYS_SQL)
            .fetch_one(&mut *connection)
            .await
            .map_err(sqlx_error)?;
        refuse_shared_keys(shared)?;
    }
    // Indexes before triggers, each as it was declared (automatic indexes have no SQL).
    let dependents: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'bookings' \
         AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type = 'trigger', name",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(sqlx_error)?;
    let sequence: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'bookings'")
            .fetch_optional(&mut *connection)
            .await
            .map_err(sqlx_error)?;

    let mut statements = vec![
        create,
        format!("INSERT INTO {SQLITE_REBUILT} SELECT * FROM bookings"),
        "DROP TABLE bookings".to_owned(),
        format!("ALTER TABLE {SQLITE_REBUILT} RENAME TO bookings"),
    ];
    statements.extend(dependents);
    // The copy set the counter to the largest id copied; a deleted newer booking's id stays used.
    statements.push("DELETE FROM sqlite_sequence WHERE name = 'bookings'".to_owned());
    if let Some(sequence) = sequence {
        statements.push(format!(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('bookings', {sequence})"
        ));
    }
    for statement in statements {
        sqlx::query(AssertSqlSafe(statement))
            .persistent(false)
            .execute(&mut *connection)
            .await
            .map_err(sqlx_error)?;
    }
    let violations: Vec<String> =
        sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut *connection)
            .await
            .map_err(sqlx_error)?;
    if !violations.is_empty() {
        return Err(DbErr::Migration(format!(
            "rebuilding bookings would break foreign keys in: {}",
            violations.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: &str = r#"CREATE TABLE "bookings" ( "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" integer NOT NULL, "idempotency_key" varchar(255) NULL UNIQUE, "created_at" timestamp_with_timezone_text NOT NULL, CONSTRAINT "ck_bookings_rooms" CHECK ("rooms_booked" >= 1) )"#;

    #[test]
    fn definitions_round_trip_and_refuse_what_they_do_not_expect() {
        let per_user = definition_for(STORED, Scope::PerUser).unwrap();
        assert_eq!(
            per_user,
            r#"CREATE TABLE "bookings_rebuilt" ( "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" integer NOT NULL, "idempotency_key" varchar(255) NULL, "created_at" timestamp_with_timezone_text NOT NULL, CONSTRAINT "ck_bookings_rooms" CHECK ("rooms_booked" >= 1), CONSTRAINT "uq_bookings_user_idempotency_key" UNIQUE ("user_id", "idempotency_key") )"#
        );
        let renamed = per_user.replace(SQLITE_REBUILT, "bookings");
        let global = definition_for(&renamed, Scope::Global).unwrap();
        assert_eq!(global.replace(SQLITE_REBUILT, "bookings"), STORED);

        assert!(definition_for(STORED, Scope::Global).is_err());
        assert!(definition_for(&renamed, Scope::PerUser).is_err());
        assert!(definition_for("CREATE TABLE other (x)", Scope::PerUser).is_err());
    }
}
