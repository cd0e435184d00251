//! Rows read by column position, whichever driver returned them.
//!
//! A read helper decodes its rows with one [`Decode`] implementation, whether they came through
//! sea-orm (PostgreSQL rows, from sea-orm's pool or the crate's own connections, are sea-orm
//! rows) or straight from SQLite's C API (the `executor` module): the same statement gives the
//! same values either way. Columns are read by position,
//! never by name, which is what decoding costs least on every driver.

use chrono::{DateTime, NaiveDate, Utc};
use entity::{BookingStatus, PaymentStatus};
use sea_orm::QueryResult;

use crate::Result;

/// A row whose columns can be read by position.
pub(crate) trait Row {
    /// Column `index` (from 0) as a `T`.
    fn get<T: Column>(&self, index: usize) -> Result<T>;
}

/// A value type that every driver's rows can hold.
pub(crate) trait Column: Sized {
    /// From a sea-orm row.
    fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self>;
    /// From a row of SQLite's C API.
    #[cfg(feature = "sqlite")]
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self>;
}

/// A result type decoded from one row.
pub(crate) trait Decode: Sized {
    fn decode(row: &impl Row) -> Result<Self>;
}

// The other drivers' decoding errors (sea-orm reports its own).
#[cfg(feature = "sqlite")]
pub(crate) fn type_error(message: impl Into<String>) -> crate::Error {
    crate::Error::Database(sea_orm::DbErr::Type(message.into()))
}

impl Row for QueryResult {
    fn get<T: Column>(&self, index: usize) -> Result<T> {
        T::from_sea_orm(self, index)
    }
}

#[cfg(feature = "sqlite")]
impl Row for rusqlite::Row<'_> {
    fn get<T: Column>(&self, index: usize) -> Result<T> {
        let value = self
            .get_ref(index)
            .map_err(|err| type_error(format!("column {index}: {err}")))?;
        T::from_sqlite(value)
    }
}

fn sea_orm_get<T: sea_orm::TryGetable>(row: &QueryResult, index: usize) -> Result<T> {
    Ok(row.try_get_by_index(index)?)
}

#[cfg(feature = "sqlite")]
fn sqlite_text<'a>(value: rusqlite::types::ValueRef<'a>) -> Result<&'a str> {
    value
        .as_str()
        .map_err(|err| type_error(format!("expected text: {err}")))
}

#[cfg(feature = "sqlite")]
fn sqlite_integer(value: rusqlite::types::ValueRef<'_>) -> Result<i64> {
    value
        .as_i64()
        .map_err(|err| type_error(format!("expected an integer: {err}")))
}

impl Column for i64 {
    fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self> {
        sea_orm_get(row, index)
    }
    #[cfg(feature = "sqlite")]
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self> {
        sqlite_integer(value)
    }
}

impl Column for i32 {
    fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self> {
        sea_orm_get(row, index)
    }
    #[cfg(feature = "sqlite")]
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self> {
        let wide = sqlite_integer(value)?;
        i32::try_from(wide).map_err(|_| type_error(format!("{wide} does not fit a 32-bit column")))
    }
}

impl Column for bool {
    fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self> {
        sea_orm_get(row, index)
    }
    #[cfg(feature = "sqlite")]
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self> {
        Ok(sqlite_integer(value)? != 0)
    }
}

impl Column for String {
    fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self> {
        sea_orm_get(row, index)
    }
    #[cfg(feature = "sqlite")]
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self> {
        sqlite_text(value).map(str::to_owned)
    }
}

impl Column for NaiveDate {
    fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self> {
        sea_orm_get(row, index)
    }
    /// SQLite holds dates as `YYYY-MM-DD` text (sqlx writes them so).
    #[cfg(feature = "sqlite")]
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self> {
        let text = sqlite_text(value)?;
        text.parse()
            .map_err(|err| type_error(format!("invalid date {text:?}: {err}")))
    }
}

impl Column for DateTime<Utc> {
    fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self> {
        sea_orm_get(row, index)
    }
    #[cfg(feature = "sqlite")]
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self> {
        let text = sqlite_text(value)?;
        sqlite_timestamp(text).ok_or_else(|| type_error(format!("invalid timestamp {text:?}")))
    }
}

/// A timestamp as sqlx reads SQLite text: RFC 3339 (what sqlx writes), then SQLite's own
/// formats, a missing offset meaning UTC.
#[cfg(feature = "sqlite")]
fn sqlite_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    const FORMATS: [&str; 12] = [
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    FORMATS.iter().find_map(|format| {
        DateTime::parse_from_str(text, format)
            .map(|at| at.with_timezone(&Utc))
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, format).map(|at| at.and_utc()))
            .ok()
    })
}

/// The enumerations stored as their string values.
macro_rules! string_enum_column {
    ($type:ty) => {
        impl Column for $type {
            fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self> {
                sea_orm_get(row, index)
            }
            #[cfg(feature = "sqlite")]
            fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self> {
                enum_from_str(sqlite_text(value)?)
            }
        }
    };
}

string_enum_column!(BookingStatus);
string_enum_column!(PaymentStatus);

#[cfg(feature = "sqlite")]
fn enum_from_str<T: sea_orm::ActiveEnum<Value = String>>(text: &str) -> Result<T> {
    T::try_from_value(&text.to_owned()).map_err(crate::Error::Database)
}

impl<T: Column> Column for Option<T>
where
    Option<T>: sea_orm::TryGetable,
{
    fn from_sea_orm(row: &QueryResult, index: usize) -> Result<Self> {
        sea_orm_get(row, index)
    }
    #[cfg(feature = "sqlite")]
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self> {
        match value {
            rusqlite::types::ValueRef::Null => Ok(None),
            value => T::from_sqlite(value).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_timestamps_parse_as_sqlx_reads_them() {
        use super::sqlite_timestamp;
        let at = |s| sqlite_timestamp(s).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-11-25T10:11:12.345678+00:00").as_deref(),
            Some("2026-11-25T10:11:12.345678+00:00")
        );
        assert_eq!(
            at("2026-11-25T12:11:12+02:00").as_deref(),
            Some("2026-11-25T10:11:12+00:00")
        );
        assert_eq!(
            at("2026-11-25 10:11:12.5").as_deref(),
            Some("2026-11-25T10:11:12.500+00:00")
        );
        assert_eq!(at("not a time"), None);
    }
}
