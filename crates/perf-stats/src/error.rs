//! The crate's error type.

/// What can go wrong in perf-stats.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`TrackerBuilder`](crate::TrackerBuilder) setting is out of range.
    #[error("invalid query tracker configuration: {reason}")]
    InvalidConfig {
        /// Which setting and why.
        reason: String,
    },
    /// A statement perf-stats ran itself (an index listing, an EXPLAIN) failed.
    #[error("database error while {doing}")]
    Database {
        /// What perf-stats was doing.
        doing: String,
        /// The database's error.
        #[source]
        source: sea_orm::DbErr,
    },
    /// The database answered an EXPLAIN with something perf-stats cannot read.
    #[error("cannot read the query plan of {query}: {reason}")]
    PlanFormat {
        /// The hot query's name.
        query: String,
        /// What was wrong with the plan.
        reason: String,
    },
    /// Index and plan checks support SQLite and PostgreSQL only.
    #[error("{backend} is not supported by index and plan checks (SQLite and PostgreSQL are)")]
    UnsupportedBackend {
        /// The backend found.
        backend: String,
    },
    /// Rendering the Prometheus text failed (a metric or label that cannot be written).
    #[error("could not encode the metrics as Prometheus text")]
    Encode(#[source] std::fmt::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what perf-stats was doing to a database error.
pub(crate) trait DbContext<T> {
    fn doing(self, doing: impl Into<String>) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, sea_orm::DbErr> {
    fn doing(self, doing: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Database {
            doing: doing.into(),
            source,
        })
    }
}
