//! Room types, alone or with their inventory.

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, Statement};

use crate::{
    DateRange, Error, MAX_RANGE_NIGHTS, Result,
    columns::{Decode, Row},
    executor::{self, Cost},
    sql::{room_type_nights, statement},
    views::{NightInventory, RoomTypeCalendar, RoomTypeSummary, RoomTypeWithNight},
};

const ROOM_TYPE_COLUMNS: &str =
    "rt.id, rt.name, rt.description, rt.price_per_night, rt.total_rooms";

pub(crate) fn room_types_statement(db: &impl ConnectionTrait) -> Statement {
    statement(
        db,
        "SELECT id, name, description, price_per_night, total_rooms FROM room_types ORDER BY id",
        [],
    )
}

/// Every room type, by id. One statement.
///
/// # Errors
///
/// [`Error::Database`] when the query fails.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use migration::MigratorTrait;
/// let db = db_connect::connect("sqlite::memory:").await?;
/// migration::Migrator::up(&db, None).await?;
/// assert!(optimized_queries::room_types(&db).await?.is_empty());
/// # Ok(())
/// # }
/// ```
pub async fn room_types(db: &(impl ConnectionTrait + 'static)) -> Result<Vec<RoomTypeSummary>> {
    // Tens of rows that change only when a room type is written: kept per SQLite read
    // connection until the next commit (the crate docs give the measurements).
    executor::query_all_until_write(db, room_types_statement(db), Cost::Short).await
}

/// `id, name, description, price_per_night, total_rooms` from the first five columns.
impl Decode for RoomTypeSummary {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            description: row.get(2)?,
            price_per_night: row.get(3)?,
            total_rooms: row.get(4)?,
        })
    }
}

struct RoomTypeNightRow {
    room_type: RoomTypeSummary,
    night_total: Option<i32>,
    night_available: Option<i32>,
}

/// A room type's columns, then the night's `total_rooms, available_rooms`.
impl Decode for RoomTypeNightRow {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            room_type: RoomTypeSummary::decode(row)?,
            night_total: row.get(5)?,
            night_available: row.get(6)?,
        })
    }
}

impl RoomTypeNightRow {
    fn split(self, date: NaiveDate) -> (RoomTypeSummary, Option<NightInventory>) {
        let inventory = match (self.night_total, self.night_available) {
            (Some(total_rooms), Some(available_rooms)) => Some(NightInventory {
                date,
                total_rooms,
                available_rooms,
            }),
            _ => None,
        };
        (self.room_type, inventory)
    }
}

pub(crate) fn room_types_on_statement(db: &impl ConnectionTrait, date: NaiveDate) -> Statement {
    statement(
        db,
        format!(
            "SELECT {ROOM_TYPE_COLUMNS}, i.total_rooms AS night_total, i.available_rooms AS night_available \
             FROM room_types rt LEFT JOIN room_inventory i ON i.room_type_id = rt.id AND i.date = $1 \
             ORDER BY rt.id"
        ),
        [date.into()],
    )
}

/// Every room type with its inventory on the night of `date`. One statement.
///
/// # Errors
///
/// [`Error::Database`] when the query fails.
pub async fn room_types_on(
    db: &(impl ConnectionTrait + 'static),
    date: NaiveDate,
) -> Result<Vec<RoomTypeWithNight>> {
    let rows: Vec<RoomTypeNightRow> =
        executor::query_all(db, room_types_on_statement(db, date), Cost::Short).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (room_type, inventory) = row.split(date);
            RoomTypeWithNight {
                room_type,
                inventory,
            }
        })
        .collect())
}

struct CalendarRow {
    room_type: RoomTypeSummary,
    night: Option<chrono::NaiveDate>,
    night_total: Option<i32>,
    night_available: Option<i32>,
}

/// A room type's columns, then the night's `date, total_rooms, available_rooms`.
impl Decode for CalendarRow {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            room_type: RoomTypeSummary::decode(row)?,
            night: row.get(5)?,
            night_total: row.get(6)?,
            night_available: row.get(7)?,
        })
    }
}

pub(crate) fn room_type_calendar_statement(
    db: &impl ConnectionTrait,
    room_type_id: i64,
    range: DateRange,
) -> Statement {
    statement(
        db,
        format!(
            "SELECT {ROOM_TYPE_COLUMNS}, i.date AS night, i.total_rooms AS night_total, \
             i.available_rooms AS night_available \
             FROM room_types rt LEFT JOIN room_inventory i \
             ON i.room_type_id = rt.id AND i.date >= $2 AND i.date < $3 \
             WHERE rt.id = $1 ORDER BY i.date"
        ),
        room_type_nights(room_type_id, range),
    )
}

/// One room type with its inventory over `range` (at most [`MAX_RANGE_NIGHTS`] nights). One
/// statement.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown room type, [`Error::InvalidRange`] for too long a range,
/// [`Error::Database`] when the query fails.
pub async fn room_type_calendar(
    db: &(impl ConnectionTrait + 'static),
    room_type_id: i64,
    range: DateRange,
) -> Result<RoomTypeCalendar> {
    let range = range.ensure_at_most(MAX_RANGE_NIGHTS)?;
    // Up to 731 nights: long enough to be worth the blocking pool.
    let cost = if range.nights() > 62 {
        Cost::Long
    } else {
        Cost::Short
    };
    let rows: Vec<CalendarRow> = executor::query_all(
        db,
        room_type_calendar_statement(db, room_type_id, range),
        cost,
    )
    .await?;
    let mut rows = rows.into_iter();
    let first = rows.next().ok_or(Error::NotFound {
        what: "room type",
        id: room_type_id,
    })?;
    let night = |row: &CalendarRow| match (row.night, row.night_total, row.night_available) {
        (Some(date), Some(total_rooms), Some(available_rooms)) => Some(NightInventory {
            date,
            total_rooms,
            available_rooms,
        }),
        _ => None,
    };
    let mut nights: Vec<NightInventory> = night(&first).into_iter().collect();
    nights.extend(rows.filter_map(|row| night(&row)));
    Ok(RoomTypeCalendar {
        room_type: first.room_type,
        nights,
    })
}
