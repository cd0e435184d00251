use chrono::NaiveDate;

/// What a caller of the hotel data layer can act on.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A night of the stay lacks the rooms asked for (or has no inventory at all).
    #[error(
        "not enough rooms of type {room_type_id} on the night of {night}: {available} free, {requested} asked for"
    )]
    NotAvailable {
        /// The room type.
        room_type_id: i64,
        /// The first night that lacks rooms.
        night: NaiveDate,
        /// Rooms free that night (0 when the night has no inventory).
        available: i32,
        /// Rooms asked for.
        requested: i32,
    },
    /// Dates that make no range: start not before end, too long, or in the past.
    #[error("invalid date range: {0}")]
    InvalidRange(String),
    /// Input outside what the operation accepts (room counts, list sizes, limits).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The thing asked for does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked for, e.g. "room type".
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// The request contradicts the current state: an idempotency key reused for another
    /// request, a cancellation of a stay already begun, inventory below the rooms booked.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed (after retries, where the failure was transient).
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    /// The connection was lost while the write committed, and whether it committed could not
    /// be learned (the database is unreachable): it may or may not have been applied. Repeat
    /// it with the same idempotency key to find out.
    #[error("the database connection was lost during COMMIT; the write may have been applied")]
    CommitUncertain(#[source] sea_orm::DbErr),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl db_connect::ConnectionFailure for Error {
    fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Database(err) if db_connect::is_connection_lost(err))
    }

    fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(err) if db_connect::is_unavailable(err))
    }
}
