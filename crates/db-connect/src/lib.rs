//! Opens database connections with the settings every crate and binary of the workspace shares.
//!
//! One function, [`connect`], turns a `DATABASE_URL` into a sea-orm [`DatabaseConnection`]:
//!
//! - **SQLite** (the embedded default, a file under `data/`): the file and its directory are
//!   created when missing, the journal is in WAL mode (readers never block the writer),
//!   foreign keys are enforced, and a busy timeout makes a writer wait for the lock instead of
//!   failing at once. `synchronous = NORMAL` is the WAL setting SQLite recommends: a crash of the
//!   process loses nothing; a power loss may lose the last transactions, never corrupt the file.
//!   Use [`ConnectionSettings::durable_commits`] when every commit must reach the disk.
//! - **PostgreSQL** (production): a pool sized by [`ConnectionSettings::max_connections`]
//!   that does not hand out connections it has reason to think dead; [`is_connection_lost`],
//!   [`is_unavailable`] and [`retry_on_lost_connection`] let callers survive those it could
//!   not know about (a backend terminated while its connection sat in the pool).
//!
//! Statement logging by sqlx is switched off; statement timing belongs to `perf-stats`.
//!
//! With the `testing` feature, [`testing`] creates throw-away databases on both backends for
//! tests.
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
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{Backend, redact_password};
pub use connect::{ConnectionSettings, DEFAULT_DATABASE_URL, connect, connect_with};
pub use error::{Error, Result};
pub use liveness::{
    ConnectionFailure, is_connection_lost, is_unavailable, note_connection_lost,
    retry_on_lost_connection,
};
pub use sea_orm::DatabaseConnection;
