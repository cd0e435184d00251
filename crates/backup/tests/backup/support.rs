//! Shared fixtures: seeded databases, table contents, repositories in a directory or in a
//! moto S3 server, and real ways to make a disk fail.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use backup::{BackupRepository, Source, VerifyOptions};
use chrono::NaiveDate;
use dataset::{DatasetOptions, Scale};
use db_connect::{
    Backend,
    testing::{MotoServer, S3Bucket, TestDatabase},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// A migrated database filled with the tiny dataset.
pub(crate) async fn seeded(db: TestDatabase) -> TestDatabase {
    let db = db.migrated::<migration::Migrator>().await;
    let options = DatasetOptions::new(Scale::Tiny)
        .seed(1)
        .reference_date(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
    dataset::generate(db.connection(), &options, &|_| {})
        .await
        .unwrap();
    db
}

/// The newest migration of the schema, as the manifest of a migrated database records it.
pub(crate) fn latest_migration() -> String {
    use migration::MigratorTrait;
    migration::Migrator::migrations()
        .last()
        .map(|m| m.name().to_owned())
        .unwrap()
}

pub(crate) fn source(db: &TestDatabase) -> Source {
    Source::from_url(db.url()).unwrap()
}

/// Verification options that work on both backends (PostgreSQL verifies on the test server).
pub(crate) fn verify_options(db: &TestDatabase) -> VerifyOptions {
    VerifyOptions {
        postgres_server: (db.backend() == Backend::Postgres).then(|| source(db)),
        ..VerifyOptions::default()
    }
}

pub(crate) fn repo(dir: &Path) -> BackupRepository {
    BackupRepository::open(dir).unwrap()
}

/// The credentials the code under test uses against moto.
#[cfg(feature = "s3")]
pub(crate) fn s3_settings() -> backup::S3Settings {
    backup::S3Settings {
        access_key_id: Some(db_connect::testing::TEST_ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(db_connect::testing::TEST_SECRET_ACCESS_KEY.to_owned()),
        ..backup::S3Settings::default()
    }
}

/// A repository of one test's own: a temporary directory, or a prefix of a fresh bucket of a
/// moto_server of its own; with raw access to its objects, to damage or plant them as
/// something other than the library would.
pub(crate) struct TestRepo {
    pub(crate) repo: BackupRepository,
    /// A directory for the test's own files (restore targets, scratch copies).
    pub(crate) scratch: tempfile::TempDir,
    place: Place,
}

enum Place {
    Local(tempfile::TempDir),
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    S3 {
        bucket: S3Bucket,
        prefix: String,
        // Dropped last: the server outlives the test's use of it.
        _moto: MotoServer,
    },
}

impl TestRepo {
    pub(crate) fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            repo: repo(dir.path()),
            scratch: tempfile::tempdir().unwrap(),
            place: Place::Local(dir),
        }
    }

    /// `None` (after a SKIP line) without moto_server.
    #[cfg(feature = "s3")]
    pub(crate) fn s3() -> Option<Self> {
        let moto = MotoServer::start()?;
        let bucket = moto.bucket("backup-test");
        let prefix = "hotel/db".to_owned();
        let scratch = tempfile::tempdir().unwrap();
        let repo = BackupRepository::builder(
            backup::RepositoryLocation::parse(&bucket.url(&prefix)).unwrap(),
        )
        .s3_settings(s3_settings())
        .scratch_dir(scratch.path())
        .open()
        .unwrap();
        Some(Self {
            repo,
            scratch,
            place: Place::S3 {
                bucket,
                prefix,
                _moto: moto,
            },
        })
    }

    /// Every object's key, sorted (temporary files and the local lock file are not objects).
    pub(crate) fn keys(&self) -> Vec<String> {
        match &self.place {
            Place::Local(dir) => {
                let mut keys = Vec::new();
                let mut pending = vec![dir.path().to_path_buf()];
                while let Some(d) = pending.pop() {
                    for entry in std::fs::read_dir(&d).unwrap() {
                        let path = entry.unwrap().path();
                        let name = path.file_name().unwrap().to_string_lossy().into_owned();
                        if path.is_dir() {
                            pending.push(path);
                        } else if !name.starts_with('.') && !name.ends_with(".tmp") {
                            let key = path.strip_prefix(dir.path()).unwrap();
                            keys.push(key.to_string_lossy().into_owned());
                        }
                    }
                }
                keys.sort();
                keys
            }
            Place::S3 { bucket, prefix, .. } => bucket
                .keys()
                .into_iter()
                .filter_map(|k| k.strip_prefix(&format!("{prefix}/")).map(str::to_owned))
                .collect(),
        }
    }

    /// The keys of the top level (backups, manifests, the identity), without sub-directories.
    pub(crate) fn top_keys(&self) -> Vec<String> {
        self.keys()
            .into_iter()
            .filter(|k| !k.contains('/'))
            .collect()
    }

    pub(crate) fn read(&self, key: &str) -> Vec<u8> {
        match &self.place {
            Place::Local(dir) => std::fs::read(dir.path().join(key)).unwrap(),
            Place::S3 { bucket, prefix, .. } => bucket.object(&format!("{prefix}/{key}")).unwrap(),
        }
    }

    pub(crate) fn write(&self, key: &str, bytes: &[u8]) {
        match &self.place {
            Place::Local(dir) => {
                let path = dir.path().join(key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            Place::S3 { bucket, prefix, .. } => {
                bucket.put_object(&format!("{prefix}/{key}"), bytes)
            }
        }
    }

    /// Flips one bit in the middle of an object.
    pub(crate) fn flip_a_byte(&self, key: &str) {
        let mut bytes = self.read(key);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        self.write(key, &bytes);
    }

    /// The local directory (local repositories only).
    pub(crate) fn dir(&self) -> Option<&Path> {
        match &self.place {
            Place::Local(dir) => Some(dir.path()),
            Place::S3 { .. } => None,
        }
    }
}

/// Defines, for each named `async fn(TestDatabase, TestRepo)`, one test per database backend
/// and repository kind: `<name>::sqlite_local`, `::postgres_local`, `::sqlite_s3`,
/// `::postgres_s3` (the S3 ones with the `s3` feature, against a moto_server of their own).
/// With `sqlite;` first, SQLite only: `<name>::local` and `::s3`.
macro_rules! test_on_repositories {
    (sqlite; $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use db_connect::testing::TestDatabase;
                use crate::support::TestRepo;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn local() {
                    super::$name(TestDatabase::sqlite().await, TestRepo::local()).await;
                }
                #[cfg(feature = "s3")]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn s3() {
                    if let Some(repo) = TestRepo::s3() {
                        super::$name(TestDatabase::sqlite().await, repo).await;
                    }
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use db_connect::testing::TestDatabase;
                use crate::support::TestRepo;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_local() {
                    super::$name(TestDatabase::sqlite().await, TestRepo::local()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_local() {
                    if let Some(db) = TestDatabase::postgres().await {
                        super::$name(db, TestRepo::local()).await;
                    }
                }
                #[cfg(feature = "s3")]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_s3() {
                    if let Some(repo) = TestRepo::s3() {
                        super::$name(TestDatabase::sqlite().await, repo).await;
                    }
                }
                #[cfg(feature = "s3")]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_s3() {
                    let Some(repo) = TestRepo::s3() else { return };
                    if let Some(db) = TestDatabase::postgres().await {
                        super::$name(db, repo).await;
                    }
                }
            }
        )+
    };
}
pub(crate) use test_on_repositories;

/// A writer as the replication docs ask the application to be: one connection that leaves
/// checkpoints to the replicator (`wal_autocheckpoint = 0`).
pub(crate) async fn application_writer(db: &TestDatabase) -> DatabaseConnection {
    let conn = db.single_connection().await;
    conn.execute_unprepared("PRAGMA wal_autocheckpoint = 0")
        .await
        .unwrap();
    conn
}

pub(crate) async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// The user tables of a database.
pub(crate) async fn tables(db: &DatabaseConnection) -> Vec<String> {
    let sql = match Backend::of_connection(db) {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        }
    };
    strings(db, sql).await
}

/// Every row of every table, as text, so two databases can be compared exactly.
pub(crate) async fn contents(db: &DatabaseConnection) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for table in tables(db).await {
        let sql = match Backend::of_connection(db) {
            Backend::Sqlite => {
                let columns = strings(
                    db,
                    &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
                )
                .await;
                let row = columns
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                format!(
                    "SELECT coalesce(string_agg(r, char(10) ORDER BY r), '') FROM (SELECT {row} AS r FROM \"{table}\")"
                )
            }
            Backend::Postgres => format!(
                "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM \"{table}\" t"
            ),
        };
        let text = strings(db, &sql).await.remove(0);
        all.insert(table, text);
    }
    all
}

/// Live row counts, as the manifest records them.
pub(crate) async fn counts(db: &DatabaseConnection) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for table in tables(db).await {
        let n = scalar(db, &format!("SELECT count(*) FROM \"{table}\"")).await;
        all.insert(table, n as u64);
    }
    all
}

/// Changes the data in every way a day of use would: inserts, updates, deletes.
pub(crate) async fn mutate(db: &DatabaseConnection) {
    db.execute_unprepared(&format!("{INSERT_BOOKING}; {INSERT_BOOKING}"))
        .await
        .unwrap();
    db.execute_unprepared(
        "UPDATE users SET name = 'changed' WHERE id = (SELECT min(id) FROM users)",
    )
    .await
    .unwrap();
    db.execute_unprepared(
        "DELETE FROM notifications WHERE id = (SELECT max(id) FROM notifications)",
    )
    .await
    .unwrap();
}

/// Inserts a copy of the first booking: valid on both backends whatever the dataset.
pub(crate) const INSERT_BOOKING: &str = "INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at) \
     SELECT user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at \
     FROM bookings WHERE id = (SELECT min(id) FROM bookings)";

/// A fresh connection to a database whose test pool was closed.
pub(crate) async fn reopen(db: &TestDatabase) -> DatabaseConnection {
    db_connect::connect(db.url()).await.unwrap()
}

/// The names of the files in a directory, sorted.
pub(crate) fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Flips one bit in the middle of a file.
pub(crate) fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

/// Drops a PostgreSQL database made by a test (a restore's new or replaced database).
pub(crate) async fn drop_pg_database(name: &str) {
    let admin = db_connect::connect(&db_connect::testing::postgres_admin_url())
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.unwrap();
}

/// A PostgreSQL URL of another database on the test server.
pub(crate) fn pg_url_of(db: &TestDatabase, name: &str) -> String {
    let mut url = url::Url::parse(db.url()).unwrap();
    url.set_path(name);
    url.to_string()
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(cmd).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("{cmd}: {e}")),
    }
}

/// A tiny tmpfs, to fill a disk for real. Needs root; reported like a missing service
/// otherwise (a skip, or a failure under HOTEL_REQUIRE_SERVICES=1).
pub(crate) struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub(crate) fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_string_lossy().into_owned();
        match run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &path],
        ) {
            Ok(()) => Some(Self { dir }),
            Err(why) => {
                db_connect::testing::service_unavailable("a tmpfs mount (root)", &why);
                None
            }
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Fills the file system, leaving about `leave` bytes free.
    pub(crate) fn fill(&self, leave: u64) -> PathBuf {
        let stat = nix::sys::statvfs::statvfs(self.dir.path()).unwrap();
        let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
        let filler = self.dir.path().join("filler");
        let size = free.saturating_sub(leave);
        std::fs::write(&filler, vec![0xA5u8; size as usize]).unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", &self.dir.path().to_string_lossy()]);
    }
}

/// A directory made immutable with `chattr +i`: not even root can create files in it.
pub(crate) struct Immutable {
    path: PathBuf,
}

impl Immutable {
    pub(crate) fn set(path: &Path) -> Option<Self> {
        match run("chattr", &["+i", &path.to_string_lossy()]) {
            Ok(()) => Some(Self {
                path: path.to_path_buf(),
            }),
            Err(why) => {
                db_connect::testing::service_unavailable("chattr +i", &why);
                None
            }
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = run("chattr", &["-i", &self.path.to_string_lossy()]);
    }
}

/// A number from a query inside a transaction.
pub(crate) async fn scalar_in(txn: &sea_orm::DatabaseTransaction, sql: &str) -> i64 {
    let row = txn
        .query_one_raw(Statement::from_string(txn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// A TCP proxy in front of a server, which a test can cut (every connection dropped, new ones
/// refused), stall (every connection kept open but nothing passed on, new ones too: a network
/// that silently drops packets) and restore: an object store that goes down and comes back.
#[cfg(feature = "s3")]
pub(crate) struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stalled: tokio::sync::watch::Sender<bool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

#[cfg(feature = "s3")]
impl Proxy {
    pub(crate) async fn start(upstream: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (stalled, _) = tokio::sync::watch::channel(false);
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accept_up, accept_stalled, accept_connections) =
            (up.clone(), stalled.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection reset
                }
                let mut stall = accept_stalled.subscribe();
                let task = tokio::spawn(async move {
                    let stalled = *stall.borrow_and_update();
                    if stalled {
                        // Held open (the task owns it), never answered, until the proxy
                        // is dropped.
                        std::future::pending::<()>().await;
                    }
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let stalled = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
                        _ = stall.wait_for(|stalled| *stalled) => true,
                    };
                    if stalled {
                        // Both ends stay open and silent from now on, even once the proxy is
                        // restored: a connection whose packets a network dropped.
                        std::future::pending::<()>().await;
                    }
                });
                accept_connections.lock().unwrap().push(task);
            }
        });
        Self {
            port,
            up,
            stalled,
            connections,
            accept,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Drops every connection and refuses new ones.
    pub(crate) fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Keeps every connection open but passes nothing on any more, and holds new ones the
    /// same way: requests in flight and new ones wait for an answer that never comes.
    pub(crate) fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Lets new connections through again (stalled ones stay silent).
    pub(crate) fn restore(&self) {
        self.stalled.send_replace(false);
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(feature = "s3")]
impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}
