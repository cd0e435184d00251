//! Why a backup failed verification.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

/// Why a backup failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum VerifyFailure {
    /// The data file is gone.
    DataFileMissing,
    /// The data file's size is not the one recorded.
    SizeMismatch {
        /// Recorded size.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// The data file's SHA-256 is not the one recorded: it changed since it was written.
    ChecksumMismatch {
        /// Recorded hash.
        expected: String,
        /// Hash of the file on disk.
        actual: String,
    },
    /// The data file does not decompress.
    Corrupt {
        /// The decoder's error.
        detail: String,
    },
    /// The snapshot decompressed to a different size than recorded.
    RawSizeMismatch {
        /// Recorded size.
        expected: u64,
        /// Decompressed size.
        actual: u64,
    },
    /// `PRAGMA integrity_check` (or `quick_check`) reported problems.
    Integrity {
        /// Its first messages.
        messages: Vec<String>,
    },
    /// `PRAGMA foreign_key_check` found rows pointing at nothing.
    ForeignKeys {
        /// How many violations.
        violations: u64,
        /// The first few, as `table rowid → parent`.
        sample: Vec<String>,
    },
    /// The restored tables or their row counts differ from the manifest.
    RowCounts {
        /// Every difference.
        mismatches: Vec<RowCountMismatch>,
    },
    /// The restored schema's migration version differs from the manifest.
    MigrationVersion {
        /// Recorded version.
        expected: Option<String>,
        /// Restored version.
        actual: Option<String>,
    },
    /// The restore into the scratch database failed.
    RestoreFailed {
        /// What the restore tool said.
        detail: String,
    },
}

/// One table whose restored row count differs from the manifest (`None`: table absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCountMismatch {
    /// The table.
    pub table: String,
    /// Rows recorded in the manifest.
    pub expected: Option<u64>,
    /// Rows found after restoring.
    pub actual: Option<u64>,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataFileMissing => f.write_str("the data file is missing"),
            Self::SizeMismatch { expected, actual } => write!(
                f,
                "the data file has {actual} bytes, the manifest says {expected}"
            ),
            Self::ChecksumMismatch { expected, actual } => write!(
                f,
                "checksum mismatch: the data file's SHA-256 is {actual}, the manifest says {expected}"
            ),
            Self::Corrupt { detail } => write!(f, "the data file does not decompress: {detail}"),
            Self::RawSizeMismatch { expected, actual } => write!(
                f,
                "the snapshot decompressed to {actual} bytes, the manifest says {expected}"
            ),
            Self::Integrity { messages } => {
                write!(f, "integrity check failed: {}", messages.join("; "))
            }
            Self::ForeignKeys { violations, sample } => write!(
                f,
                "{violations} foreign key violation(s), e.g. {}",
                sample.join("; ")
            ),
            Self::RowCounts { mismatches } => {
                f.write_str("row counts differ from the manifest:")?;
                for m in mismatches {
                    let show = |n: Option<u64>| n.map_or("no table".to_owned(), |n| n.to_string());
                    write!(
                        f,
                        " {} (manifest {}, restored {})",
                        m.table,
                        show(m.expected),
                        show(m.actual)
                    )?;
                }
                Ok(())
            }
            Self::MigrationVersion { expected, actual } => write!(
                f,
                "migration version {} differs from the manifest's {}",
                actual.as_deref().unwrap_or("none"),
                expected.as_deref().unwrap_or("none")
            ),
            Self::RestoreFailed { detail } => write!(f, "restoring it failed: {detail}"),
        }
    }
}

/// Compares restored row counts with the manifest's.
pub(crate) fn compare_counts(
    expected: &BTreeMap<String, u64>,
    actual: &BTreeMap<String, u64>,
) -> Option<VerifyFailure> {
    let mut tables: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    tables.sort();
    tables.dedup();
    let mismatches: Vec<RowCountMismatch> = tables
        .into_iter()
        .filter_map(|table| {
            let (e, a) = (expected.get(table).copied(), actual.get(table).copied());
            (e != a).then(|| RowCountMismatch {
                table: table.clone(),
                expected: e,
                actual: a,
            })
        })
        .collect();
    (!mismatches.is_empty()).then_some(VerifyFailure::RowCounts { mismatches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_comparison_names_every_difference() {
        let expected = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
        let actual = BTreeMap::from([("a".to_owned(), 1), ("c".to_owned(), 0)]);
        let Some(VerifyFailure::RowCounts { mismatches }) = compare_counts(&expected, &actual)
        else {
            panic!("counts differ");
        };
        assert_eq!(mismatches.len(), 2);
        assert_eq!(mismatches[0].table, "b");
        assert_eq!(mismatches[1].actual, Some(0));
        assert!(compare_counts(&expected, &expected).is_none());
    }
}
