//! Validated inputs: a value of these types is known to be well formed.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The earliest date any helper accepts: 0001-01-01.
///
/// Dates are kept within `0001-01-01 ..= 9999-12-31` (the SQL standard's `DATE` range) because
/// that is where both backends store them and order them correctly: SQLite keeps a date as
/// `YYYY-MM-DD` text and compares it as text, so a year outside 0000–9999 (`-0001-…`,
/// `10000-…`) sorts wrongly and ranges across it silently match nothing; PostgreSQL rejects
/// dates before 4713 BC.
pub const EARLIEST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(date) => date,
    None => NaiveDate::MIN,
};
/// The latest date any helper accepts: 9999-12-31 (see [`EARLIEST_DATE`]).
pub const LATEST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(date) => date,
    None => NaiveDate::MAX,
};

/// Fails unless `date` lies within [`EARLIEST_DATE`] ..= [`LATEST_DATE`].
fn ensure_storable(date: NaiveDate) -> Result<NaiveDate> {
    if (EARLIEST_DATE..=LATEST_DATE).contains(&date) {
        Ok(date)
    } else {
        Err(Error::InvalidInput(format!(
            "the date {date} is outside {EARLIEST_DATE} to {LATEST_DATE}, the dates this service stores"
        )))
    }
}

/// `date` as chrono's `%F` (and `Display`) writes it, for years 0 to 9999 (every date the
/// helpers accept): a tenth of the time of the formatting machinery, which writes a date one
/// character at a time. Binds dates to SQLite and writes cache keys.
pub(crate) fn iso_date(date: chrono::NaiveDate) -> Option<[u8; 10]> {
    use chrono::Datelike;
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let digit = |n: u32| b'0' + (n % 10) as u8;
    let (month, day) = (date.month(), date.day());
    Some([
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(day / 10),
        digit(day),
    ])
}

/// A calendar date written strictly as `YYYY-MM-DD` within [`EARLIEST_DATE`] ..=
/// [`LATEST_DATE`]: what a client may send wherever a date is expected.
///
/// Parsing accepts exactly ten characters, four digits, `-`, two digits, `-`, two digits, that
/// name a real day: no sign, no missing zero (`2026-1-1`), no surrounding space, no time part.
/// Deserializing (JSON, query strings) parses the same way.
///
/// # Examples
///
/// ```
/// use optimized_queries::CalendarDate;
///
/// let date: CalendarDate = "2026-12-01".parse().unwrap();
/// assert_eq!(date.to_string(), "2026-12-01");
/// for bad in ["2026-1-1", " 2026-12-01", "2026-12-01 ", "+2026-12-01", "2026-02-30", "10000-01-01", "0000-12-31"] {
///     assert!(bad.parse::<CalendarDate>().is_err(), "{bad}");
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CalendarDate(NaiveDate);

impl CalendarDate {
    /// Parses a strict `YYYY-MM-DD` date within the accepted range.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] saying what is wrong with `text`.
    pub fn parse(text: &str) -> Result<Self> {
        let malformed = || {
            Error::InvalidInput(format!(
                "`{}` is not a date: write dates as YYYY-MM-DD, e.g. 2026-12-01",
                text.escape_debug()
            ))
        };
        let bytes = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = bytes.get(range)?;
            part.iter().try_fold(0_u32, |value, &b| {
                b.is_ascii_digit().then(|| value * 10 + u32::from(b - b'0'))
            })
        };
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(malformed());
        }
        let (year, month, day) = match (digits(0..4), digits(5..7), digits(8..10)) {
            (Some(year), Some(month), Some(day)) => (year, month, day),
            _ => return Err(malformed()),
        };
        let date = NaiveDate::from_ymd_opt(year as i32, month, day)
            .ok_or_else(|| Error::InvalidInput(format!("{text} is not a day of the calendar")))?;
        Self::new(date)
    }

    /// Accepts a date within [`EARLIEST_DATE`] ..= [`LATEST_DATE`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a date outside that range.
    pub fn new(date: NaiveDate) -> Result<Self> {
        ensure_storable(date).map(Self)
    }

    /// The date.
    pub fn get(self) -> NaiveDate {
        self.0
    }
}

impl std::str::FromStr for CalendarDate {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl std::fmt::Display for CalendarDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Within the accepted range chrono writes the year with exactly four digits.
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl From<CalendarDate> for NaiveDate {
    fn from(date: CalendarDate) -> NaiveDate {
        date.0
    }
}

impl TryFrom<NaiveDate> for CalendarDate {
    type Error = Error;
    fn try_from(date: NaiveDate) -> Result<Self> {
        Self::new(date)
    }
}

impl Serialize for CalendarDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CalendarDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CalendarDate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a date written as YYYY-MM-DD")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<CalendarDate, E> {
                CalendarDate::parse(text).map_err(|err| match err {
                    Error::InvalidInput(message) => E::custom(message),
                    other => E::custom(other),
                })
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The longest stay [`create_booking`](crate::create_booking) accepts, in nights.
pub const MAX_STAY_NIGHTS: i64 = 30;
/// The longest range the availability and inventory helpers accept, in nights.
pub const MAX_RANGE_NIGHTS: i64 = 731;
/// The most rooms one booking may hold.
pub const MAX_ROOMS_PER_BOOKING: i32 = 50;

/// A non-empty range of nights `[start, end)`: `end` is the check-out day. Both dates lie within
/// [`EARLIEST_DATE`] ..= [`LATEST_DATE`], so every helper that takes a range can hand it to
/// either database.
///
/// # Examples
///
/// ```
/// use chrono::NaiveDate;
/// use optimized_queries::DateRange;
///
/// let d = |day| NaiveDate::from_ymd_opt(2026, 12, day).unwrap();
/// let stay = DateRange::new(d(1), d(4)).unwrap();
/// assert_eq!(stay.nights(), 3);
/// assert!(DateRange::new(d(4), d(4)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawRange")]
pub struct DateRange {
    start: NaiveDate,
    end: NaiveDate,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRange {
    start: CalendarDate,
    end: CalendarDate,
}

impl TryFrom<RawRange> for DateRange {
    type Error = Error;
    fn try_from(raw: RawRange) -> Result<Self> {
        DateRange::new(raw.start, raw.end)
    }
}

impl DateRange {
    /// The nights from `start` up to, not including, `end`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a date outside [`EARLIEST_DATE`] ..= [`LATEST_DATE`];
    /// [`Error::InvalidRange`] unless `start < end`.
    pub fn new(start: impl Into<NaiveDate>, end: impl Into<NaiveDate>) -> Result<Self> {
        let start = ensure_storable(start.into())?;
        let end = ensure_storable(end.into())?;
        if start >= end {
            return Err(Error::InvalidRange(format!(
                "the start date {start} must be before the end date {end}"
            )));
        }
        Ok(Self { start, end })
    }

    /// The single night starting on `date`, moved into the accepted dates when outside them
    /// (the first night is then [`EARLIEST_DATE`], or the last one the night before
    /// [`LATEST_DATE`]).
    pub fn night_of(date: NaiveDate) -> Self {
        let start = date.clamp(EARLIEST_DATE, LATEST_DATE - Duration::days(1));
        Self {
            start,
            end: start + Duration::days(1),
        }
    }

    /// The same first night, with `end` as the check-out day; an `end` not after the start
    /// leaves the single first night, and one after [`LATEST_DATE`] stops there.
    pub fn extended_to(self, end: NaiveDate) -> Self {
        Self {
            start: self.start,
            end: end.clamp(self.start + Duration::days(1), LATEST_DATE),
        }
    }

    /// The first night.
    pub fn start(&self) -> NaiveDate {
        self.start
    }

    /// The check-out day (not a night of the range).
    pub fn end(&self) -> NaiveDate {
        self.end
    }

    /// How many nights.
    pub fn nights(&self) -> i64 {
        (self.end - self.start).num_days()
    }

    /// Every night, in order.
    pub fn iter_nights(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let start = self.start;
        (0..self.nights()).map(move |n| start + Duration::days(n))
    }

    /// Whether `date` is a night of the range.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date < self.end
    }

    /// Fails when the range is longer than `max` nights.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRange`] naming the limit.
    pub fn ensure_at_most(self, max: i64) -> Result<Self> {
        if self.nights() > max {
            return Err(Error::InvalidRange(format!(
                "{} nights from {} to {} is more than the {max} allowed",
                self.nights(),
                self.start,
                self.end
            )));
        }
        Ok(self)
    }
}

impl std::fmt::Display for DateRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A number of rooms: at least one, at most [`MAX_ROOMS_PER_BOOKING`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i32")]
pub struct RoomCount(i32);

impl RoomCount {
    /// One room.
    pub const ONE: RoomCount = RoomCount(1);

    /// Validates a room count.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] below 1 or above [`MAX_ROOMS_PER_BOOKING`].
    ///
    /// # Examples
    ///
    /// ```
    /// use optimized_queries::RoomCount;
    /// assert_eq!(RoomCount::new(2).unwrap().get(), 2);
    /// assert!(RoomCount::new(0).is_err());
    /// assert!(RoomCount::new(10_000).is_err());
    /// ```
    pub fn new(rooms: i64) -> Result<Self> {
        if !(1..=i64::from(MAX_ROOMS_PER_BOOKING)).contains(&rooms) {
            return Err(Error::InvalidInput(format!(
                "rooms must be between 1 and {MAX_ROOMS_PER_BOOKING}, not {rooms}"
            )));
        }
        Ok(Self(rooms as i32))
    }

    /// The count.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for RoomCount {
    type Error = Error;
    fn try_from(rooms: i64) -> Result<Self> {
        RoomCount::new(rooms)
    }
}

impl From<RoomCount> for i32 {
    fn from(rooms: RoomCount) -> i32 {
        rooms.0
    }
}

/// A client's idempotency key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when empty, longer than 255 bytes, or not visible ASCII.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidInput(
                "an idempotency key is 1 to 255 visible ASCII characters".to_owned(),
            ));
        }
        Ok(Self(key))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = Error;
    fn try_from(key: String) -> Result<Self> {
        IdempotencyKey::new(key)
    }
}

/// What [`create_booking`](crate::create_booking) is asked to book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    /// The guest.
    pub user_id: i64,
    /// The room type.
    pub room_type_id: i64,
    /// The nights.
    pub stay: DateRange,
    /// Rooms each night.
    pub rooms: RoomCount,
    /// Makes retries of this request return the first booking. Scoped to `user_id`: the same
    /// key from another user is another request.
    pub idempotency_key: Option<IdempotencyKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn calendar_dates_parse_strictly_and_print_back_the_same() {
        for text in ["0001-01-01", "1999-12-31", "2024-02-29", "9999-12-31"] {
            assert_eq!(CalendarDate::parse(text).unwrap().to_string(), text);
        }
        for text in [
            "",
            "2026-1-1",
            "2026-01-1",
            " 2026-01-01",
            "2026-01-01 ",
            "2026-01-01\n",
            "+2026-01-01",
            "-5000-01-01",
            "10000-01-01",
            "0000-12-31",
            "2026-13-01",
            "2026-00-10",
            "2025-02-29",
            "2026/01/01",
            "2026-01-01T00:00",
            "２０２６-01-01",
            "20260101",
            "2026-0a-01",
        ] {
            assert!(CalendarDate::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn every_day_of_the_range_round_trips_through_text_and_orders_as_text() {
        // Text order equals date order across the whole range: what SQLite relies on.
        let mut day = EARLIEST_DATE;
        let mut previous = day.to_string();
        while day < LATEST_DATE {
            day += Duration::days(997);
            let day = day.min(LATEST_DATE);
            let text = CalendarDate::new(day).unwrap().to_string();
            assert_eq!(CalendarDate::parse(&text).unwrap().get(), day);
            assert!(previous < text, "{previous} !< {text}");
            previous = text;
        }
    }

    #[test]
    fn ranges_stay_within_the_storable_dates() {
        assert!(DateRange::new(date(9999, 12, 30), date(9999, 12, 31)).is_ok());
        assert!(matches!(
            DateRange::new(date(9999, 12, 31), date(10000, 1, 2)),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            DateRange::new(date(-5000, 1, 1), date(2026, 1, 1)),
            Err(Error::InvalidInput(_))
        ));
        assert_eq!(DateRange::night_of(LATEST_DATE).end(), LATEST_DATE);
        assert_eq!(DateRange::night_of(date(-1, 1, 1)).start(), EARLIEST_DATE);
        let last = DateRange::night_of(date(9999, 12, 1)).extended_to(date(10001, 1, 1));
        assert_eq!(last.end(), LATEST_DATE);
    }

    #[test]
    fn dates_deserialize_strictly_from_json() {
        let ok: CalendarDate = serde_json::from_str("\"2026-12-01\"").unwrap();
        assert_eq!(ok.get(), date(2026, 12, 1));
        for bad in ["\"2026-1-1\"", "20261201", "null", "\" 2026-12-01\""] {
            assert!(serde_json::from_str::<CalendarDate>(bad).is_err(), "{bad}");
        }
        let range: DateRange =
            serde_json::from_str(r#"{"start":"2026-12-01","end":"2026-12-03"}"#).unwrap();
        assert_eq!(range.nights(), 2);
        assert!(
            serde_json::from_str::<DateRange>(r#"{"start":"2026-12-1","end":"2026-12-03"}"#)
                .is_err()
        );
    }
}
