//! Reports, aggregated in the database.
//!
//! Booking statistics read `booking_daily_stats` (bookings summed per arrival date, room type
//! and status, which the write helpers keep exact), so a year costs a few thousand rows, not
//! half a million bookings. Occupancy reads `room_inventory`, where `total - available` is the
//! rooms held by bookings that are not cancelled (the write helpers keep that exact too), so
//! every status that holds a room counts: provisional, confirmed, checked in and checked out.

use entity::{BookingStatus, PaymentStatus};
use sea_orm::{ConnectionTrait, FromQueryResult, Iterable, Statement, Value};

use crate::{
    DateRange, Result,
    sql::statement,
    views::{
        BookingStatistics, Occupancy, PaymentStatusTotal, PaymentSummary, RoomTypeOccupancy,
        StatusBreakdown,
    },
};

#[derive(FromQueryResult)]
struct StatusRow {
    status: BookingStatus,
    bookings: i64,
    rooms: i64,
    room_nights: i64,
    revenue: i64,
}

pub(crate) fn statistics_statement(
    db: &impl ConnectionTrait,
    range: DateRange,
    room_type_id: Option<i64>,
) -> Statement {
    let mut values: Vec<Value> = vec![range.start().into(), range.end().into()];
    let room_type_filter = match room_type_id {
        Some(id) => {
            values.push(id.into());
            " AND room_type_id = $3"
        }
        None => "",
    };
    statement(
        db,
        format!(
            "SELECT status, CAST(SUM(bookings) AS BIGINT) AS bookings, CAST(SUM(rooms) AS BIGINT) AS rooms, \
             CAST(SUM(room_nights) AS BIGINT) AS room_nights, CAST(SUM(revenue) AS BIGINT) AS revenue \
             FROM booking_daily_stats WHERE arrival_date >= $1 AND arrival_date < $2{room_type_filter} \
             GROUP BY status"
        ),
        values,
    )
}

/// Bookings arriving within `range` (optionally of one room type): count, revenue, rooms,
/// average value and a breakdown by status. One statement.
///
/// # Errors
///
/// [`crate::Error::Database`] when the query fails.
pub async fn booking_statistics(
    db: &impl ConnectionTrait,
    range: DateRange,
    room_type_id: Option<i64>,
) -> Result<BookingStatistics> {
    let rows = StatusRow::find_by_statement(statistics_statement(db, range, room_type_id))
        .all(db)
        .await?;
    let mut by_status: Vec<StatusBreakdown> = rows
        .into_iter()
        .filter(|row| row.bookings != 0)
        .map(|row| StatusBreakdown {
            status: row.status,
            bookings: row.bookings,
            value: row.revenue,
            rooms: row.rooms,
            room_nights: row.room_nights,
        })
        .collect();
    let order = |status: &BookingStatus| BookingStatus::iter().position(|s| s == *status);
    by_status.sort_by_key(|b| order(&b.status));
    let active = by_status.iter().filter(|b| b.status.holds_rooms());
    let active_bookings: i64 = active.clone().map(|b| b.bookings).sum();
    let revenue: i64 = active.clone().map(|b| b.value).sum();
    Ok(BookingStatistics {
        start_date: range.start(),
        end_date: range.end(),
        room_type_id,
        total_bookings: by_status.iter().map(|b| b.bookings).sum(),
        active_bookings,
        revenue,
        rooms: active.clone().map(|b| b.rooms).sum(),
        room_nights: active.map(|b| b.room_nights).sum(),
        average_value: if active_bookings > 0 {
            revenue / active_bookings
        } else {
            0
        },
        by_status,
    })
}

#[derive(FromQueryResult)]
struct OccupancyRow {
    room_type_id: i64,
    name: String,
    sold: i64,
    available: i64,
}

pub(crate) fn occupancy_statement(
    db: &impl ConnectionTrait,
    range: DateRange,
    room_type_id: Option<i64>,
) -> Statement {
    let mut values: Vec<Value> = vec![range.start().into(), range.end().into()];
    let room_type_filter = match room_type_id {
        Some(id) => {
            values.push(id.into());
            " WHERE rt.id = $3"
        }
        None => "",
    };
    statement(
        db,
        format!(
            "SELECT rt.id AS room_type_id, rt.name AS name, \
             CAST(COALESCE(SUM(i.total_rooms - i.available_rooms), 0) AS BIGINT) AS sold, \
             CAST(COALESCE(SUM(i.total_rooms), 0) AS BIGINT) AS available \
             FROM room_types rt LEFT JOIN room_inventory i \
             ON i.room_type_id = rt.id AND i.date >= $1 AND i.date < $2{room_type_filter} \
             GROUP BY rt.id, rt.name ORDER BY rt.id"
        ),
        values,
    )
}

fn rate(sold: i64, available: i64) -> f64 {
    if available > 0 {
        sold as f64 / available as f64
    } else {
        0.0
    }
}

/// Room-nights sold against room-nights in service over `range`, overall and per room type
/// (optionally one). One statement.
///
/// # Errors
///
/// [`crate::Error::Database`] when the query fails.
pub async fn occupancy(
    db: &impl ConnectionTrait,
    range: DateRange,
    room_type_id: Option<i64>,
) -> Result<Occupancy> {
    let rows = OccupancyRow::find_by_statement(occupancy_statement(db, range, room_type_id))
        .all(db)
        .await?;
    let by_room_type: Vec<RoomTypeOccupancy> = rows
        .into_iter()
        .map(|row| RoomTypeOccupancy {
            room_type_id: row.room_type_id,
            name: row.name,
            room_nights_sold: row.sold,
            room_nights_available: row.available,
            rate: rate(row.sold, row.available),
        })
        .collect();
    let sold = by_room_type.iter().map(|r| r.room_nights_sold).sum();
    let available = by_room_type.iter().map(|r| r.room_nights_available).sum();
    Ok(Occupancy {
        start_date: range.start(),
        end_date: range.end(),
        room_nights_sold: sold,
        room_nights_available: available,
        rate: rate(sold, available),
        by_room_type,
    })
}

#[derive(FromQueryResult)]
struct PaymentRow {
    status: PaymentStatus,
    count: i64,
    amount: i64,
}

pub(crate) fn payment_summary_statement(db: &impl ConnectionTrait, user_id: i64) -> Statement {
    statement(
        db,
        "SELECT status, COUNT(*) AS count, CAST(SUM(amount) AS BIGINT) AS amount \
         FROM payments WHERE user_id = $1 GROUP BY status",
        [user_id.into()],
    )
}

/// A user's payments: count and amount by status. One statement. Never cache the result.
///
/// # Errors
///
/// [`crate::Error::Database`] when the query fails.
pub async fn payment_summary(db: &impl ConnectionTrait, user_id: i64) -> Result<PaymentSummary> {
    let mut by_status: Vec<PaymentStatusTotal> =
        PaymentRow::find_by_statement(payment_summary_statement(db, user_id))
            .all(db)
            .await?
            .into_iter()
            .map(|row| PaymentStatusTotal {
                status: row.status,
                count: row.count,
                amount: row.amount,
            })
            .collect();
    by_status.sort_by_key(|t| PaymentStatus::iter().position(|s| s == t.status));
    Ok(PaymentSummary {
        user_id,
        count: by_status.iter().map(|t| t.count).sum(),
        paid_amount: by_status
            .iter()
            .filter(|t| t.status == PaymentStatus::Paid)
            .map(|t| t.amount)
            .sum(),
        by_status,
    })
}

#[derive(FromQueryResult)]
struct Count {
    count: i64,
}

/// How many (arrival date, room type, status) groups of `booking_daily_stats` disagree with the
/// bookings: 0 unless bookings were written around the write helpers. A health check; it reads
/// every booking.
///
/// # Errors
///
/// [`crate::Error::Database`] when the query fails.
pub async fn daily_stats_mismatches(db: &impl ConnectionTrait) -> Result<i64> {
    let nights = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "(end_date - start_date)",
        _ => "CAST(julianday(end_date) - julianday(start_date) AS INTEGER)",
    };
    let sql = format!(
        "SELECT COUNT(*) AS count FROM (SELECT start_date, room_type_id, status, COUNT(*) AS n, \
         SUM(rooms_booked) AS r, SUM(rooms_booked * {nights}) AS rn, SUM(total_price) AS v \
         FROM bookings GROUP BY start_date, room_type_id, status) b \
         FULL OUTER JOIN (SELECT * FROM booking_daily_stats WHERE bookings <> 0) s \
         ON s.arrival_date = b.start_date AND s.room_type_id = b.room_type_id AND s.status = b.status \
         WHERE b.n IS NULL OR s.bookings IS NULL OR b.n <> s.bookings OR b.r <> s.rooms \
         OR b.rn <> s.room_nights OR b.v <> s.revenue"
    );
    Ok(Count::find_by_statement(statement(db, sql, []))
        .one(db)
        .await?
        .map_or(0, |c| c.count))
}
