//! The HTTP API, one module per area.

pub mod admin;
pub mod bookings;
pub mod catalog;
pub mod dashboard;
pub mod health;

use chrono::NaiveDate;

use crate::error::ApiError;

/// Today in UTC: the day availability defaults to and bookings may not start before.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A `[start, end)` range from optional query parameters: both, or neither for `default`.
pub fn range_or(
    start: Option<optimized_queries::CalendarDate>,
    end: Option<optimized_queries::CalendarDate>,
    default: impl FnOnce() -> optimized_queries::DateRange,
) -> Result<optimized_queries::DateRange, ApiError> {
    match (start, end) {
        (Some(start), Some(end)) => Ok(optimized_queries::DateRange::new(start, end)?),
        (None, None) => Ok(default()),
        _ => Err(ApiError::bad_request(
            "give both startDate and endDate, or neither",
        )),
    }
}
