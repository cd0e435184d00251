use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The id of a backup: its UTC creation second, `20261125T103000Z`, with `-2`, `-3`… added
/// when several backups are taken in the same second.
///
/// Ids sort in creation order, name the backup's files (`<id>.json` and its data file) and are
/// all an operator types. Parsing accepts nothing else, so an id can never smuggle a path.
///
/// # Examples
///
/// ```
/// use backup::BackupId;
/// let id: BackupId = "20261125T103000Z".parse().unwrap();
/// assert_eq!(id.as_str(), "20261125T103000Z");
/// assert!(BackupId::parse("../etc/passwd").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

const STAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";

impl BackupId {
    /// Parses an id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] for anything but `YYYYMMDDTHHMMSSZ` with an optional `-N` (N ≥ 2).
    pub fn parse(id: &str) -> Result<Self> {
        let invalid = || Error::InvalidId { id: id.to_owned() };
        let (stamp, suffix) = match id.split_once('-') {
            Some((stamp, suffix)) => (stamp, Some(suffix)),
            None => (id, None),
        };
        if stamp.len() != 16 || chrono::NaiveDateTime::parse_from_str(stamp, STAMP_FORMAT).is_err()
        {
            return Err(invalid());
        }
        if let Some(suffix) = suffix {
            let valid = !suffix.is_empty()
                && suffix.len() <= 4
                && suffix.bytes().all(|b| b.is_ascii_digit())
                && !suffix.starts_with('0')
                && suffix != "1";
            if !valid {
                return Err(invalid());
            }
        }
        Ok(Self(id.to_owned()))
    }

    /// The id for a backup created at `at`, the `n`th of that second (1 = no suffix).
    pub(crate) fn for_time(at: DateTime<Utc>, n: u32) -> Self {
        let stamp = at.format(STAMP_FORMAT).to_string();
        if n <= 1 {
            Self(stamp)
        } else {
            Self(format!("{stamp}-{n}"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BackupId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for BackupId {
    type Error = Error;

    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ids_round_trip_and_reject_anything_else() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 30, 0).unwrap();
        assert_eq!(BackupId::for_time(at, 1).as_str(), "20261125T103000Z");
        assert_eq!(BackupId::for_time(at, 3).as_str(), "20261125T103000Z-3");
        for good in [
            "20261125T103000Z",
            "20261125T103000Z-2",
            "20261125T103000Z-9999",
        ] {
            assert_eq!(BackupId::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "latest",
            "20261125T103000",
            "20261325T103000Z",
            "20261125T103000Z-",
            "20261125T103000Z-1",
            "20261125T103000Z-02",
            "20261125T103000Z-x",
            "20261125T103000Z/../x",
            "../20261125T103000Z",
        ] {
            assert!(BackupId::parse(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn ids_sort_by_creation() {
        let mut ids: Vec<BackupId> = ["20261125T103001Z", "20261125T103000Z-2", "20261125T103000Z"]
            .iter()
            .map(|s| BackupId::parse(s).unwrap())
            .collect();
        ids.sort();
        let sorted: Vec<&str> = ids.iter().map(BackupId::as_str).collect();
        assert_eq!(
            sorted,
            ["20261125T103000Z", "20261125T103000Z-2", "20261125T103001Z"]
        );
    }
}
