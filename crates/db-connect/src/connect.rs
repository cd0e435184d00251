#[cfg(feature = "sqlite")]
use std::path::Path;
use std::time::Duration;

#[cfg(feature = "sqlite")]
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::{Backend, Error, Result, redact_password};

/// The embedded default database: a SQLite file under `data/`, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/hotel.sqlite";

/// How a connection pool is opened. The defaults suit the server and the tools alike.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// The most connections the pool opens. Default: 8 on SQLite (WAL lets readers run beside
    /// the one writer), 10 on PostgreSQL. An in-memory SQLite database always gets one, since
    /// each connection would otherwise see a database of its own. On PostgreSQL, count the
    /// connections a library holds beside the pool on top: `optimized-queries` takes up to 4
    /// idle ones out of it for its reads, which the pool then replaces.
    pub max_connections: Option<u32>,
    /// How long a SQLite writer waits for the lock before failing. Default: 5 s.
    pub busy_timeout: Duration,
    /// How long a caller waits for a free connection from the pool. Default: 10 s.
    pub acquire_timeout: Duration,
    /// Whether every SQLite commit is synced to disk before it returns (`synchronous = FULL`)
    /// rather than only at WAL checkpoints (`NORMAL`). Default: true, because a caller that
    /// acknowledges a commit (a 201 for a booking) promises it survives a power loss; with
    /// `NORMAL` a power cut (not a process crash) may roll back the last commits. Turning it off
    /// trades that promise for one `fsync` less per commit (measured in docs/PERFORMANCE.md,
    /// "Durable commits"). PostgreSQL commits are durable by its own `synchronous_commit`.
    pub durable_commits: bool,
    /// How much of a SQLite file is read through a memory map (`PRAGMA mmap_size`) instead of
    /// `read` calls. Default: 1 GiB, which takes a third off lookups that touch pages scattered
    /// over a large file (measured: a guest's bookings on 1M rows, 247 µs → 177 µs). 0 turns
    /// it off; an I/O error on a mapped page then cannot surface as a signal.
    pub sqlite_mmap_bytes: u64,
    /// Whether a SQLite file (and its directory) that does not exist is created. Default:
    /// true. Tools that only read turn it off, so that a mistyped path is an error
    /// ([`Error::DatabaseNotFound`]) instead of a new empty database.
    pub create_if_missing: bool,
    /// PostgreSQL: a pooled connection idle for this long is pinged before it is handed out,
    /// since a server, proxy or firewall may have ended it meanwhile. Default: 10 s. A
    /// connection idle since before a lost connection was noticed is pinged whatever its idle
    /// time (see [`note_connection_lost`](crate::note_connection_lost)); any other is handed
    /// out unchecked, as a ping costs a round trip.
    pub ping_idle_after: Duration,
    /// Open no connection until the first is needed, so that a database that is down does
    /// not fail the connect (each use then fails until it is up). Default false: connecting
    /// proves the database answers.
    pub connect_lazily: bool,
}

/// [`ConnectionSettings::ping_idle_after`]'s default: 10 s.
pub const DEFAULT_PING_IDLE_AFTER: Duration = Duration::from_secs(10);

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            durable_commits: true,
            sqlite_mmap_bytes: 1 << 30,
            create_if_missing: true,
            ping_idle_after: DEFAULT_PING_IDLE_AFTER,
            connect_lazily: false,
        }
    }
}

/// Opens a connection pool to `url` with the default [`ConnectionSettings`].
///
/// # Errors
///
/// [`Error::UnsupportedUrl`] for a URL of another kind, [`Error::BackendNotCompiled`] for a
/// backend whose feature is off, [`Error::CreateDirectory`] when the SQLite file's directory
/// cannot be made, [`Error::Connect`] when the database refuses.
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    connect_with(url, &ConnectionSettings::default()).await
}

/// Opens a connection pool to `url` with the given settings.
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_with(url: &str, settings: &ConnectionSettings) -> Result<DatabaseConnection> {
    let backend = Backend::of_url(url)?;
    if !backend.is_compiled() {
        return Err(Error::BackendNotCompiled { backend });
    }
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .acquire_timeout(settings.acquire_timeout)
        // A ping before every checkout doubles the round trips of a fast query: PostgreSQL
        // pings only the connections that may be dead (see `liveness`).
        .test_before_acquire(false)
        .connect_lazy(settings.connect_lazily);
    match backend {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let in_memory = is_in_memory(url);
            let create = settings.create_if_missing;
            if !in_memory {
                if create {
                    create_parent_directory(url)?;
                } else if !Path::new(sqlite_path(url)).is_file() {
                    return Err(Error::DatabaseNotFound {
                        url: redact_password(url),
                    });
                }
            }
            let max = if in_memory {
                1
            } else {
                settings.max_connections.unwrap_or(8)
            };
            // Connections must outlive idle periods: an in-memory database dies with its last one.
            options
                .max_connections(max)
                .min_connections(if in_memory { 1 } else { 0 });
            if in_memory {
                options.idle_timeout(None).max_lifetime(None);
            }
            let busy_timeout = settings.busy_timeout;
            let mmap_bytes = settings.sqlite_mmap_bytes;
            let synchronous = if settings.durable_commits {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            };
            options.map_sqlx_sqlite_opts(move |opts| {
                let opts = opts
                    .pragma("mmap_size", mmap_bytes.to_string())
                    .create_if_missing(create)
                    .foreign_keys(true)
                    .busy_timeout(busy_timeout)
                    .synchronous(synchronous);
                if in_memory {
                    opts
                } else {
                    opts.journal_mode(SqliteJournalMode::Wal)
                }
            });
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let ping_idle_after = settings.ping_idle_after;
            options
                .max_connections(settings.max_connections.unwrap_or(10))
                .map_sqlx_postgres_before_acquire(move |connection, meta| {
                    Box::pin(async move {
                        if !crate::liveness::must_ping(meta.idle_for, ping_idle_after) {
                            return Ok(true);
                        }
                        match sea_orm::sqlx::Connection::ping(connection).await {
                            Ok(()) => Ok(true),
                            Err(error) => {
                                // The others idle as long most likely died with it.
                                crate::liveness::note_connection_lost();
                                tracing::info!(%error, "dead pooled connection replaced");
                                Ok(false)
                            }
                        }
                    })
                });
        }
        // A backend without its feature: refused above (`is_compiled`).
        #[allow(unreachable_patterns)]
        _ => {}
    }
    Database::connect(options)
        .await
        .map_err(|source| connect_error(url, source))
}

/// PostgreSQL's invalid_catalog_name (3D000): the database named in the URL does not exist.
fn connect_error(url: &str, source: sea_orm::DbErr) -> Error {
    let url = redact_password(url);
    let missing = match &source {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(sqlx)) => sqlx
            .as_database_error()
            .and_then(|db| db.code())
            .is_some_and(|code| code == "3D000"),
        _ => false,
    };
    if missing {
        Error::DatabaseNotFound { url }
    } else {
        Error::Connect { url, source }
    }
}

#[cfg(feature = "sqlite")]
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

#[cfg(feature = "sqlite")]
/// The path of a SQLite URL's file: `sqlite://data/x.sqlite?mode=rwc` → `data/x.sqlite`.
fn sqlite_path(url: &str) -> &str {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    rest.split('?').next().unwrap_or(rest)
}

#[cfg(feature = "sqlite")]
fn create_parent_directory(url: &str) -> Result<()> {
    let path = Path::new(sqlite_path(url));
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDirectory {
                path: dir.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    #[test]
    fn sqlite_path_strips_scheme_and_query() {
        assert_eq!(
            sqlite_path("sqlite://data/hotel.sqlite?mode=rwc"),
            "data/hotel.sqlite"
        );
        assert_eq!(sqlite_path("sqlite:///tmp/a.db"), "/tmp/a.db");
        assert_eq!(sqlite_path("sqlite:rel.db"), "rel.db");
    }

    async fn pragma(db: &DatabaseConnection, name: &str) -> String {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("PRAGMA {name}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0)
            .map(|v| v.to_string())
            .or_else(|_| row.try_get_by_index::<String>(0))
            .unwrap()
    }

    #[tokio::test]
    async fn sqlite_file_is_created_with_wal_foreign_keys_and_busy_timeout() {
        let dir = std::env::temp_dir().join(format!("db-connect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/nested/hotel.sqlite", dir.display());
        let db = connect(&url).await.unwrap();
        assert!(dir.join("nested/hotel.sqlite").exists());
        assert_eq!(pragma(&db, "journal_mode").await, "wal");
        assert_eq!(pragma(&db, "foreign_keys").await, "1");
        assert_eq!(pragma(&db, "busy_timeout").await, "5000");
        // Durable commits by default: synchronous FULL is 2 (NORMAL would be 1).
        assert_eq!(pragma(&db, "synchronous").await, "2");
        assert_eq!(pragma(&db, "mmap_size").await, (1_u64 << 30).to_string());
        db.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn durable_commits_can_be_traded_away() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/hotel.sqlite", dir.path().display());
        let settings = ConnectionSettings {
            durable_commits: false,
            ..ConnectionSettings::default()
        };
        let db = connect_with(&url, &settings).await.unwrap();
        assert_eq!(pragma(&db, "synchronous").await, "1", "NORMAL");
        db.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_sqlite_file_is_not_created_when_creation_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/typo/hotel.sqlite", dir.path().display());
        let settings = ConnectionSettings {
            create_if_missing: false,
            ..ConnectionSettings::default()
        };
        let err = connect_with(&url, &settings).await.unwrap_err();
        assert!(matches!(err, Error::DatabaseNotFound { .. }), "{err}");
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing was created"
        );
        // An existing one opens.
        let existing = format!("sqlite://{}/hotel.sqlite", dir.path().display());
        connect(&existing).await.unwrap().close().await.unwrap();
        connect_with(&existing, &settings)
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unsupported_url_is_a_typed_error_without_password() {
        let err = connect("mysql://root:pw@localhost/db").await.unwrap_err();
        assert!(matches!(err, Error::UnsupportedUrl { ref url } if !url.contains("pw")));
    }
}
