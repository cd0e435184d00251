/// What can go wrong while opening a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no database this workspace supports.
    #[error("unsupported database URL `{url}`: expected sqlite:… or postgres://…")]
    UnsupportedUrl {
        /// The URL, with any password removed.
        url: String,
    },
    /// The URL names a backend this build has no driver for: db-connect's feature of that
    /// name (`sqlite` or `postgres`) is off.
    #[error("no {backend} driver in this build: enable db-connect's `{backend}` feature")]
    BackendNotCompiled {
        /// The backend the URL names.
        backend: crate::Backend,
    },
    /// The directory that should hold the SQLite file could not be created.
    #[error("cannot create the directory {path} for the SQLite database")]
    CreateDirectory {
        /// The directory.
        path: std::path::PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// There is no database at the URL, and the connection was not allowed to create one
    /// (a SQLite file that does not exist with
    /// [`ConnectionSettings::create_if_missing`](crate::ConnectionSettings::create_if_missing)
    /// off, or a PostgreSQL database that does not exist).
    #[error("there is no database at {url}")]
    DatabaseNotFound {
        /// The URL, with any password removed.
        url: String,
    },
    /// The database refused the connection or a setting.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL, with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sea_orm::DbErr,
    },
    /// A statement run while preparing the connection failed.
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
