//! Physical base backups of a PostgreSQL cluster with `pg_basebackup`, streamed into the
//! repository, for point-in-time recovery on top of the archived WAL ([`super::wal`]).
//!
//! `pg_basebackup --format=tar --pgdata=- --wal-method=none` writes the cluster as one tar
//! stream on its standard output; it is compressed and hashed as it arrives and uploaded as
//! `base/<id>/base.tar.zst`, never staged on local disk. No WAL is in the tar: the archive has
//! it (a base backup needs the WAL from its start to its stop position to be consistent, and
//! the archive holds exactly that; `--wal-method=fetch` would keep the WAL on the server until
//! the end and store it twice). The backup is only recorded once the segment of its stop
//! position is archived, so a listed base backup is restorable.
//!
//! Its manifest `base/<id>/manifest.json` (sealed, written last) records the start and stop
//! positions, timeline, server version, the cluster's system identifier, and the row count of
//! every table of every database, read in a REPEATABLE READ snapshot right after the backup
//! stopped, with the WAL insert position of that snapshot (`counted_at_lsn`): replaying to
//! that position gives the counted state.

use std::{
    collections::BTreeMap,
    fmt,
    path::PathBuf,
    process::Stdio,
    str::FromStr,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sea_orm::sqlx::{self, Connection};
use serde::{Deserialize, Serialize};

use super::{PgUrl, row_counts, spawn, wal::wal_key};
use crate::{
    BackupId, BackupRepository, Error, Result,
    progress::{Phase, ProgressFn, run_blocking},
    run_log::Operation,
    sealed,
    stream::{self, Compressed},
};

/// The directory of base backups.
pub(crate) const BASE_DIR: &str = "base";
/// The format this build writes and reads.
const BASE_FORMAT: u32 = 1;

/// A WAL position (`pg_lsn`), printed and parsed as PostgreSQL does: `16/B374D848`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid =
            || Error::InvalidConfig(format!("`{text}` is not a WAL position such as 0/16B3748"));
        let (high, low) = text.trim().split_once('/').ok_or_else(invalid)?;
        let high = u32::from_str_radix(high, 16).map_err(|_| invalid())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| invalid())?;
        Ok(Self((u64::from(high) << 32) | u64::from(low)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The name of the WAL segment holding `lsn` on `timeline`, for segments of `segment_size`
/// bytes (what `pg_walfile_name` computes).
pub(crate) fn segment_name(timeline: u32, lsn: Lsn, segment_size: u64) -> String {
    let per_log = 0x1_0000_0000 / segment_size.max(1);
    let number = lsn.0 / segment_size.max(1);
    format!(
        "{timeline:08X}{:08X}{:08X}",
        number / per_log,
        number % per_log
    )
}

/// The segment after `name` (same timeline), or `None` for a name that is not a segment's.
pub(crate) fn next_segment(name: &str, segment_size: u64) -> Option<String> {
    let part = |at: usize| u64::from_str_radix(name.get(at..at + 8)?, 16).ok();
    let (timeline, log, seg) = (part(0)?, part(8)?, part(16)?);
    let per_log = 0x1_0000_0000 / segment_size.max(1);
    let (log, seg) = if seg + 1 >= per_log {
        (log + 1, 0)
    } else {
        (log, seg + 1)
    };
    Some(format!("{timeline:08X}{log:08X}{seg:08X}"))
}

/// The row counts of one database, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseCounts {
    /// The WAL insert position when the snapshot was taken.
    pub counted_at_lsn: Lsn,
    /// Rows per table (`table` in `public`, `schema.table` elsewhere).
    pub tables: BTreeMap<String, u64>,
}

/// What a base backup is: the manifest `base/<id>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBackupManifest {
    /// The manifest format.
    pub format_version: u32,
    /// The backup's id (its start time).
    pub id: BackupId,
    /// When `pg_basebackup` started.
    pub started_at: DateTime<Utc>,
    /// When the backup had stopped and its last WAL segment was archived: every instant from
    /// here on can be a recovery target.
    pub finished_at: DateTime<Utc>,
    /// The server, `postgres://user@host:port/db` without password.
    pub server: String,
    /// The cluster's system identifier.
    pub system_identifier: String,
    /// The server's version (`server_version`).
    pub server_version: String,
    /// `server_version_num`, e.g. 150020.
    pub server_version_num: u32,
    /// The WAL segment size, bytes.
    pub wal_segment_size: u64,
    /// The timeline the backup was taken on.
    pub timeline: u32,
    /// Where replay starts (the backup's checkpoint redo position).
    pub start_lsn: Lsn,
    /// Where the backup is consistent: recovery must replay at least this far.
    pub stop_lsn: Lsn,
    /// The segment of `start_lsn`: the first one a restore fetches.
    pub start_wal: String,
    /// The segment of `stop_lsn`.
    pub stop_wal: String,
    /// The data object (`base/<id>/base.tar.zst`).
    pub file: String,
    /// The tar stream's size.
    pub raw_bytes: u64,
    /// The object's size.
    pub compressed_bytes: u64,
    /// SHA-256 of the object, lowercase hex.
    pub sha256: String,
    /// Row counts of every database that accepts connections.
    pub databases: BTreeMap<String, DatabaseCounts>,
}

/// How base backups are taken.
#[derive(Debug, Clone)]
pub struct BaseBackupOptions {
    /// The `pg_basebackup` program (its major version must be the server's).
    pub pg_basebackup: PathBuf,
    /// How long to wait for the stop segment to be archived before giving up.
    pub archive_wait: Duration,
}

impl Default for BaseBackupOptions {
    fn default() -> Self {
        Self {
            pg_basebackup: PathBuf::from("pg_basebackup"),
            archive_wait: Duration::from_secs(120),
        }
    }
}

fn manifest_key(id: &BackupId) -> String {
    format!("{BASE_DIR}/{id}/manifest.json")
}

fn data_key(id: &BackupId) -> String {
    format!("{BASE_DIR}/{id}/base.tar.zst")
}

/// What the server says about itself before a backup.
struct ServerFacts {
    system_identifier: String,
    server_version: String,
    server_version_num: u32,
    wal_segment_size: u64,
    databases: Vec<String>,
}

async fn server_facts(url: &PgUrl) -> Result<ServerFacts> {
    let context = || format!("inspecting the server of {}", url.public());
    let mut conn = url.connect().await?;
    let row: (String, String, String, String, String) = sqlx::query_as(
        "SELECT (SELECT system_identifier::text FROM pg_control_system()), \
                current_setting('server_version'), current_setting('server_version_num'), \
                (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), \
                current_setting('archive_mode')",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| Error::db(context(), e))?;
    let databases: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| Error::db(context(), e))?;
    let _ = conn.close().await;
    if row.4 == "off" {
        return Err(Error::InvalidConfig(format!(
            "archive_mode is off on {}: without archived WAL a base backup cannot be restored \
             (set archive_mode = on and archive_command = 'hotel-backup wal-push %p')",
            url.public()
        )));
    }
    Ok(ServerFacts {
        system_identifier: row.0,
        server_version: row.1,
        server_version_num: row.2.parse().unwrap_or(0),
        wal_segment_size: row.3.parse().unwrap_or(16 << 20),
        databases,
    })
}

/// What a backup history file (`<segment>.<offset>.backup`, archived when a backup stops)
/// says: `START WAL LOCATION: 0/2000028 (file …)`, `STOP WAL LOCATION: …`, `START TIMELINE:
/// 1`, `LABEL: …`.
#[derive(Debug, PartialEq, Eq)]
struct BackupHistory {
    start: Lsn,
    stop: Lsn,
    timeline: u32,
    label: String,
}

fn backup_history(text: &str) -> Option<BackupHistory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name).map(|rest| rest.trim().to_owned()))
    };
    let lsn = |name: &str| -> Option<Lsn> { field(name)?.split_whitespace().next()?.parse().ok() };
    Some(BackupHistory {
        start: lsn("START WAL LOCATION:")?,
        stop: lsn("STOP WAL LOCATION:")?,
        timeline: field("START TIMELINE:")?.parse().ok()?,
        label: field("LABEL:")?,
    })
}

/// Ends the current WAL segment (`pg_switch_wal`), so that it is archived now; a role that
/// may not do it only delays that until the segment fills up.
async fn switch_wal(url: &PgUrl) {
    let switched = async {
        let mut conn = url.connect().await?;
        // A switch without WAL written since the last one does nothing: a transaction with
        // an id writes a commit record.
        let done = sqlx::query("SELECT txid_current()")
            .execute(&mut conn)
            .await
            .and(
                sqlx::query("SELECT pg_switch_wal()")
                    .execute(&mut conn)
                    .await,
            )
            .map_err(|e| Error::db(format!("switching the WAL of {}", url.public()), e));
        let _ = conn.close().await;
        done.map(|_| ())
    }
    .await;
    if let Err(e) = switched {
        tracing::warn!(error = %crate::error_chain(&e), "cannot switch WAL segments; the counts' segment is archived when it fills up");
    }
}

/// Counts the rows of every table of `database` in one snapshot, with its WAL position.
async fn count_database(url: &PgUrl, database: &str) -> Result<DatabaseCounts> {
    let url = url.with_database(database);
    let context = || format!("counting the rows of {}", url.public());
    let mut conn = url.connect().await?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    // The first statement takes the snapshot; the position is read in the same statement.
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let tables = row_counts(&mut conn)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    Ok(DatabaseCounts {
        counted_at_lsn: lsn.parse()?,
        tables,
    })
}

impl BackupRepository {
    /// Takes a base backup of the cluster serving `server_url` (a superuser or a role with
    /// REPLICATION) with `pg_basebackup`, streamed into the repository, and records it once
    /// its WAL is archived. The cluster must archive its WAL into this repository
    /// (`archive_command = 'hotel-backup wal-push %p'`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the server does not archive its WAL;
    /// [`Error::ForeignDatabase`] when the archive holds another cluster's WAL;
    /// [`Error::DumpFailed`] when `pg_basebackup` fails; [`Error::Internal`] when the stop
    /// segment is not archived within [`BaseBackupOptions::archive_wait`]; the store's and
    /// the database's errors.
    pub async fn base_backup(
        &self,
        server_url: &str,
        options: &BaseBackupOptions,
        progress: &ProgressFn<'_>,
    ) -> Result<BaseBackupManifest> {
        let url = PgUrl::parse(server_url)?;
        let facts = server_facts(&url).await?;
        if let Some(archived) = self.wal_cluster().await?
            && archived != facts.system_identifier
        {
            return Err(Error::ForeignDatabase {
                repository: self.location.to_string(),
                holds: format!("the WAL of PostgreSQL cluster {archived}"),
                given: format!("cluster {} ({})", facts.system_identifier, url.public()),
            });
        }
        let _lock = self.lock(Operation::Create).await?;
        let started_at = Utc::now();
        let id = self.free_base_id(started_at).await?;
        let key = data_key(&id);
        let (out, pending) = self.store.upload(&key).await?;

        let mut cmd = url.command(&options.pg_basebackup);
        // The label finds the backup's history file in the archive: its positions.
        let label = format!("hotel-backup {id}");
        cmd.args([
            "--format=tar",
            "--pgdata=-",
            "--wal-method=none",
            "--checkpoint=fast",
            "--verbose",
        ])
        .arg(format!("--label={label}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let zstd = self.config.zstd;
        let taken = run_blocking(Phase::Dump, progress, move |tx| {
            let (mut child, stderr) = spawn(cmd, "pg_basebackup")?;
            let Some(mut stdout) = child.stdout.take() else {
                return Err(Error::Internal("pg_basebackup has no stdout".to_owned()));
            };
            let compressed = stream::compress(&mut stdout, out, zstd, None, &tx);
            if compressed.is_err() {
                let _ = child.kill();
            }
            let status = child
                .wait()
                .map_err(|e| Error::Internal(format!("pg_basebackup: {e}")))?;
            let stderr = stderr.finish();
            let compressed = compressed?;
            if !status.success() || compressed.raw_bytes == 0 {
                return Err(Error::DumpFailed {
                    tool: "pg_basebackup".to_owned(),
                    status: if status.success() {
                        "empty output".to_owned()
                    } else {
                        status.to_string()
                    },
                    stderr,
                });
            }
            Ok::<(Compressed, String), Error>((compressed, stderr))
        })
        .await;
        let (compressed, _stderr) = match taken.and_then(|r| r) {
            Ok(done) => done,
            Err(e) => {
                pending.abort().await;
                return Err(e);
            }
        };
        pending.commit().await?;
        let history = match self.find_backup_history(&label, options.archive_wait).await {
            Ok(history) => history,
            Err(e) => {
                let _ = self.store.delete(&key).await;
                return Err(e);
            }
        };
        let (start_lsn, timeline, stop_lsn) = (history.start, history.timeline, history.stop);

        let counted = futures::stream::iter(facts.databases.iter().map(|db| {
            let url = url.clone();
            async move { (db.clone(), count_database(&url, db).await) }
        }))
        .buffered(4)
        .collect::<Vec<_>>()
        .await;
        let mut databases = BTreeMap::new();
        for (name, counts) in counted {
            match counts {
                Ok(counts) => {
                    databases.insert(name, counts);
                }
                // Dropped meanwhile: nothing to count.
                Err(Error::DatabaseNotFound { .. }) => {}
                Err(e) => {
                    let _ = self.store.delete(&key).await;
                    return Err(e);
                }
            }
        }

        let size = facts.wal_segment_size;
        let stop_wal = segment_name(timeline, stop_lsn, size);
        // The counts are checked by replaying to where they were taken: end that segment
        // now, so it is archived (a mostly empty segment compresses to almost nothing).
        let counted_wal = databases
            .values()
            .map(|d| d.counted_at_lsn)
            .max()
            .map(|lsn| segment_name(timeline, lsn, size));
        if counted_wal.is_some() {
            switch_wal(&url).await;
        }
        for segment in std::iter::once(&stop_wal).chain(counted_wal.as_ref()) {
            if let Err(e) = self.wait_for_archived(segment, options.archive_wait).await {
                let _ = self.store.delete(&key).await;
                return Err(e);
            }
        }
        let manifest = BaseBackupManifest {
            format_version: BASE_FORMAT,
            id: id.clone(),
            started_at,
            finished_at: Utc::now(),
            server: url.public(),
            system_identifier: facts.system_identifier,
            server_version: facts.server_version,
            server_version_num: facts.server_version_num,
            wal_segment_size: size,
            timeline,
            start_lsn,
            stop_lsn,
            start_wal: segment_name(timeline, start_lsn, size),
            stop_wal,
            file: key,
            raw_bytes: compressed.raw_bytes,
            compressed_bytes: compressed.compressed_bytes,
            sha256: compressed.sha256,
            databases,
        };
        let bytes = sealed::seal(&manifest).map_err(Error::Internal)?;
        self.store.put_once(&manifest_key(&id), bytes).await?;
        tracing::info!(id = %id, start = %start_lsn, stop = %stop_lsn, "base backup taken");
        Ok(manifest)
    }

    /// The archived backup history file of the backup labelled `label` (the server archives
    /// it when the backup stops), waiting for it at most `wait`.
    async fn find_backup_history(&self, label: &str, wait: Duration) -> Result<BackupHistory> {
        let deadline = Instant::now() + wait;
        loop {
            let mut files: Vec<String> = self
                .archived_wal()
                .await?
                .into_iter()
                .filter(|w| w.kind == crate::WalFileKind::BackupHistory)
                .map(|w| w.name)
                .collect();
            // The newest first: ours is among the last.
            files.sort_unstable_by(|a, b| b.cmp(a));
            for name in files.iter().take(16) {
                let Some(bytes) = self.archived_wal_bytes(name).await? else {
                    continue;
                };
                if let Some(history) = backup_history(&String::from_utf8_lossy(&bytes))
                    && history.label == label
                {
                    return Ok(history);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Internal(format!(
                    "the backup history file of `{label}` was not archived within {wait:?}: \
                     check archive_command and pg_stat_archiver"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the WAL file `name` is in the archive.
    async fn wait_for_archived(&self, name: &str, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            if self.store.head(&wal_key(name)).await?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Internal(format!(
                    "the WAL segment {name} that ends the base backup was not archived within \
                     {wait:?}: check archive_command and pg_stat_archiver"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn free_base_id(&self, at: DateTime<Utc>) -> Result<BackupId> {
        let taken = self.store.list_dir(BASE_DIR).await?.dirs;
        (1..10_000)
            .map(|n| BackupId::for_time(at, n))
            .find(|id| !taken.iter().any(|dir| dir == &format!("{BASE_DIR}/{id}")))
            .ok_or_else(|| Error::Internal("no free backup id in this second".to_owned()))
    }

    /// The base backups with a valid manifest, newest first.
    ///
    /// # Errors
    ///
    /// The store's errors; a damaged manifest is skipped with a warning.
    pub async fn base_backups(&self) -> Result<Vec<BaseBackupManifest>> {
        let dirs = self.store.list_dir(BASE_DIR).await?.dirs;
        let mut found = Vec::new();
        for dir in dirs {
            let key = format!("{dir}/manifest.json");
            let Some(bytes) = self.store.get(&key).await? else {
                continue;
            };
            match sealed::open::<BaseBackupManifest>(&bytes) {
                Ok(manifest) if manifest.format_version <= BASE_FORMAT => found.push(manifest),
                Ok(_) => {
                    tracing::warn!(manifest = %self.store.describe(&key), "a base backup manifest from a newer tool; skipped")
                }
                Err(reason) => {
                    tracing::warn!(manifest = %self.store.describe(&key), %reason, "a damaged base backup manifest; skipped")
                }
            }
        }
        found.sort_by(|a, b| b.stop_lsn.cmp(&a.stop_lsn).then(b.id.cmp(&a.id)));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_segment_names_are_postgres_own() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert_eq!(segment_name(1, lsn, 16 << 20), "0000000100000016000000B3");
        assert_eq!(
            next_segment("0000000100000016000000FF", 16 << 20).as_deref(),
            Some("000000010000001700000000")
        );
        assert_eq!(
            next_segment("000000020000000000000001", 16 << 20).as_deref(),
            Some("000000020000000000000002")
        );
    }

    #[test]
    fn positions_are_read_from_the_backup_history_file() {
        let text = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                    STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n\
                    CHECKPOINT LOCATION: 0/2000060\n\
                    BACKUP METHOD: streamed\n\
                    BACKUP FROM: primary\n\
                    START TIME: 2026-11-29 00:42:13 UTC\n\
                    LABEL: hotel-backup 20261129T004213Z\n\
                    START TIMELINE: 1\n\
                    STOP TIME: 2026-11-29 00:42:14 UTC\n\
                    STOP TIMELINE: 1\n";
        let history = backup_history(text).unwrap();
        assert_eq!(history.start.to_string(), "0/2000028");
        assert_eq!(history.stop.to_string(), "0/2000100");
        assert_eq!(history.timeline, 1);
        assert_eq!(history.label, "hotel-backup 20261129T004213Z");
        assert!(backup_history("LABEL: x").is_none());
    }
}
