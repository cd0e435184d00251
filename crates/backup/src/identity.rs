//! What a repository belongs to: one database, recorded in `repository.json` when the first
//! backup is taken, and checked by every backup after it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    BackupRepository, DatabaseKind, Error, Result, Source, create::TOOL_VERSION, sealed, store::Put,
};

/// The identity document's key.
pub(crate) const IDENTITY_KEY: &str = "repository.json";

/// The identity format this build writes and reads.
const IDENTITY_FORMAT: u32 = 1;

/// The database a repository holds backups of.
///
/// A repository holds one database: mixing two would let `restore` of the "latest" backup
/// bring back the wrong one. The database is named by what identifies it across restarts and
/// restores: the canonical path of a SQLite file, the server and database name of a PostgreSQL
/// database (never the user or password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RepositoryIdentity {
    /// The format of this document.
    pub format_version: u32,
    /// The kind of database.
    pub database_kind: DatabaseKind,
    /// The database: `/srv/hotel/data/hotel.sqlite`, `postgres://db.internal:5432/hotel`.
    pub database: String,
    /// When the repository was first used.
    pub created_at: DateTime<Utc>,
    /// The program that first used it.
    pub created_by: String,
}

impl Source {
    /// The name that identifies this database in a repository's identity: the canonical path
    /// of a SQLite file (its directory resolved when the file does not exist yet), or
    /// `postgres://host:port/database`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedUrl`] for a PostgreSQL URL that does not parse.
    pub fn identity_name(&self) -> Result<String> {
        match self {
            Self::Sqlite { path } => {
                let canonical = std::fs::canonicalize(path).or_else(|_| {
                    let name = path.file_name().unwrap_or(path.as_os_str());
                    let parent = match path.parent() {
                        Some(p) if !p.as_os_str().is_empty() => p,
                        _ => std::path::Path::new("."),
                    };
                    std::fs::canonicalize(parent).map(|dir| dir.join(name))
                });
                Ok(canonical
                    .unwrap_or_else(|_| path.clone())
                    .display()
                    .to_string())
            }
            Self::Postgres { url } => {
                let unsupported = || Error::UnsupportedUrl {
                    url: db_connect::redact_password(url),
                };
                let parsed = url::Url::parse(url).map_err(|_| unsupported())?;
                Ok(format!(
                    "postgres://{}:{}/{}",
                    parsed.host_str().unwrap_or("localhost"),
                    parsed.port().unwrap_or(5432),
                    parsed.path().trim_start_matches('/')
                ))
            }
        }
    }
}

impl BackupRepository {
    /// The database this repository belongs to, or `None` before its first backup.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidManifest`] when `repository.json` is damaged; the store's errors.
    pub async fn identity(&self) -> Result<Option<RepositoryIdentity>> {
        let Some(bytes) = self.store.get(IDENTITY_KEY).await? else {
            return Ok(None);
        };
        let invalid = |reason: String| Error::InvalidManifest {
            object: self.store.describe(IDENTITY_KEY),
            reason,
        };
        let value = sealed::open_value(&bytes).map_err(|e| invalid(e.to_string()))?;
        let format = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if format > u64::from(IDENTITY_FORMAT) {
            return Err(Error::UnsupportedFormat {
                object: self.store.describe(IDENTITY_KEY),
                found: format,
                supported: IDENTITY_FORMAT,
            });
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| invalid(format!("bad field: {e}")))
    }

    /// Refuses `source` if the repository belongs to another database.
    pub(crate) fn admit(&self, identity: &RepositoryIdentity, source: &Source) -> Result<()> {
        let given = source.identity_name()?;
        if identity.database_kind == source.kind() && identity.database == given {
            Ok(())
        } else {
            Err(Error::ForeignDatabase {
                repository: self.location.to_string(),
                holds: identity.database.clone(),
                given,
            })
        }
    }

    /// Records that the repository belongs to `source` (if no one did first: then checks that
    /// it is the same database).
    pub(crate) async fn claim(&self, source: &Source) -> Result<()> {
        let identity = RepositoryIdentity {
            format_version: IDENTITY_FORMAT,
            database_kind: source.kind(),
            database: source.identity_name()?,
            created_at: Utc::now(),
            created_by: TOOL_VERSION.to_owned(),
        };
        let bytes = sealed::seal(&identity).map_err(Error::Internal)?;
        match self.store.put_once(IDENTITY_KEY, bytes).await {
            Ok(Put::Created) => {
                tracing::info!(repository = %self.location, database = %identity.database, "repository claimed for its database");
                Ok(())
            }
            Ok(Put::AlreadyThere) => Ok(()),
            Err(Error::ObjectExists { .. }) => match self.identity().await? {
                Some(existing) => self.admit(&existing, source),
                None => Err(Error::Internal(format!(
                    "{} exists and does not",
                    self.store.describe(IDENTITY_KEY)
                ))),
            },
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_named_without_credentials() {
        let pg = Source::from_url("postgres://app:s3cret@db.internal/hotel").unwrap();
        assert_eq!(
            pg.identity_name().unwrap(),
            "postgres://db.internal:5432/hotel"
        );
        let dir = tempfile::tempdir().unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        let missing = Source::sqlite(dir.path().join("new.sqlite"));
        assert_eq!(
            missing.identity_name().unwrap(),
            canonical.join("new.sqlite").display().to_string()
        );
    }
}
