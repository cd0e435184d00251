//! Availability: does a room type have N rooms free on every night of a range?
//!
//! A night without an inventory row counts as zero free rooms: nothing can be sold on it.

use sea_orm::{ConnectionTrait, Statement, Value};
use serde::{Deserialize, Serialize};

use crate::{
    DateRange, Error, MAX_RANGE_NIGHTS, Result, RoomCount,
    columns::{Decode, Row},
    executor::{self, Cost},
    sql::{placeholders, room_type_nights, statement},
    views::Availability,
};

/// The most checks [`batch_availability`] takes at once.
pub const MAX_BATCH_CHECKS: usize = 200;

/// One check of a batch: a room type, a range and a room count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityCheck {
    /// The room type.
    pub room_type_id: i64,
    /// The nights.
    pub range: DateRange,
    /// Rooms needed each night.
    pub rooms: RoomCount,
}

struct AvailabilityRow {
    room_type_exists: i64,
    nights_with_inventory: i64,
    min_available: Option<i64>,
}

impl Decode for AvailabilityRow {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            room_type_exists: row.get(0)?,
            nights_with_inventory: row.get(1)?,
            min_available: row.get(2)?,
        })
    }
}

pub(crate) fn availability_statement(
    db: &impl ConnectionTrait,
    room_type_id: i64,
    range: DateRange,
) -> Statement {
    statement(
        db,
        "SELECT (SELECT COUNT(*) FROM room_types WHERE id = $1) AS room_type_exists, \
         COUNT(*) AS nights_with_inventory, CAST(MIN(available_rooms) AS BIGINT) AS min_available \
         FROM room_inventory WHERE room_type_id = $1 AND date >= $2 AND date < $3",
        room_type_nights(room_type_id, range),
    )
}

/// Whether `room_type_id` has `rooms` free on every night of `range`, and the fewest free on
/// any night. One statement.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown room type, [`Error::InvalidRange`] for a range over
/// [`MAX_RANGE_NIGHTS`] nights, [`Error::Database`] when the query fails.
pub async fn availability(
    db: &(impl ConnectionTrait + 'static),
    room_type_id: i64,
    range: DateRange,
    rooms: RoomCount,
) -> Result<Availability> {
    let range = range.ensure_at_most(MAX_RANGE_NIGHTS)?;
    let row: AvailabilityRow = executor::query_one(
        db,
        availability_statement(db, room_type_id, range),
        Cost::Short,
    )
    .await?
    .ok_or(Error::NotFound {
        what: "room type",
        id: room_type_id,
    })?;
    if row.room_type_exists == 0 {
        return Err(Error::NotFound {
            what: "room type",
            id: room_type_id,
        });
    }
    Ok(Availability::from_inventory(
        room_type_id,
        range,
        rooms,
        row.nights_with_inventory,
        row.min_available,
    ))
}

struct AllRow {
    room_type_id: i64,
    nights_with_inventory: i64,
    min_available: Option<i64>,
}

impl Decode for AllRow {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            room_type_id: row.get(0)?,
            nights_with_inventory: row.get(1)?,
            min_available: row.get(2)?,
        })
    }
}

pub(crate) fn all_availability_statement(db: &impl ConnectionTrait, range: DateRange) -> Statement {
    statement(
        db,
        "SELECT rt.id AS room_type_id, COUNT(i.id) AS nights_with_inventory, \
         CAST(MIN(i.available_rooms) AS BIGINT) AS min_available \
         FROM room_types rt LEFT JOIN room_inventory i \
         ON i.room_type_id = rt.id AND i.date >= $1 AND i.date < $2 \
         GROUP BY rt.id ORDER BY rt.id",
        [range.start().into(), range.end().into()],
    )
}

/// Availability of every room type over `range`, by room type id. One statement.
///
/// # Errors
///
/// [`Error::InvalidRange`] for a range over [`MAX_RANGE_NIGHTS`] nights, [`Error::Database`]
/// when the query fails.
pub async fn all_availability(
    db: &(impl ConnectionTrait + 'static),
    range: DateRange,
    rooms: RoomCount,
) -> Result<Vec<Availability>> {
    let range = range.ensure_at_most(MAX_RANGE_NIGHTS)?;
    // Every room type's nights: a long range over many room types is thousands of rows.
    let cost = if range.nights() > 31 {
        Cost::Long
    } else {
        Cost::Short
    };
    let rows: Vec<AllRow> =
        executor::query_all(db, all_availability_statement(db, range), cost).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            Availability::from_inventory(
                row.room_type_id,
                range,
                rooms,
                row.nights_with_inventory,
                row.min_available,
            )
        })
        .collect())
}

struct BatchRow {
    idx: i64,
    room_type_exists: i64,
    nights_with_inventory: i64,
    min_available: Option<i64>,
}

impl Decode for BatchRow {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            idx: row.get(0)?,
            room_type_exists: row.get(1)?,
            nights_with_inventory: row.get(2)?,
            min_available: row.get(3)?,
        })
    }
}

pub(crate) fn batch_statement(
    db: &impl ConnectionTrait,
    checks: &[AvailabilityCheck],
) -> Statement {
    let mut values: Vec<Value> = Vec::with_capacity(checks.len() * 4);
    let mut rows = Vec::with_capacity(checks.len());
    for (idx, check) in checks.iter().enumerate() {
        rows.push(format!("({})", placeholders(idx * 4 + 1, 4)));
        values.extend([
            (idx as i64).into(),
            check.room_type_id.into(),
            check.range.start().into(),
            check.range.end().into(),
        ]);
    }
    statement(
        db,
        format!(
            "WITH checks (idx, room_type_id, start_date, end_date) AS (VALUES {}) \
             SELECT c.idx AS idx, COUNT(DISTINCT rt.id) AS room_type_exists, \
             COUNT(i.id) AS nights_with_inventory, CAST(MIN(i.available_rooms) AS BIGINT) AS min_available \
             FROM checks c \
             LEFT JOIN room_types rt ON rt.id = c.room_type_id \
             LEFT JOIN room_inventory i ON i.room_type_id = c.room_type_id \
             AND i.date >= c.start_date AND i.date < c.end_date \
             GROUP BY c.idx ORDER BY c.idx",
            rows.join(", ")
        ),
        values,
    )
}

/// Answers many availability checks with one statement, in the order they were given.
///
/// # Errors
///
/// [`Error::InvalidInput`] for no checks or more than [`MAX_BATCH_CHECKS`];
/// [`Error::InvalidRange`] for a range over [`MAX_RANGE_NIGHTS`] nights; [`Error::NotFound`]
/// naming the first unknown room type; [`Error::Database`] when the query fails.
pub async fn batch_availability(
    db: &(impl ConnectionTrait + 'static),
    checks: &[AvailabilityCheck],
) -> Result<Vec<Availability>> {
    if checks.is_empty() || checks.len() > MAX_BATCH_CHECKS {
        return Err(Error::InvalidInput(format!(
            "a batch holds 1 to {MAX_BATCH_CHECKS} checks, not {}",
            checks.len()
        )));
    }
    for check in checks {
        check.range.ensure_at_most(MAX_RANGE_NIGHTS)?;
    }
    // Up to 200 ranges of up to 731 nights.
    let nights: i64 = checks.iter().map(|c| c.range.nights()).sum();
    let cost = if nights > 500 {
        Cost::Long
    } else {
        Cost::Short
    };
    let rows: Vec<BatchRow> = executor::query_all(db, batch_statement(db, checks), cost).await?;
    let mut answers = Vec::with_capacity(checks.len());
    for (check, row) in checks.iter().zip(rows) {
        debug_assert_eq!(row.idx as usize, answers.len());
        if row.room_type_exists == 0 {
            return Err(Error::NotFound {
                what: "room type",
                id: check.room_type_id,
            });
        }
        answers.push(Availability::from_inventory(
            check.room_type_id,
            check.range,
            check.rooms,
            row.nights_with_inventory,
            row.min_available,
        ));
    }
    Ok(answers)
}
