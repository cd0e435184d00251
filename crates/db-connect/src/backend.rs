use sea_orm::{ConnectionTrait, DatabaseBackend};

use crate::{Error, Result};

/// The database engines the workspace runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL, for production.
    Postgres,
}

impl Backend {
    /// Tells the backend from a database URL.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedUrl`] for anything but `sqlite:` and `postgres://` / `postgresql://`.
    ///
    /// # Examples
    ///
    /// ```
    /// use db_connect::Backend;
    /// assert_eq!(Backend::of_url("sqlite://data/hotel.sqlite").unwrap(), Backend::Sqlite);
    /// assert_eq!(Backend::of_url("postgres://u@h/db").unwrap(), Backend::Postgres);
    /// assert!(Backend::of_url("mysql://h/db").is_err());
    /// ```
    pub fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(Error::UnsupportedUrl {
                url: redact_password(url),
            })
        }
    }

    /// The backend of an open connection.
    pub fn of_connection(db: &impl ConnectionTrait) -> Self {
        match db.get_database_backend() {
            DatabaseBackend::Postgres => Self::Postgres,
            _ => Self::Sqlite,
        }
    }

    /// Whether this build can connect to the backend: db-connect's feature of the same name
    /// (`sqlite`, `postgres`) is on.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Sqlite => cfg!(feature = "sqlite"),
            Self::Postgres => cfg!(feature = "postgres"),
        }
    }

    /// A short lowercase name, as used in logs, file names and test names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Returns the URL with its password replaced by `***`, fit for logs and manifests.
///
/// # Examples
///
/// ```
/// assert_eq!(
///     db_connect::redact_password("postgres://app:s3cret@db:5432/hotel"),
///     "postgres://app:***@db:5432/hotel"
/// );
/// assert_eq!(db_connect::redact_password("sqlite://data/hotel.sqlite"), "sqlite://data/hotel.sqlite");
/// ```
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for URLs that cannot carry one, which this one does.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
