//! WAL archiving for PostgreSQL point-in-time recovery: what `archive_command` and
//! `restore_command` run.
//!
//! Every file PostgreSQL hands to `archive_command` (a WAL segment, a `.partial` segment, a
//! timeline `.history` file, a backup history `.backup` file) becomes one object
//! `wal/<name>.zst`: a zstd *skippable frame* holding a sealed JSON [`ArchivedWalHeader`]
//! (name, sizes, the SHA-256 of the file and of its compressed bytes, the cluster's system
//! identifier), followed by the file compressed as one zstd frame with its own checksum
//! (`zstd -d` skips the header and gives the file back).
//!
//! - **Idempotent.** PostgreSQL retries `archive_command` whenever it cannot know whether
//!   the last run succeeded, so pushing a file that is already archived with the same content
//!   succeeds; another content under the same name is [`Error::ObjectExists`] (two clusters
//!   archiving into one repository, or a restored cluster that reuses a timeline).
//! - **Durable before success.** The object is written once (local: fsync'd, then linked;
//!   S3: a conditional PUT), so a success tells PostgreSQL it may recycle the segment.
//! - **Concurrent.** Nothing is locked: two pushes of the same file both succeed, whichever
//!   writes first.
//! - **One cluster.** The first segment pushed records the cluster's system identifier (from
//!   the segment's own header) in `wal/cluster.json`; a segment of another cluster is refused
//!   with [`Error::ForeignDatabase`].
//! - **Checked on fetch.** A missing file is [`WalFetch::Missing`] (for `restore_command`
//!   that is how recovery learns the archive ends); a damaged one is [`Error::Corrupt`] and
//!   is never written where PostgreSQL would read it.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{BackupRepository, Error, Result, error::io_err, sealed, store::Put};

/// The directory of archived WAL.
pub(crate) const WAL_DIR: &str = "wal";
/// The archive's identity: which cluster's WAL it holds.
const CLUSTER_KEY: &str = "wal/cluster.json";
/// The suffix of archived files.
const SUFFIX: &str = ".zst";
/// The format this build writes and reads.
const WAL_FORMAT: u32 = 1;
/// The skippable frame's magic (one of 0x184D2A50..=0x184D2A5F; replication segments use
/// 0x184D2A5B).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5C;
/// The zstd level of archived WAL: WAL compresses well at low levels, and archiving must keep
/// up with the server.
const WAL_ZSTD_LEVEL: i32 = 3;

/// What kind of file PostgreSQL archived, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WalFileKind {
    /// A WAL segment, `TTTTTTTTXXXXXXXXYYYYYYYY` (timeline, log, segment in hex).
    Segment,
    /// The last, incomplete segment of a timeline a standby was promoted from (`….partial`).
    Partial,
    /// A timeline history file, `TTTTTTTT.history`.
    History,
    /// A backup history file, `<segment>.<offset>.backup`.
    BackupHistory,
}

impl WalFileKind {
    /// The kind of `name`, or `None` when PostgreSQL never archives a file of that name (what
    /// keeps `archive_command` and `restore_command` from ever naming a path).
    pub fn of(name: &str) -> Option<Self> {
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        };
        if hex(name, 24) {
            return Some(Self::Segment);
        }
        if let Some(segment) = name.strip_suffix(".partial") {
            return hex(segment, 24).then_some(Self::Partial);
        }
        if let Some(timeline) = name.strip_suffix(".history") {
            return hex(timeline, 8).then_some(Self::History);
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (segment, offset) = rest.split_once('.')?;
            return (hex(segment, 24) && hex(offset, 8)).then_some(Self::BackupHistory);
        }
        None
    }
}

/// The header of an archived WAL file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedWalHeader {
    /// The format of the object.
    pub format_version: u32,
    /// The file's name, as PostgreSQL names it.
    pub name: String,
    /// The file's size.
    pub raw_bytes: u64,
    /// SHA-256 of the file, lowercase hex: what makes a second push of it a no-op.
    pub raw_sha256: String,
    /// The size of the compressed bytes after the header.
    pub compressed_bytes: u64,
    /// SHA-256 of the compressed bytes, checked on every fetch.
    pub compressed_sha256: String,
    /// The cluster's system identifier, from a segment's long page header (decimal, as
    /// `pg_controldata` prints it); `None` for history files.
    pub system_identifier: Option<String>,
}

/// The archive's identity document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArchiveIdentity {
    format_version: u32,
    system_identifier: String,
    first_segment: String,
    created_at: DateTime<Utc>,
}

/// How a push went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WalPushOutcome {
    /// The file was archived.
    Archived,
    /// The same file was already archived (a retry).
    AlreadyArchived,
}

/// What [`BackupRepository::wal_push`] did.
#[derive(Debug, Clone, Serialize)]
pub struct WalPushReport {
    /// The file's name.
    pub name: String,
    /// The object it is in.
    pub object: String,
    /// What happened.
    pub outcome: WalPushOutcome,
    /// The file's size.
    pub raw_bytes: u64,
    /// The object's size.
    pub stored_bytes: u64,
}

/// What [`BackupRepository::wal_fetch`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WalFetch {
    /// The file was checked and written to the destination.
    Restored {
        /// Its size.
        raw_bytes: u64,
    },
    /// The archive has no such file.
    Missing,
}

/// An archived WAL file, from a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchivedWal {
    /// The file's name.
    pub name: String,
    /// Its kind.
    pub kind: WalFileKind,
    /// The object's size.
    pub stored_bytes: u64,
    /// When it was archived (the store's clock).
    pub archived_at: DateTime<Utc>,
}

/// The key of the archived file `name`.
pub(crate) fn wal_key(name: &str) -> String {
    format!("{WAL_DIR}/{name}{SUFFIX}")
}

fn invalid_name(name: &str) -> Error {
    Error::InvalidConfig(format!(
        "`{name}` is not the name of a file PostgreSQL archives (a WAL segment, .partial, \
         .history or .backup file)"
    ))
}

/// The system identifier in a segment's first page (its long page header: `xlp_magic`,
/// `xlp_info`, `xlp_tli`, `xlp_pageaddr`, `xlp_rem_len`, padding, then `xlp_sysid` at byte
/// 24), when the page says it has a long header. Little-endian: the byte order of the
/// platforms this crate runs on, which archive their own WAL.
fn system_identifier(segment: &[u8]) -> Option<u64> {
    const XLP_LONG_HEADER: u16 = 0x0002;
    let info = u16::from_le_bytes(segment.get(2..4)?.try_into().ok()?);
    if info & XLP_LONG_HEADER == 0 {
        return None;
    }
    Some(u64::from_le_bytes(segment.get(24..32)?.try_into().ok()?))
}

/// Builds the object of a WAL file.
fn encode(name: &str, raw: &[u8]) -> Result<(ArchivedWalHeader, Vec<u8>)> {
    let mut compressor = zstd::bulk::Compressor::new(WAL_ZSTD_LEVEL)
        .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
    compressor
        .include_checksum(true)
        .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
    let compressed = compressor
        .compress(raw)
        .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
    let system_identifier = match WalFileKind::of(name) {
        Some(WalFileKind::Segment | WalFileKind::Partial) => {
            system_identifier(raw).map(|id| id.to_string())
        }
        _ => None,
    };
    let header = ArchivedWalHeader {
        format_version: WAL_FORMAT,
        name: name.to_owned(),
        raw_bytes: raw.len() as u64,
        raw_sha256: hex::encode(Sha256::digest(raw)),
        compressed_bytes: compressed.len() as u64,
        compressed_sha256: hex::encode(Sha256::digest(&compressed)),
        system_identifier,
    };
    let json = sealed::seal(&header).map_err(Error::Internal)?;
    let size = u32::try_from(json.len())
        .map_err(|_| Error::Internal("WAL header too large".to_owned()))?;
    let mut object = Vec::with_capacity(8 + json.len() + compressed.len());
    object.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    object.extend_from_slice(&size.to_le_bytes());
    object.extend_from_slice(&json);
    object.extend_from_slice(&compressed);
    Ok((header, object))
}

/// Reads the header of an archived file, checking its seal.
fn split(object: &[u8]) -> Result<(ArchivedWalHeader, &[u8]), String> {
    let word = |at: usize| {
        object
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    if word(0) != Some(SKIPPABLE_MAGIC) {
        return Err("not an archived WAL file (no header frame)".to_owned());
    }
    let size = word(4).ok_or("truncated")? as usize;
    let json = object
        .get(8..8 + size)
        .ok_or_else(|| "truncated header".to_owned())?;
    let header: ArchivedWalHeader = sealed::open(json)?;
    if header.format_version > WAL_FORMAT {
        return Err(format!(
            "format {} is newer than the {WAL_FORMAT} this tool reads; upgrade it",
            header.format_version
        ));
    }
    Ok((header, &object[8 + size..]))
}

/// Reads a whole archived file back, every checksum checked; `name` is the file it must be.
fn decode(name: &str, object: &[u8]) -> Result<Vec<u8>, String> {
    let (header, compressed) = split(object)?;
    if header.name != name {
        return Err(format!("it holds {}, not {name}", header.name));
    }
    if compressed.len() as u64 != header.compressed_bytes {
        return Err(format!(
            "its data is {} bytes, its header says {}",
            compressed.len(),
            header.compressed_bytes
        ));
    }
    let actual = hex::encode(Sha256::digest(compressed));
    if actual != header.compressed_sha256 {
        return Err(format!(
            "checksum mismatch: its data's SHA-256 is {actual}, its header says {}",
            header.compressed_sha256
        ));
    }
    let capacity = usize::try_from(header.raw_bytes).map_err(|e| e.to_string())?;
    let raw = zstd::bulk::decompress(compressed, capacity)
        .map_err(|e| format!("does not decompress: {e}"))?;
    if raw.len() as u64 != header.raw_bytes
        || hex::encode(Sha256::digest(&raw)) != header.raw_sha256
    {
        return Err("it decompresses to other bytes than were archived".to_owned());
    }
    Ok(raw)
}

impl BackupRepository {
    /// Archives the WAL file at `path` (what `archive_command` gives as `%p`): compressed,
    /// checksummed, written once. Succeeds only once the object is durable.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the file's name is not one PostgreSQL archives;
    /// [`Error::ObjectExists`] when another file of that name is archived;
    /// [`Error::ForeignDatabase`] for a segment of another cluster than the archive's;
    /// [`Error::Io`] when the file cannot be read; the store's errors.
    pub async fn wal_push(&self, path: &Path) -> Result<WalPushReport> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| invalid_name(&path.display().to_string()))?
            .to_owned();
        let kind = WalFileKind::of(&name).ok_or_else(|| invalid_name(&name))?;
        let file = path.to_path_buf();
        let task_name = name.clone();
        let (header, object) = tokio::task::spawn_blocking(move || {
            let raw = std::fs::read(&file).map_err(io_err("read", &file))?;
            encode(&task_name, &raw)
        })
        .await
        .map_err(|e| Error::Internal(format!("a compression worker failed: {e}")))??;
        if kind == WalFileKind::Segment
            && let Some(id) = &header.system_identifier
        {
            self.check_cluster(id, &name).await?;
        }
        let key = wal_key(&name);
        let stored_bytes = object.len() as u64;
        let outcome = match self.store.put_once(&key, object).await {
            Ok(Put::Created) => WalPushOutcome::Archived,
            Ok(Put::AlreadyThere) => WalPushOutcome::AlreadyArchived,
            Err(Error::ObjectExists { object }) => {
                // The same file compressed by another build may differ in its bytes: compare
                // what was archived.
                let existing = self.store.get(&key).await?.unwrap_or_default();
                match split(&existing) {
                    Ok((archived, _))
                        if archived.raw_sha256 == header.raw_sha256
                            && archived.raw_bytes == header.raw_bytes =>
                    {
                        WalPushOutcome::AlreadyArchived
                    }
                    _ => return Err(Error::ObjectExists { object }),
                }
            }
            Err(e) => return Err(e),
        };
        tracing::debug!(wal = %name, ?outcome, "archived");
        Ok(WalPushReport {
            object: self.store.describe(&key),
            name,
            outcome,
            raw_bytes: header.raw_bytes,
            stored_bytes,
        })
    }

    /// Records the archive's cluster on the first push, and refuses segments of another one.
    async fn check_cluster(&self, system_identifier: &str, segment: &str) -> Result<()> {
        let foreign = |holds: &str| Error::ForeignDatabase {
            repository: self.location.to_string(),
            holds: format!("the WAL of PostgreSQL cluster {holds}"),
            given: format!("cluster {system_identifier} (segment {segment})"),
        };
        for _ in 0..2 {
            if let Some(bytes) = self.store.get(CLUSTER_KEY).await? {
                let identity: ArchiveIdentity =
                    sealed::open(&bytes).map_err(|reason| Error::InvalidManifest {
                        object: self.store.describe(CLUSTER_KEY),
                        reason,
                    })?;
                return if identity.system_identifier == system_identifier {
                    Ok(())
                } else {
                    Err(foreign(&identity.system_identifier))
                };
            }
            let identity = ArchiveIdentity {
                format_version: WAL_FORMAT,
                system_identifier: system_identifier.to_owned(),
                first_segment: segment.to_owned(),
                created_at: Utc::now(),
            };
            let bytes = sealed::seal(&identity).map_err(Error::Internal)?;
            match self.store.put_once(CLUSTER_KEY, bytes).await {
                Ok(_) => return Ok(()),
                // A concurrent first push wrote it: read theirs.
                Err(Error::ObjectExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Internal(format!(
            "{} changed while it was being read",
            self.store.describe(CLUSTER_KEY)
        )))
    }

    /// The system identifier of the cluster whose WAL the archive holds, once a segment was
    /// archived.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidManifest`] when the identity document is damaged; the store's errors.
    pub async fn wal_cluster(&self) -> Result<Option<String>> {
        let Some(bytes) = self.store.get(CLUSTER_KEY).await? else {
            return Ok(None);
        };
        let identity: ArchiveIdentity =
            sealed::open(&bytes).map_err(|reason| Error::InvalidManifest {
                object: self.store.describe(CLUSTER_KEY),
                reason,
            })?;
        Ok(Some(identity.system_identifier))
    }

    /// Fetches the archived WAL file `name` (what `restore_command` gives as `%f`) into `dest`
    /// (`%p`), after checking it; `dest` appears whole (written beside it, then renamed).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `name` is not one PostgreSQL archives; [`Error::Corrupt`]
    /// when the archived file is damaged (nothing is written); [`Error::Io`] when `dest`
    /// cannot be written; the store's errors.
    pub async fn wal_fetch(&self, name: &str, dest: &Path) -> Result<WalFetch> {
        WalFileKind::of(name).ok_or_else(|| invalid_name(name))?;
        let key = wal_key(name);
        let Some(object) = self.store.get(&key).await? else {
            return Ok(WalFetch::Missing);
        };
        let describe = self.store.describe(&key);
        let name = name.to_owned();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let raw = decode(&name, &object).map_err(|reason| Error::Corrupt {
                object: describe,
                reason,
            })?;
            let mut temp_name = dest.as_os_str().to_owned();
            temp_name.push(format!(".hotel-{}.tmp", std::process::id()));
            let temp = std::path::PathBuf::from(temp_name);
            let written = std::fs::write(&temp, &raw)
                .map_err(io_err("write", &temp))
                .and_then(|()| std::fs::rename(&temp, &dest).map_err(io_err("rename", &temp)));
            if written.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            written.map(|()| WalFetch::Restored {
                raw_bytes: raw.len() as u64,
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("a decompression worker failed: {e}")))?
    }

    /// The archived file `name`, checked, in memory (a history or backup history file).
    pub(crate) async fn archived_wal_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let key = wal_key(name);
        let Some(object) = self.store.get(&key).await? else {
            return Ok(None);
        };
        decode(name, &object)
            .map(Some)
            .map_err(|reason| Error::Corrupt {
                object: self.store.describe(&key),
                reason,
            })
    }

    /// The archived WAL files, sorted by name (for segments of one timeline: in WAL order).
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn archived_wal(&self) -> Result<Vec<ArchivedWal>> {
        let listing = self.store.list_dir(WAL_DIR).await?;
        Ok(listing
            .objects
            .into_iter()
            .filter_map(|object| {
                let name = object.name().strip_suffix(SUFFIX)?.to_owned();
                let kind = WalFileKind::of(&name)?;
                Some(ArchivedWal {
                    name,
                    kind,
                    stored_bytes: object.size,
                    archived_at: object.modified,
                })
            })
            .collect())
    }

    /// Reads and checks the archived file `name`, without writing it anywhere: what a
    /// verification of the archive does.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when it is damaged or missing; the store's errors.
    pub async fn check_archived_wal(&self, name: &str) -> Result<ArchivedWalHeader> {
        let key = wal_key(name);
        let describe = self.store.describe(&key);
        let Some(object) = self.store.get(&key).await? else {
            return Err(Error::Corrupt {
                object: describe,
                reason: "missing from the archive".to_owned(),
            });
        };
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            decode(&name, &object)
                .and_then(|_| split(&object).map(|(header, _)| header))
                .map_err(|reason| Error::Corrupt {
                    object: describe,
                    reason,
                })
        })
        .await
        .map_err(|e| Error::Internal(format!("a decompression worker failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment-sized buffer with a long page header of cluster `sysid`.
    fn segment(sysid: u64, fill: u8) -> Vec<u8> {
        let mut raw = vec![fill; 1 << 20];
        raw[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        raw[2..4].copy_from_slice(&0x0002u16.to_le_bytes());
        raw[24..32].copy_from_slice(&sysid.to_le_bytes());
        raw
    }

    #[test]
    fn only_names_postgres_archives_are_accepted() {
        for (name, kind) in [
            ("000000010000000000000001", WalFileKind::Segment),
            ("0000000200000000000000FF.partial", WalFileKind::Partial),
            ("00000002.history", WalFileKind::History),
            (
                "000000010000000000000002.00000028.backup",
                WalFileKind::BackupHistory,
            ),
        ] {
            assert_eq!(WalFileKind::of(name), Some(kind), "{name}");
        }
        for bad in [
            "",
            "00000001000000000000000",
            "00000001000000000000000g",
            "000000010000000000000001.zst",
            "../000000010000000000000001",
            "RECOVERYXLOG",
            "0000000a0000000000000001",
            "1.history",
        ] {
            assert_eq!(WalFileKind::of(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_archived_file_round_trips_and_any_damage_is_caught() {
        let raw = segment(7_301_234_567_890_123_456, 3);
        let (header, object) = encode("000000010000000000000001", &raw).unwrap();
        assert_eq!(
            header.system_identifier.as_deref(),
            Some("7301234567890123456")
        );
        assert!(object.len() < raw.len() / 10);
        assert_eq!(decode("000000010000000000000001", &object).unwrap(), raw);
        // zstd itself skips the header.
        assert_eq!(zstd::stream::decode_all(object.as_slice()).unwrap(), raw);
        assert!(decode("000000010000000000000002", &object).is_err());
        for at in [10, object.len() / 2, object.len() - 2] {
            let mut damaged = object.clone();
            damaged[at] ^= 0x10;
            assert!(
                decode("000000010000000000000001", &damaged).is_err(),
                "byte {at}"
            );
        }
    }

    async fn push(
        repo: &BackupRepository,
        dir: &Path,
        name: &str,
        raw: &[u8],
    ) -> Result<WalPushReport> {
        let path = dir.join(name);
        std::fs::write(&path, raw).unwrap();
        repo.wal_push(&path).await
    }

    #[tokio::test]
    async fn push_is_idempotent_refuses_other_content_and_fetch_checks() {
        let dir = tempfile::tempdir().unwrap();
        let pg_wal = dir.path().join("pg_wal");
        std::fs::create_dir(&pg_wal).unwrap();
        let repo = BackupRepository::open(dir.path().join("repo")).unwrap();
        let name = "000000010000000000000001";
        let raw = segment(42, 1);

        let first = push(&repo, &pg_wal, name, &raw).await.unwrap();
        assert_eq!(first.outcome, WalPushOutcome::Archived);
        let again = push(&repo, &pg_wal, name, &raw).await.unwrap();
        assert_eq!(again.outcome, WalPushOutcome::AlreadyArchived);
        let err = push(&repo, &pg_wal, name, &segment(42, 2))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ObjectExists { .. }), "{err}");
        let err = push(&repo, &pg_wal, "000000010000000000000002", &segment(43, 1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ForeignDatabase { .. }), "{err}");
        assert_eq!(repo.wal_cluster().await.unwrap().as_deref(), Some("42"));

        let dest = dir.path().join("RECOVERYXLOG");
        assert_eq!(
            repo.wal_fetch(name, &dest).await.unwrap(),
            WalFetch::Restored {
                raw_bytes: raw.len() as u64
            }
        );
        assert_eq!(std::fs::read(&dest).unwrap(), raw);
        assert_eq!(
            repo.wal_fetch("000000010000000000000009", &dest)
                .await
                .unwrap(),
            WalFetch::Missing
        );
        let listed = repo.archived_wal().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, name);

        // Damage the archived object: fetch refuses and leaves the destination alone.
        let object = dir.path().join("repo").join(wal_key(name));
        let mut bytes = std::fs::read(&object).unwrap();
        let middle = bytes.len() - 100;
        bytes[middle] ^= 0x01;
        std::fs::write(&object, &bytes).unwrap();
        let fresh = dir.path().join("FRESH");
        let err = repo.wal_fetch(name, &fresh).await.unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(!fresh.exists());
        assert!(repo.check_archived_wal(name).await.is_err());
    }

    #[tokio::test]
    async fn concurrent_pushes_of_one_segment_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = BackupRepository::open(dir.path().join("repo")).unwrap();
        let name = "000000010000000000000003";
        let path = dir.path().join(name);
        std::fs::write(&path, segment(5, 9)).unwrap();
        let pushes: Vec<_> = (0..8)
            .map(|_| {
                let repo = repo.clone();
                let path = path.clone();
                tokio::spawn(async move { repo.wal_push(&path).await })
            })
            .collect();
        let mut archived = 0;
        for push in pushes {
            if push.await.unwrap().unwrap().outcome == WalPushOutcome::Archived {
                archived += 1;
            }
        }
        assert_eq!(archived, 1);
    }
}
