/// What can go wrong while generating a dataset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scale's name is none of tiny, small, medium, large.
    #[error("unknown scale `{0}`: expected tiny, small, medium or large")]
    UnknownScale(String),
    /// The database has no hotel schema yet.
    #[error(
        "the database is not migrated (table `{table}` is missing): run `cargo run -p migration -- up` first"
    )]
    NotMigrated {
        /// The table that was looked for.
        table: &'static str,
    },
    /// The database already holds hotel data; generating on top would mix datasets.
    #[error(
        "the database already holds data ({rows} rows in `{table}`): generate into an empty database (`cargo run -p migration -- fresh`)"
    )]
    NotEmpty {
        /// The table found non-empty.
        table: &'static str,
        /// Its row count.
        rows: i64,
    },
    /// A statement failed.
    #[error("database error while {doing}")]
    Database {
        /// What the generator was doing.
        doing: &'static str,
        /// The driver's error.
        #[source]
        source: sea_orm::DbErr,
    },
    /// The reference date would put generated dates outside 0001-01-01 ..= 9999-12-31, the dates
    /// both backends store and order correctly.
    #[error(
        "the reference date {date} is outside {earliest} to {latest}: the data around it would not fit the dates the database stores"
    )]
    ReferenceDateOutOfRange {
        /// The date given.
        date: chrono::NaiveDate,
        /// The earliest reference date accepted.
        earliest: chrono::NaiveDate,
        /// The latest reference date accepted.
        latest: chrono::NaiveDate,
    },
    /// The thread that draws the data stopped unexpectedly.
    #[error("the generator thread stopped unexpectedly")]
    GeneratorStopped,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait DbContext<T> {
    fn doing(self, doing: &'static str) -> Result<T>;
}

impl<T> DbContext<T> for Result<T, sea_orm::DbErr> {
    fn doing(self, doing: &'static str) -> Result<T> {
        self.map_err(|source| Error::Database { doing, source })
    }
}
