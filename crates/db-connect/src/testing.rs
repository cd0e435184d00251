//! Throw-away databases for tests, on SQLite and PostgreSQL.
//!
//! Every test gets a database of its own, so tests run in parallel and leave nothing behind:
//! a SQLite file in a temporary directory, or a uniquely named PostgreSQL database that is
//! dropped when the [`TestDatabase`] is dropped.
//!
//! PostgreSQL is found at `HOTEL_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), Redis at `HOTEL_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`). When a service cannot be reached, the test prints a `SKIP` line and
//! passes, unless `HOTEL_REQUIRE_SERVICES=1` is set (as CI does), in which case it fails.
//!
//! [`test_on_backends!`](crate::test_on_backends) runs one async test body on both backends;
//! [`RedisPrefix`] gives a test a Redis key prefix of its own, emptied when it is dropped.
//!
//! Fault tests must not stop the shared services; they start servers of their own:
//! [`PostgresCluster`] (initdb and pg_ctl on a free port: killed, restarted, replicated by a
//! streaming standby), [`RedisServer`] (stopped, paused, restarted) and [`MotoServer`] (an S3
//! API server, with a bucket per test).

// A fixture that cannot set up its database fails the test with the reason, as a test should.
#![allow(clippy::expect_used)]

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{Backend, ConnectionSettings, connect_with};

mod postgres_cluster;
mod redis_server;
mod s3;

pub use postgres_cluster::PostgresCluster;
pub use redis_server::RedisServer;
pub use s3::{MotoServer, S3Bucket, TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY};

/// Where PostgreSQL is reached when `HOTEL_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Where Redis is reached when `HOTEL_TEST_REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Whether `HOTEL_REQUIRE_SERVICES=1` asks that missing services fail tests instead of skipping.
pub fn services_required() -> bool {
    std::env::var("HOTEL_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

/// Reports a service a test needs but cannot reach: panics when services are required,
/// otherwise prints a loud skip line. Returns so the caller can `return` from the test.
///
/// # Panics
///
/// When `HOTEL_REQUIRE_SERVICES=1`.
pub fn service_unavailable(service: &str, why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    if services_required() {
        panic!("{service} is required (HOTEL_REQUIRE_SERVICES=1) but unavailable: {why}");
    }
    eprintln!(
        "SKIP {test}: {service} unavailable ({why}); set HOTEL_REQUIRE_SERVICES=1 to fail instead"
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server the test starts (which
/// should retry with another if the port was taken meanwhile).
///
/// # Panics
///
/// When no port can be bound: a broken test machine.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind a free port on 127.0.0.1")
}

/// The PostgreSQL server URL tests use (an existing database to connect to for admin work).
pub fn postgres_admin_url() -> String {
    std::env::var("HOTEL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// The Redis URL tests use, if a Redis answers a TCP connection there; otherwise reports it
/// with [`service_unavailable`] and returns `None`.
pub fn redis_url() -> Option<String> {
    let url =
        std::env::var("HOTEL_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    let reachable = url::Url::parse(&url).ok().and_then(|u| {
        let host = u.host_str()?.to_owned();
        let port = u.port().unwrap_or(6379);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .ok()?
            .next()?;
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()
    });
    match reachable {
        Some(_) => Some(url),
        None => {
            service_unavailable("Redis", &format!("nothing answers at {url}"));
            None
        }
    }
}

/// A fresh, empty database that exists for the life of one test.
///
/// Dropping it closes nothing by itself on SQLite (the temporary directory goes away); on
/// PostgreSQL it drops the database, disconnecting any session still using it.
#[derive(Debug)]
pub struct TestDatabase {
    backend: Backend,
    url: String,
    connection: DatabaseConnection,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDatabase {
    /// A new SQLite database in a temporary file, opened with the workspace's settings.
    ///
    /// # Panics
    ///
    /// When the temporary directory or the database cannot be created: a broken test machine.
    pub async fn sqlite() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hotel-test-")
            .tempdir()
            .expect("create a temporary directory for a test database");
        let url = format!("sqlite://{}", dir.path().join("test.sqlite").display());
        let connection = connect_with(&url, &ConnectionSettings::default())
            .await
            .expect("open a SQLite test database");
        Self {
            backend: Backend::Sqlite,
            url,
            connection,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A new, uniquely named PostgreSQL database, or `None` (after a skip line) when PostgreSQL
    /// cannot be reached.
    ///
    /// # Panics
    ///
    /// When PostgreSQL cannot be reached and `HOTEL_REQUIRE_SERVICES=1`, or when it answers but
    /// refuses to create the database.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let admin = match connect_with(&admin_url, &admin_settings()).await {
            Ok(admin) => admin,
            Err(err) => {
                service_unavailable("PostgreSQL", &format!("{err}: {}", source_chain(&err)));
                return None;
            }
        };
        let name = format!("hotel_test_{}", unique_suffix());
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create a PostgreSQL test database");
        let _ = admin.close().await;
        let url = database_url_for(&admin_url, &name);
        let connection = connect_with(&url, &ConnectionSettings::default())
            .await
            .expect("connect to the new PostgreSQL test database");
        Some(Self {
            backend: Backend::Postgres,
            url,
            connection,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// A new, uniquely named database on a PostgreSQL server of the test's own, for tests that
    /// terminate its sessions, kill or stop the server. Dropped like [`TestDatabase::postgres`]'s
    /// (a server that is down by then leaves it to the cluster's removal).
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn on_cluster(cluster: &PostgresCluster) -> Self {
        let name = format!("hotel_test_{}", unique_suffix());
        let url = cluster.create_database(&name).await;
        let connection = connect_with(&url, &ConnectionSettings::default())
            .await
            .expect("connect to the new database on the test's cluster");
        Self {
            backend: Backend::Postgres,
            url,
            connection,
            cleanup: Cleanup::Postgres {
                admin_url: cluster.url("postgres"),
                name,
            },
        }
    }

    /// The database's name on its server (the file's path on SQLite).
    pub fn name(&self) -> &str {
        match &self.cleanup {
            Cleanup::Postgres { name, .. } => name,
            Cleanup::Sqlite(_) => &self.url,
        }
    }

    /// A new database on `backend`; `None` when that backend is unavailable (see
    /// [`TestDatabase::postgres`]).
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite().await),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// Applies every migration of `M`, for tests that need a schema.
    ///
    /// # Panics
    ///
    /// When a migration fails.
    pub async fn migrated<M: sea_orm_migration::MigratorTrait>(self) -> Self {
        M::up(&self.connection, None)
            .await
            .expect("apply migrations to the test database");
        self
    }

    /// The backend this database runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database's URL, for code under test that connects by itself.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An open connection pool to the database.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// A pool of its own holding one connection: for session settings (`PRAGMA …`) that must
    /// apply to every statement the test then runs on it.
    pub async fn single_connection(&self) -> DatabaseConnection {
        let settings = ConnectionSettings {
            max_connections: Some(1),
            ..ConnectionSettings::default()
        };
        crate::connect_with(&self.url, &settings)
            .await
            .unwrap_or_else(|err| panic!("connect to the test database: {err}"))
    }

    /// The SQLite file's path (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => Some(dir.path().join("test.sqlite")),
            Cleanup::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived runtime
        // on its own thread drops the database and is joined before the test ends.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = connect_with(&admin_url, &admin_settings()).await.ok()?;
                let result = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
                result.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.url);
        }
    }
}

fn admin_settings() -> ConnectionSettings {
    ConnectionSettings {
        max_connections: Some(1),
        acquire_timeout: Duration::from_secs(5),
        ..ConnectionSettings::default()
    }
}

fn database_url_for(admin_url: &str, name: &str) -> String {
    match url::Url::parse(admin_url) {
        Ok(mut url) => {
            url.set_path(name);
            url.to_string()
        }
        Err(_) => format!("postgres://postgres@127.0.0.1:5432/{name}"),
    }
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.join(": ")
}

/// Defines one test per backend for each named async function taking a [`TestDatabase`].
///
/// `test_on_backends!(creates_rows);` makes the tests `creates_rows::sqlite` and
/// `creates_rows::postgres`, each calling `creates_rows(db).await` with a fresh database of that
/// backend; the PostgreSQL one skips (or fails under `HOTEL_REQUIRE_SERVICES=1`) when PostgreSQL
/// is unreachable. Add `multi_thread;` first for tests that need a multi-threaded runtime.
///
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// async fn creates_rows(db: TestDatabase) { /* ... */ }
/// db_connect::test_on_backends!(creates_rows);
/// ```
#[macro_export]
macro_rules! test_on_backends {
    (multi_thread; $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name($crate::testing::TestDatabase::sqlite().await).await;
                }
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    if let Some(db) = $crate::testing::TestDatabase::postgres().await {
                        super::$name(db).await;
                    }
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[::tokio::test]
                async fn sqlite() {
                    super::$name($crate::testing::TestDatabase::sqlite().await).await;
                }
                #[::tokio::test]
                async fn postgres() {
                    if let Some(db) = $crate::testing::TestDatabase::postgres().await {
                        super::$name(db).await;
                    }
                }
            }
        )+
    };
}

/// A Redis key prefix of one test's own, so tests sharing one Redis run in parallel; every key
/// under it is deleted when it is dropped, so the test leaves nothing behind.
///
/// ```no_run
/// # use db_connect::testing::{RedisPrefix, redis_url};
/// let Some(url) = redis_url() else { return };
/// let namespace = RedisPrefix::new(&url, "my-test");
/// assert!(namespace.prefix().starts_with("my-test:"));
/// // Give `namespace.prefix()` to the code under test, inspect with `namespace.keys("v:*")`;
/// // dropping `namespace` deletes every key under the prefix.
/// ```
#[derive(Debug)]
pub struct RedisPrefix {
    url: String,
    prefix: String,
}

impl RedisPrefix {
    /// A new prefix `{label}:{process id}:{a number unique in the process}:{nanoseconds}` on
    /// the Redis at `url`.
    pub fn new(url: &str, label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            url: url.to_owned(),
            prefix: format!(
                "{label}:{}:{}:{nanos:x}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys matching `{prefix}:{pattern}` (a `KEYS` glob); empty if Redis cannot be reached.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let Ok(mut connection) = self.connection() else {
            return Vec::new();
        };
        redis::cmd("KEYS")
            .arg(format!("{}:{pattern}", self.prefix))
            .query(&mut connection)
            .unwrap_or_default()
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url.as_str())?.get_connection_with_timeout(Duration::from_secs(2))
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let keys = self.keys("*");
        if let (false, Ok(mut connection)) = (keys.is_empty(), self.connection()) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut connection);
        }
    }
}
