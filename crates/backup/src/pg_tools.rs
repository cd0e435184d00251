//! The PostgreSQL client programs: part of a repository's settings whether or not this build
//! can back up PostgreSQL (feature `postgres`).

use std::path::PathBuf;

/// The PostgreSQL client programs and the database used for administration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTools {
    /// `pg_dump` (default: found on `PATH`). Its major version must be at least the server's.
    pub pg_dump: PathBuf,
    /// `pg_restore` (default: found on `PATH`).
    pub pg_restore: PathBuf,
    /// The database to connect to for creating, renaming and dropping databases.
    /// Default: `postgres`.
    pub maintenance_database: String,
}

impl Default for PgTools {
    fn default() -> Self {
        Self {
            pg_dump: PathBuf::from("pg_dump"),
            pg_restore: PathBuf::from("pg_restore"),
            maintenance_database: "postgres".to_owned(),
        }
    }
}
