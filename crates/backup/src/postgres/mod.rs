//! PostgreSQL: `pg_dump --format=custom` in the snapshot the row counts were read in
//! ([`dump`]), `pg_restore` into a database and the checks of what it loaded ([`load`]), and
//! the work on whole databases that scratch copies and swaps need ([`admin`]).

pub(crate) mod admin;
pub(crate) mod base_backup;
pub(crate) mod dump;
pub(crate) mod load;
pub(crate) mod pitr_health;
pub(crate) mod pitr_prune;
pub(crate) mod pitr_restore;
pub(crate) mod pitr_verify;
pub(crate) mod wal;

use std::{
    collections::BTreeMap,
    io::Read,
    process::{Child, Command, Stdio},
    thread::JoinHandle,
};

use std::str::FromStr;

use sea_orm::sqlx::{
    self, ConnectOptions, Connection, Row,
    postgres::{PgConnectOptions, PgConnection},
};

pub(crate) use crate::pg_tools::PgTools;
use crate::{Error, Result};

/// A PostgreSQL URL split for the client programs: the password goes in `PGPASSWORD`, never
/// on a command line another user could read with `ps`.
#[derive(Clone)]
pub(crate) struct PgUrl {
    /// The full URL, for our own connections.
    full: url::Url,
    /// The database name.
    database: String,
}

impl PgUrl {
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let invalid = || Error::UnsupportedUrl {
            url: db_connect::redact_password(url),
        };
        let full = url::Url::parse(url).map_err(|_| invalid())?;
        let database = percent_decode(full.path().trim_start_matches('/'));
        if database.is_empty() {
            return Err(invalid());
        }
        Ok(Self { full, database })
    }

    /// The database name.
    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// The URL with password, for sqlx.
    pub(crate) fn connect_url(&self) -> &str {
        self.full.as_str()
    }

    /// The URL without password, for logs, manifests and the client programs' `--dbname`.
    pub(crate) fn public(&self) -> String {
        let mut url = self.full.clone();
        let _ = url.set_password(None);
        url.to_string()
    }

    /// The server, `postgres://host:port`, without user, password or database: what names it
    /// in scratch claims.
    pub(crate) fn server_key(&self) -> String {
        format!(
            "postgres://{}:{}",
            self.full.host_str().unwrap_or("localhost"),
            self.full.port().unwrap_or(5432)
        )
    }

    /// The password, decoded, for `PGPASSWORD`.
    fn password(&self) -> Option<String> {
        self.full.password().map(percent_decode)
    }

    /// The same server and credentials, another database.
    pub(crate) fn with_database(&self, name: &str) -> Self {
        let mut full = self.full.clone();
        full.set_path(name);
        Self {
            full,
            database: name.to_owned(),
        }
    }

    /// A client program with `--dbname` and the password set, reading nothing from a terminal.
    fn command(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg(format!("--dbname={}", self.public()))
            .arg("--no-password")
            .stdin(Stdio::null());
        if let Some(password) = self.password() {
            cmd.env("PGPASSWORD", password);
        }
        cmd
    }

    pub(crate) async fn connect(&self) -> Result<PgConnection> {
        let context = || format!("connecting to {}", self.public());
        let options = PgConnectOptions::from_str(self.connect_url())
            .map_err(|e| Error::db(context(), e))?
            .disable_statement_logging();
        PgConnection::connect_with(&options)
            .await
            .map_err(|e| match &e {
                // invalid_catalog_name: the database does not exist.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => {
                    Error::DatabaseNotFound {
                        database: self.public(),
                    }
                }
                _ => Error::db(context(), e),
            })
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Double-quotes an identifier.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A database name `<base>_<tag>` within PostgreSQL's 63-byte limit.
pub(crate) fn derived_name(base: &str, tag: &str) -> String {
    let room = 63usize.saturating_sub(tag.len() + 1);
    let mut cut = base.len().min(room);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{tag}", &base[..cut])
}

/// The user tables as (schema, table), sorted.
pub(crate) async fn user_tables(
    conn: &mut PgConnection,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT table_schema, table_name FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' \
           AND table_schema NOT IN ('pg_catalog', 'information_schema') \
           AND table_schema NOT LIKE 'pg\\_%' \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// How a table is named in manifests: `table` in `public`, `schema.table` elsewhere.
pub(crate) fn table_key(schema: &str, table: &str) -> String {
    if schema == "public" {
        table.to_owned()
    } else {
        format!("{schema}.{table}")
    }
}

/// The row count of every user table.
pub(crate) async fn row_counts(
    conn: &mut PgConnection,
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let mut counts = BTreeMap::new();
    for (schema, table) in user_tables(conn).await? {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}.{}",
            quote(&schema),
            quote(&table)
        )))
        .fetch_one(&mut *conn)
        .await?;
        counts.insert(table_key(&schema, &table), u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// The newest `version` of the migration table, or `None` when it does not exist.
pub(crate) async fn migration_version(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Option<String>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(quote(table))
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT max(version)::text FROM {}",
        quote(table)
    )))
    .fetch_one(&mut *conn)
    .await
}

/// The row count of every user table, then the migration version: what a manifest records of
/// a database's contents.
pub(crate) async fn contents(
    conn: &mut PgConnection,
    migration_table: &str,
) -> Result<(BTreeMap<String, u64>, Option<String>), sqlx::Error> {
    let tables = row_counts(conn).await?;
    let version = migration_version(conn, migration_table).await?;
    Ok((tables, version))
}

/// Collects the end of a child's stderr on a thread of its own, so a chatty child never
/// blocks on a full pipe.
struct StderrTail(Option<JoinHandle<String>>);

/// The most stderr kept for an error message.
const STDERR_KEEP: usize = 16 * 1024;

impl StderrTail {
    fn start(child: &mut Child) -> Self {
        Self(child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut all = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                    if all.len() > 2 * STDERR_KEEP {
                        all.drain(..all.len() - STDERR_KEEP);
                    }
                }
                let start = all.len().saturating_sub(STDERR_KEEP);
                String::from_utf8_lossy(&all[start..]).trim().to_owned()
            })
        }))
    }

    fn finish(self) -> String {
        self.0
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default()
    }
}

/// Starts a client program, telling a missing program apart from other failures.
fn spawn(mut cmd: Command, tool: &str) -> Result<(Child, StderrTail)> {
    let mut child = cmd.spawn().map_err(|source| Error::ToolMissing {
        tool: tool.to_owned(),
        source,
    })?;
    let stderr = StderrTail::start(&mut child);
    Ok((child, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_command_line() {
        let url = PgUrl::parse("postgres://app:p%40ss@db:5432/hotel?sslmode=disable").unwrap();
        assert_eq!(url.database(), "hotel");
        assert_eq!(url.public(), "postgres://app@db:5432/hotel?sslmode=disable");
        assert_eq!(url.password().as_deref(), Some("p@ss"));
        let cmd = url.command(std::path::Path::new("pg_dump"));
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.iter()
                .all(|a| !a.contains("p@ss") && !a.contains("p%40ss"))
        );
        let scratch = url.with_database("hotel_verify_1");
        assert_eq!(
            scratch.public(),
            "postgres://app@db:5432/hotel_verify_1?sslmode=disable"
        );
    }

    #[test]
    fn derived_names_fit_in_63_bytes() {
        let long = "x".repeat(80);
        let name = derived_name(&long, "verify_20261125t103000z_123");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_verify_20261125t103000z_123"));
        assert_eq!(derived_name("hotel", "replaced"), "hotel_replaced");
    }
}
