//! The manifest: the sealed JSON document that makes a data object a backup.

use std::{collections::BTreeMap, fmt};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{BackupId, Error, Result, VerifyFailure, sealed};

/// The manifest format this build writes, and the newest it reads. Version 2 manifests are
/// sealed (see the crate docs) and never rewritten; version 1 manifests, written before seals,
/// are read as they are (their data is still checked against their SHA-256).
pub const FORMAT_VERSION: u32 = 2;

/// What a manifest's key ends with: `<id>.json`.
pub(crate) const MANIFEST_SUFFIX: &str = ".json";

/// What data objects' keys end with.
pub(crate) const DATA_SUFFIXES: [&str; 2] = [".sqlite.zst", ".pgdump.zst"];

/// The key of backup `id`'s manifest.
pub(crate) fn manifest_key(id: &BackupId) -> String {
    format!("{id}{MANIFEST_SUFFIX}")
}

/// Everything known about one backup, stored as `<id>.json` beside its data object.
///
/// The manifest is written last, after the data is safely stored: data without a valid
/// manifest is not a backup. It is written once; verifications are recorded beside it
/// (`verifications/<id>/…`) and the newest one is shown in [`BackupManifest::verification`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackupManifest {
    /// The manifest format; a reader refuses versions newer than [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The backup's id, equal to the manifest's name without `.json`.
    pub id: BackupId,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// What kind of database was backed up.
    pub database: DatabaseKind,
    /// Where it came from: the SQLite path or the PostgreSQL URL without password.
    pub source: String,
    /// The data object's key in the repository.
    pub file: String,
    /// How the snapshot was taken.
    pub snapshot_method: SnapshotMethod,
    /// The compression of the data object.
    pub compression: Compression,
    /// The size of the snapshot before compression (the SQLite file, or pg_dump's output).
    pub raw_bytes: u64,
    /// The size of the data object.
    pub compressed_bytes: u64,
    /// SHA-256 of the data object, lowercase hex.
    pub sha256: String,
    /// The number of rows of every table in the snapshot.
    pub tables: BTreeMap<String, u64>,
    /// The newest applied schema migration at the time of the snapshot, if the database
    /// records migrations.
    pub migration_version: Option<String>,
    /// The program that wrote the backup, e.g. `backup 0.1.0`.
    pub tool_version: String,
    /// Why the backup was taken.
    pub reason: Reason,
    /// How long taking it took, in milliseconds.
    pub duration_ms: u64,
    /// The latest verification, if any (read from its record; never stored in the manifest).
    pub verification: Option<Verification>,
    /// For a snapshot taken by continuous replication: where it sits in its generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicaPoint>,
}

/// Where a snapshot of a replicated database sits in its generation: the segments after
/// `seq` carry it forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPoint {
    /// The generation.
    pub generation: String,
    /// The last segment it includes (0: the generation's base, before any segment).
    pub seq: u64,
    /// The point of the write-ahead log it was taken at.
    pub position: crate::WalPosition,
    /// When the log was read up to that point: every transaction in the snapshot had been
    /// seen committed by then, every later one was seen after.
    pub as_of: DateTime<Utc>,
}

impl BackupManifest {
    /// Whether the latest verification passed.
    pub fn is_verified(&self) -> bool {
        self.verification.as_ref().is_some_and(|v| v.ok)
    }

    /// Whether the latest verification failed.
    pub fn failed_verification(&self) -> bool {
        self.verification.as_ref().is_some_and(|v| !v.ok)
    }

    /// The total number of rows over all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.values().sum()
    }

    /// Reads and checks the manifest stored under `key` (`object` names it in errors).
    pub(crate) fn parse(object: &str, key: &str, bytes: &[u8]) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidManifest {
            object: object.to_owned(),
            reason,
        };
        // The version is checked before the rest, so a newer format is reported as such
        // instead of as a missing seal or an unknown field.
        let loose: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let version = loose
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| invalid("no format_version".to_owned()))?;
        if version > u64::from(FORMAT_VERSION) {
            return Err(Error::UnsupportedFormat {
                object: object.to_owned(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let value = match sealed::open_value(bytes) {
            Ok(value) => value,
            Err(sealed::Broken::Unsealed) if version == 1 => loose,
            Err(broken) => return Err(invalid(broken.to_string())),
        };
        let mut manifest: Self =
            serde_json::from_value(value).map_err(|e| invalid(format!("bad field: {e}")))?;
        if version >= 2 {
            // Verifications are records of their own; a stored one would be a forgery.
            manifest.verification = None;
        }
        let expected_key = manifest_key(&manifest.id);
        if key.rsplit('/').next() != Some(expected_key.as_str()) {
            return Err(invalid(format!(
                "its id {} does not match its name",
                manifest.id
            )));
        }
        if manifest.file != data_file_name(&manifest.id, manifest.database) {
            return Err(invalid(format!(
                "unexpected data object name `{}`",
                manifest.file
            )));
        }
        if manifest.sha256.len() != 64 || !manifest.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("sha256 is not 64 hex digits".to_owned()));
        }
        Ok(manifest)
    }

    /// The sealed bytes of the manifest as stored (without verification).
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut stored = self.clone();
        stored.verification = None;
        sealed::seal(&stored).map_err(|e| {
            Error::Internal(format!("cannot serialise the manifest of {}: {e}", self.id))
        })
    }
}

/// The data file name of a backup: `<id>.sqlite.zst` or `<id>.pgdump.zst`.
pub(crate) fn data_file_name(id: &BackupId, kind: DatabaseKind) -> String {
    match kind {
        DatabaseKind::Sqlite => format!("{id}.sqlite.zst"),
        DatabaseKind::Postgres => format!("{id}.pgdump.zst"),
    }
}

/// The kinds of database this crate backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// Why a backup was taken. Retention treats pre-migration backups specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Asked for by an operator.
    Manual,
    /// Taken (and verified) before applying schema migrations.
    PreMigration,
    /// Taken by the scheduler.
    Scheduled,
    /// The safety copy of a database taken just before a restore replaced it.
    PreRestore,
    /// A snapshot taken by continuous replication (the base of a generation, or a periodic
    /// one that shortens restores).
    Replication,
}

impl Reason {
    /// The name used in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::PreMigration => "pre-migration",
            Self::Scheduled => "scheduled",
            Self::PreRestore => "pre-restore",
            Self::Replication => "replication",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Reason {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "manual" => Ok(Self::Manual),
            "pre-migration" => Ok(Self::PreMigration),
            "scheduled" => Ok(Self::Scheduled),
            "pre-restore" => Ok(Self::PreRestore),
            "replication" => Ok(Self::Replication),
            other => Err(Error::InvalidConfig(format!(
                "unknown reason `{other}`: expected manual, pre-migration, scheduled, \
                 pre-restore or replication"
            ))),
        }
    }
}

/// How a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotMethod {
    /// The SQLite file's pages, read inside one read transaction and compressed as they are
    /// read: a page-for-page copy of the database as of that transaction.
    SqlitePageStream,
    /// `VACUUM INTO` a temporary file, then compressed: a compacted copy.
    SqliteVacuumInto,
    /// `pg_dump --format=custom`, taken in the snapshot the row counts were read in.
    PgDumpCustom,
}

/// The compression of a data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// Always `zstd` in format version 1.
    pub algorithm: String,
    /// The zstd level.
    pub level: i32,
}

/// The outcome of one verification, recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// When it finished.
    pub verified_at: DateTime<Utc>,
    /// Whether every check passed.
    pub ok: bool,
    /// How thorough it was.
    pub depth: VerifyDepth,
    /// What failed, when `ok` is false.
    pub failure: Option<VerifyFailure>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// How thoroughly a SQLite backup is checked once restored into a scratch file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyDepth {
    /// `PRAGMA integrity_check`: every page, every record, and every index against its table.
    #[default]
    Full,
    /// `PRAGMA quick_check`: every page and record, but indexes are not compared with their
    /// tables. Several times faster on large databases.
    Quick,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(id: &str) -> BackupManifest {
        let id = BackupId::parse(id).unwrap();
        BackupManifest {
            format_version: FORMAT_VERSION,
            file: data_file_name(&id, DatabaseKind::Sqlite),
            id,
            created_at: Utc::now(),
            database: DatabaseKind::Sqlite,
            source: "data/app.sqlite".to_owned(),
            snapshot_method: SnapshotMethod::SqlitePageStream,
            compression: Compression {
                algorithm: "zstd".to_owned(),
                level: 3,
            },
            raw_bytes: 4096,
            compressed_bytes: 100,
            sha256: "ab".repeat(32),
            tables: BTreeMap::from([("t".to_owned(), 3)]),
            migration_version: Some("m1".to_owned()),
            tool_version: "backup 0.1.0".to_owned(),
            reason: Reason::Manual,
            duration_ms: 5,
            verification: None,
            replication: None,
        }
    }

    #[test]
    fn manifest_round_trips_and_checks_its_name() {
        let manifest = sample("20261125T103000Z");
        let bytes = manifest.to_bytes().unwrap();
        assert_eq!(
            BackupManifest::parse("m", "20261125T103000Z.json", &bytes).unwrap(),
            manifest
        );
        assert!(matches!(
            BackupManifest::parse("m", "20261125T103001Z.json", &bytes),
            Err(Error::InvalidManifest { .. })
        ));
        // A sealed manifest whose content changed: refused.
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace("\"t\": 3", "\"t\": 4");
        let err = BackupManifest::parse("m", "20261125T103000Z.json", text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("does not match its seal"), "{err}");
    }

    #[test]
    fn newer_format_versions_are_refused_as_such() {
        let mut value = serde_json::to_value(sample("20261125T103000Z")).unwrap();
        value["format_version"] = 3.into();
        value["something_new"] = "x".into();
        let err = BackupManifest::parse(
            "m",
            "20261125T103000Z.json",
            &serde_json::to_vec(&value).unwrap(),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedFormat { found: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn only_format_1_may_be_unsealed() {
        let mut manifest = sample("20261125T103000Z");
        manifest.format_version = 1;
        let v1 = serde_json::to_vec(&manifest).unwrap();
        assert_eq!(
            BackupManifest::parse("m", "20261125T103000Z.json", &v1).unwrap(),
            manifest
        );
        manifest.format_version = 2;
        let v2 = serde_json::to_vec(&manifest).unwrap();
        assert!(BackupManifest::parse("m", "20261125T103000Z.json", &v2).is_err());
    }

    #[test]
    fn a_data_file_name_pointing_elsewhere_is_refused() {
        let mut manifest = sample("20261125T103000Z");
        manifest.file = "../../etc/shadow".to_owned();
        let text = manifest.to_bytes().unwrap();
        assert!(BackupManifest::parse("m", "20261125T103000Z.json", &text).is_err());
    }
}
