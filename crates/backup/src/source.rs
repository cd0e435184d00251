use std::{fmt, path::PathBuf};

use crate::{DatabaseKind, Error, Result};

/// A database to back up or restore into, parsed from a database URL.
///
/// The URL's password is kept only to connect; [`Source::display_name`] and `Debug` never show
/// it, and manifests record the URL without it.
///
/// # Examples
///
/// ```
/// use backup::{DatabaseKind, Source};
/// let sqlite = Source::from_url("sqlite://data/hotel.sqlite?mode=rwc").unwrap();
/// assert_eq!(sqlite.kind(), DatabaseKind::Sqlite);
/// assert_eq!(sqlite.display_name(), "data/hotel.sqlite");
///
/// let pg = Source::from_url("postgres://app:s3cret@db/hotel").unwrap();
/// assert_eq!(pg.display_name(), "postgres://app:***@db/hotel");
/// assert!(!format!("{pg:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// A SQLite database file.
    Sqlite {
        /// The file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// The full connection URL, password included.
        url: String,
    },
}

impl Source {
    /// Parses `sqlite:<path>` / `sqlite://<path>` (query parameters ignored) or
    /// `postgres://…` / `postgresql://…`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedUrl`] for other schemes or a PostgreSQL URL without a database name,
    /// [`Error::InMemoryDatabase`] for `sqlite::memory:`.
    pub fn from_url(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let path = rest.split('?').next().unwrap_or(rest);
            if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
                return Err(Error::InMemoryDatabase {
                    url: url.to_owned(),
                });
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let parsed = url::Url::parse(url).map_err(|_| Error::UnsupportedUrl {
                url: db_connect::redact_password(url),
            })?;
            if parsed.path().trim_start_matches('/').is_empty() {
                return Err(Error::UnsupportedUrl {
                    url: db_connect::redact_password(url),
                });
            }
            return Ok(Self::Postgres {
                url: url.to_owned(),
            });
        }
        Err(Error::UnsupportedUrl {
            url: db_connect::redact_password(url),
        })
    }

    /// A SQLite file.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self::Sqlite { path: path.into() }
    }

    /// The kind of database.
    pub fn kind(&self) -> DatabaseKind {
        match self {
            Self::Sqlite { .. } => DatabaseKind::Sqlite,
            Self::Postgres { .. } => DatabaseKind::Postgres,
        }
    }

    /// The path (SQLite) or the URL without password (PostgreSQL), as recorded in manifests.
    pub fn display_name(&self) -> String {
        match self {
            Self::Sqlite { path } => path.display().to_string(),
            Self::Postgres { url } => db_connect::redact_password(url),
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres { .. } => f
                .debug_struct("Postgres")
                .field("url", &self.display_name())
                .finish(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_of_every_shape() {
        for (url, path) in [
            ("sqlite://data/hotel.sqlite", "data/hotel.sqlite"),
            ("sqlite:///tmp/a.db", "/tmp/a.db"),
            ("sqlite:rel.db?mode=rwc", "rel.db"),
        ] {
            assert_eq!(Source::from_url(url).unwrap(), Source::sqlite(path));
        }
        assert!(matches!(
            Source::from_url("sqlite::memory:"),
            Err(Error::InMemoryDatabase { .. })
        ));
        assert!(matches!(
            Source::from_url("sqlite://x.db?mode=memory"),
            Err(Error::InMemoryDatabase { .. })
        ));
    }

    #[test]
    fn other_urls_are_refused_without_their_password() {
        let err = Source::from_url("mysql://root:hunter2@h/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(Source::from_url("postgres://u:p@h/").is_err());
    }
}
