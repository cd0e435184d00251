//! Validated inputs: a value of these types is known to be well formed.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The longest stay [`create_booking`](crate::create_booking) accepts, in nights.
pub const MAX_STAY_NIGHTS: i64 = 30;
/// The longest range the availability and inventory helpers accept, in nights.
pub const MAX_RANGE_NIGHTS: i64 = 731;
/// The most rooms one booking may hold.
pub const MAX_ROOMS_PER_BOOKING: i32 = 50;

/// A non-empty range of nights `[start, end)`: `end` is the check-out day.
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
    start: NaiveDate,
    end: NaiveDate,
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
    /// [`Error::InvalidRange`] unless `start < end`.
    pub fn new(start: NaiveDate, end: NaiveDate) -> Result<Self> {
        if start >= end {
            return Err(Error::InvalidRange(format!(
                "the start date {start} must be before the end date {end}"
            )));
        }
        Ok(Self { start, end })
    }

    /// The single night starting on `date`.
    pub fn night_of(date: NaiveDate) -> Self {
        Self {
            start: date,
            end: date + Duration::days(1),
        }
    }

    /// The same first night, with `end` as the check-out day; an `end` not after the start
    /// leaves the single first night.
    pub fn extended_to(self, end: NaiveDate) -> Self {
        Self {
            start: self.start,
            end: end.max(self.start + Duration::days(1)),
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
    /// Makes retries of this request return the first booking.
    pub idempotency_key: Option<IdempotencyKey>,
}
