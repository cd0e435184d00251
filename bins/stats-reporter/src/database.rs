//! Opening a database the commands read.

use std::path::Path;

use anyhow::{Context, bail};
use db_connect::Backend;
use sea_orm::DatabaseConnection;

/// Opens `url`, refusing a SQLite file that does not exist (connecting would create an empty
/// one and the report would describe nothing).
pub(crate) async fn open_existing(url: &str) -> anyhow::Result<DatabaseConnection> {
    let shown = db_connect::redact_password(url);
    let backend = Backend::of_url(url).with_context(|| format!("while reading {shown}"))?;
    if backend == Backend::Sqlite
        && let Some(path) = sqlite_file(url)
        && !path.exists()
    {
        bail!(
            "no database at {} (from {shown}): give --database-url of an existing database",
            path.display()
        );
    }
    db_connect::connect(url)
        .await
        .with_context(|| format!("while connecting to {shown}"))
}

/// The file of a SQLite URL, `None` for an in-memory database.
pub(crate) fn sqlite_file(url: &str) -> Option<&Path> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    Some(Path::new(rest.split('?').next().unwrap_or(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite://data/hotel.sqlite?mode=rwc"),
            Some(Path::new("data/hotel.sqlite"))
        );
        assert_eq!(
            sqlite_file("sqlite:///tmp/x.sqlite"),
            Some(Path::new("/tmp/x.sqlite"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }

    #[tokio::test]
    async fn a_missing_sqlite_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.sqlite");
        let err = open_existing(&format!("sqlite://{}", path.display()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no database at"), "{err}");
        assert!(!path.exists());
    }
}
