//! Changing the schema when several processes may start at once.
//!
//! Everything that touches the schema, reading the migration table included, happens while
//! holding [`MigrationLock`]. Reading the status first and locking after is not enough: on a
//! fresh PostgreSQL database, reading the status creates the migration table, and two
//! processes creating it at once collide in PostgreSQL's catalog (`duplicate key value
//! violates unique constraint "pg_type_typname_nsp_index"`).
//!
//! SQLite needs it as much: several processes may open one database file (servers started
//! together, the `migration` binary beside a running server), and without it all but one of
//! four servers started together on a fresh file exited with `table "users" already exists`.

use sea_orm_migration::{
    MigratorTrait,
    sea_orm::{
        ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseExecutor,
        DatabaseTransaction, DbErr, Statement, TransactionTrait,
    },
};

use crate::Migrator;

/// The PostgreSQL advisory lock key taken while migrating (an arbitrary constant: "hotelmig"
/// in ASCII), so that no other application's lock is mistaken for it.
pub const MIGRATION_LOCK_KEY: i64 = 0x686f_7465_6c6d_6967;

/// The right to read and change a database's schema, held by one process at a time.
///
/// On PostgreSQL it is a transaction holding a transaction-scoped advisory lock
/// ([`MIGRATION_LOCK_KEY`]): another process's [`acquire`](Self::acquire) waits until this one
/// is [released](Self::release) (its changes committed) or dropped (its changes rolled back,
/// so the schema is never left half-migrated). Each migration runs in its own savepoint. On
/// SQLite it is an exclusive `flock` on a file beside the database,
/// `<database file>.migration-lock` (kept there; the kernel drops the lock when its holder
/// dies), which another process's [`acquire`](Self::acquire) waits for. Not SQLite's own write
/// lock: the pre-migration backup, taken while the lock is held, checkpoints the database and
/// would wait for it. An in-memory database needs none.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sea_orm_migration::sea_orm::DbErr> {
/// # let db = sea_orm_migration::sea_orm::Database::connect("sqlite::memory:").await?;
/// use migration::MigrationLock;
///
/// let lock = MigrationLock::acquire(&db).await?;
/// let pending = lock.pending().await?;        // read under the lock, creates nothing
/// assert!(!pending.is_empty());
/// // ... take a backup here, while no other process can migrate ...
/// lock.apply(None).await?;
/// lock.release().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MigrationLock<'a> {
    db: &'a DatabaseConnection,
    transaction: Option<DatabaseTransaction>,
    /// SQLite: the locked file beside the database, unlocked when it is dropped.
    _file_lock: Option<std::fs::File>,
}

impl<'a> MigrationLock<'a> {
    /// Takes the lock, waiting for any other process that holds it.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached.
    pub async fn acquire(db: &'a DatabaseConnection) -> Result<Self, DbErr> {
        if db.get_database_backend() == DatabaseBackend::Sqlite {
            let file_lock = match sqlite_file(db).await? {
                Some(file) => Some(lock_file_beside(&file).await?),
                None => None,
            };
            return Ok(Self {
                db,
                transaction: None,
                _file_lock: file_lock,
            });
        }
        if db.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(Self {
                db,
                transaction: None,
                _file_lock: None,
            });
        }
        let transaction = db.begin().await?;
        transaction
            .execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await?;
        Ok(Self {
            db,
            transaction: Some(transaction),
            _file_lock: None,
        })
    }

    /// Where schema work runs while the lock is held.
    pub fn executor(&self) -> DatabaseExecutor<'_> {
        match &self.transaction {
            Some(transaction) => DatabaseExecutor::Transaction(transaction),
            None => DatabaseExecutor::Connection(self.db),
        }
    }

    /// The names of the migrations not applied yet, oldest first. Reads only: a database
    /// without the migration table has every migration pending.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn pending(&self) -> Result<Vec<String>, DbErr> {
        Ok(Migrator::get_pending_migrations_read_only(&self.executor())
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// The names of the applied migrations, oldest first. Reads only.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn applied(&self) -> Result<Vec<String>, DbErr> {
        Ok(
            Migrator::get_migration_with_status_read_only(&self.executor())
                .await?
                .iter()
                .filter(|m| m.status() == sea_orm_migration::MigrationStatus::Applied)
                .map(|m| m.name().to_owned())
                .collect(),
        )
    }

    /// Applies the pending migrations (all, or the next `steps`).
    ///
    /// # Errors
    ///
    /// When a migration fails; on PostgreSQL nothing of the lock's work is kept then.
    pub async fn apply(&self, steps: Option<u32>) -> Result<(), DbErr> {
        Migrator::up(self.executor(), steps).await
    }

    /// Reverts the newest `steps` applied migrations.
    ///
    /// # Errors
    ///
    /// As [`apply`](Self::apply).
    pub async fn revert(&self, steps: Option<u32>) -> Result<(), DbErr> {
        Migrator::down(self.executor(), steps).await
    }

    /// Keeps what was done and lets the next process in.
    ///
    /// # Errors
    ///
    /// When the commit fails; nothing was changed then.
    pub async fn release(self) -> Result<(), DbErr> {
        match self.transaction {
            Some(transaction) => transaction.commit().await,
            None => Ok(()),
        }
    }
}

/// The file of `db`'s main database (`None` in memory).
async fn sqlite_file(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "PRAGMA database_list",
        ))
        .await?;
    for row in rows {
        let name: String = row.try_get_by_index(1)?;
        let file: String = row.try_get_by_index(2)?;
        if name == "main" {
            return Ok(Some(file).filter(|file| !file.is_empty()));
        }
    }
    Ok(None)
}

/// Locks `<file>.migration-lock` exclusively, waiting for whoever holds it.
async fn lock_file_beside(file: &str) -> Result<std::fs::File, DbErr> {
    let path = format!("{file}.migration-lock");
    let failed =
        |action: &str, e: std::io::Error| DbErr::Custom(format!("cannot {action} {path}: {e}"));
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| failed("open the migration lock", e))?;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(failed("lock", e)),
        }
    }
}

/// Applies pending migrations (all, or the next `steps`) under the [`MigrationLock`], so that
/// processes starting together apply each migration exactly once and every one of them
/// starts; returns the names of the migrations this call applied.
///
/// # Errors
///
/// When a migration fails or the database cannot be reached; nothing of the call is applied
/// then on PostgreSQL.
pub async fn apply_pending(
    db: &DatabaseConnection,
    steps: Option<u32>,
) -> Result<Vec<String>, DbErr> {
    let lock = MigrationLock::acquire(db).await?;
    let mut pending = lock.pending().await?;
    if let Some(steps) = steps {
        pending.truncate(steps as usize);
    }
    if !pending.is_empty() {
        lock.apply(steps).await?;
    }
    lock.release().await?;
    Ok(pending)
}
