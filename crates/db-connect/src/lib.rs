//! Opens database connections with the settings every crate and binary of the workspace shares.
//!
//! One function, [`connect`], turns a `DATABASE_URL` into a sea-orm [`DatabaseConnection`]:
//!
//! - **SQLite** (the embedded default, a file under `data/`): the file and its directory are
//!   created when missing, the journal is in WAL mode (readers never block the writer),
//!   foreign keys are enforced, and a busy timeout makes a writer wait for the lock instead of
//!   failing at once. Commits are durable by default (`synchronous = FULL`): a commit that
//!   returned survives a crash of the process and a power loss alike, since the WAL is synced
//!   before the commit returns. Setting [`ConnectionSettings::durable_commits`] to false trades
//!   that for speed (`synchronous = NORMAL`, the WAL setting SQLite calls safe from corruption: a
//!   crash of the process still loses nothing, but a power loss may roll back the last
//!   transactions, bookings that were already acknowledged). The cost of durability is one
//!   `fsync` per commit; docs/PERFORMANCE.md ("Durable commits") has it measured on create
//!   booking.
//! - **PostgreSQL** (production): a pool sized by [`ConnectionSettings::max_connections`]
//!   that does not hand out connections it has reason to think dead; [`is_connection_lost`],
//!   [`is_unavailable`] and [`retry_on_lost_connection`] let callers survive those it could
//!   not know about (a backend terminated while its connection sat in the pool).
//!
//! Statement logging by sqlx is switched off; statement timing belongs to `perf-stats`.
//!
//! # Feature flags
//!
//! - `sqlite` (default): SQLite URLs, through sqlx's SQLite driver.
//! - `postgres` (default): PostgreSQL URLs, through sqlx's PostgreSQL driver. A SQLite-only
//!   user turns it off (`default-features = false, features = ["sqlite"]`) and compiles no
//!   PostgreSQL driver; a URL of a backend left out is refused with
//!   [`Error::BackendNotCompiled`] ([`Backend::is_compiled`] says which are in).
//! - `testing`: the fixtures below (both backends).
//!
//! With the `testing` feature, the `testing` module creates throw-away databases on both
//! backends for tests.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), db_connect::Error> {
//! use sea_orm::ConnectionTrait;
//!
//! let db = db_connect::connect("sqlite::memory:").await?;
//! db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)").await?;
//! assert_eq!(db_connect::Backend::of_connection(&db), db_connect::Backend::Sqlite);
//! # Ok(())
//! # }
//! ```

mod backend;
mod connect;
mod error;
mod liveness;
mod replica;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{Backend, redact_password};
pub use connect::{
    ConnectionSettings, DEFAULT_DATABASE_URL, DEFAULT_PING_IDLE_AFTER, connect, connect_with,
};
pub use error::{Error, Result};
#[cfg(feature = "postgres")]
pub use liveness::must_ping;
pub use liveness::{
    ConnectionFailure, LOST_CONNECTION_ATTEMPTS, is_connection_lost, is_unavailable,
    note_connection_lost, retry_on_lost_connection,
};
pub use replica::{ReadRouter, ReplicaHealth, ReplicaSettings, ReplicaStatus};
pub use sea_orm::DatabaseConnection;
