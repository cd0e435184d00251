//! Reports, aggregated in the database from rollups at two grains.
//!
//! Booking statistics sum `booking_daily_stats` (bookings per arrival date, room type and
//! status) and occupancy sums `room_inventory` (where `total - available` is the rooms held by
//! bookings that are not cancelled, so every status that holds a room counts: provisional,
//! confirmed, checked in and checked out). Both also exist by month (`booking_monthly_stats`,
//! `room_inventory_monthly`), kept exact by triggers in the same statements. A range is read
//! as its whole months from the monthly tables and the days before the first and after the
//! last whole month from the daily ones ([`MonthSplit`]): a year that does not start on the
//! first of a month is about eleven monthly rows per group and up to two months of daily rows,
//! instead of 365 days of them.

use chrono::{Datelike, Months, NaiveDate};
use entity::{BookingStatus, PaymentStatus};
use sea_orm::{ConnectionTrait, FromQueryResult, Iterable, Statement, Value};

use crate::{
    DateRange, Result,
    columns::{Decode, Row},
    executor::{self, Cost},
    sql::statement,
    views::{
        BookingStatistics, Occupancy, PaymentStatusTotal, PaymentSummary, RoomTypeOccupancy,
        StatusBreakdown,
    },
};

/// A range as `[start, months_start)` by day, `[months_start, months_end)` by month and
/// `[months_end, end)` by day. Without a whole month inside, every night is read by day
/// (`months_start = months_end = end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MonthSplit {
    start: NaiveDate,
    months_start: NaiveDate,
    months_end: NaiveDate,
    end: NaiveDate,
}

impl MonthSplit {
    pub(crate) fn of(range: DateRange) -> Self {
        let (start, end) = (range.start(), range.end());
        let months_start = if start.day() == 1 {
            start
        } else {
            start
                .with_day(1)
                .and_then(|first| first.checked_add_months(Months::new(1)))
                .unwrap_or(end)
        };
        let months_end = end.with_day(1).unwrap_or(end);
        if months_start < months_end {
            Self {
                start,
                months_start,
                months_end,
                end,
            }
        } else {
            Self {
                start,
                months_start: end,
                months_end: end,
                end,
            }
        }
    }

    /// `$1..$4`: the start, the first and the end of the whole months, the end.
    fn values(self) -> Vec<Value> {
        vec![
            self.start.into(),
            self.months_start.into(),
            self.months_end.into(),
            self.end.into(),
        ]
    }
}

/// How long a report may take: a year on a million bookings is about a millisecond, so reports
/// leave the calling worker thread for tokio's blocking pool.
const REPORT_COST: Cost = Cost::Long;

struct StatusRow {
    status: BookingStatus,
    bookings: i64,
    rooms: i64,
    room_nights: i64,
    revenue: i64,
}

impl Decode for StatusRow {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            status: row.get(0)?,
            bookings: row.get(1)?,
            rooms: row.get(2)?,
            room_nights: row.get(3)?,
            revenue: row.get(4)?,
        })
    }
}

pub(crate) fn statistics_statement(
    db: &impl ConnectionTrait,
    range: DateRange,
    room_type_id: Option<i64>,
) -> Statement {
    let mut values = MonthSplit::of(range).values();
    let room_type_filter = match room_type_id {
        Some(id) => {
            values.push(id.into());
            " AND room_type_id = $5"
        }
        None => "",
    };
    let columns = "status, bookings, rooms, room_nights, revenue";
    statement(
        db,
        format!(
            "SELECT status, CAST(SUM(bookings) AS BIGINT) AS bookings, CAST(SUM(rooms) AS BIGINT) AS rooms, \
             CAST(SUM(room_nights) AS BIGINT) AS room_nights, CAST(SUM(revenue) AS BIGINT) AS revenue \
             FROM (SELECT {columns} FROM booking_monthly_stats \
             WHERE month >= $2 AND month < $3{room_type_filter} \
             UNION ALL SELECT {columns} FROM booking_daily_stats \
             WHERE arrival_date >= $1 AND arrival_date < $2{room_type_filter} \
             UNION ALL SELECT {columns} FROM booking_daily_stats \
             WHERE arrival_date >= $3 AND arrival_date < $4{room_type_filter}) AS rollup \
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
    db: &(impl ConnectionTrait + 'static),
    range: DateRange,
    room_type_id: Option<i64>,
) -> Result<BookingStatistics> {
    let rows: Vec<StatusRow> = executor::query_all(
        db,
        statistics_statement(db, range, room_type_id),
        REPORT_COST,
    )
    .await?;
    let by_status = rows
        .into_iter()
        .map(|row| StatusBreakdown {
            status: row.status,
            bookings: row.bookings,
            value: row.revenue,
            rooms: row.rooms,
            room_nights: row.room_nights,
        })
        .collect();
    Ok(BookingStatistics::from_breakdown(
        range,
        room_type_id,
        by_status,
    ))
}

struct OccupancyRow {
    room_type_id: i64,
    name: String,
    sold: i64,
    available: i64,
}

impl Decode for OccupancyRow {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            room_type_id: row.get(0)?,
            name: row.get(1)?,
            sold: row.get(2)?,
            available: row.get(3)?,
        })
    }
}

pub(crate) fn occupancy_statement(
    db: &impl ConnectionTrait,
    range: DateRange,
    room_type_id: Option<i64>,
) -> Statement {
    let mut values = MonthSplit::of(range).values();
    let (room_type_filter, monthly_filter) = match room_type_id {
        Some(id) => {
            values.push(id.into());
            (" WHERE rt.id = $5", " AND room_type_id = $5")
        }
        None => ("", ""),
    };
    // The daily parts join from room_types so that each is an index range per room type.
    let days = |from: &str, to: &str| {
        format!(
            "SELECT rt.id AS room_type_id, i.total_rooms - i.available_rooms AS sold, \
             i.total_rooms AS total FROM room_types rt JOIN room_inventory i \
             ON i.room_type_id = rt.id AND i.date >= {from} AND i.date < {to}{room_type_filter}"
        )
    };
    statement(
        db,
        format!(
            "SELECT rt.id AS room_type_id, rt.name AS name, \
             CAST(COALESCE(a.sold, 0) AS BIGINT) AS sold, CAST(COALESCE(a.total, 0) AS BIGINT) AS available \
             FROM room_types rt LEFT JOIN (SELECT room_type_id, SUM(sold) AS sold, SUM(total) AS total \
             FROM (SELECT room_type_id, sold, total_rooms AS total FROM room_inventory_monthly \
             WHERE month >= $2 AND month < $3{monthly_filter} \
             UNION ALL {} UNION ALL {}) AS rollup GROUP BY room_type_id) a \
             ON a.room_type_id = rt.id{room_type_filter} ORDER BY rt.id",
            days("$1", "$2"),
            days("$3", "$4"),
        ),
        values,
    )
}

/// Room-nights sold against room-nights in service over `range`, overall and per room type
/// (optionally one). One statement.
///
/// # Errors
///
/// [`crate::Error::Database`] when the query fails.
pub async fn occupancy(
    db: &(impl ConnectionTrait + 'static),
    range: DateRange,
    room_type_id: Option<i64>,
) -> Result<Occupancy> {
    let rows: Vec<OccupancyRow> = executor::query_all(
        db,
        occupancy_statement(db, range, room_type_id),
        REPORT_COST,
    )
    .await?;
    let by_room_type = rows
        .into_iter()
        .map(|row| RoomTypeOccupancy::new(row.room_type_id, row.name, row.sold, row.available))
        .collect();
    Ok(Occupancy::from_room_types(range, by_room_type))
}

struct PaymentRow {
    status: PaymentStatus,
    count: i64,
    amount: i64,
}

impl Decode for PaymentRow {
    fn decode(row: &impl Row) -> Result<Self> {
        Ok(Self {
            status: row.get(0)?,
            count: row.get(1)?,
            amount: row.get(2)?,
        })
    }
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
pub async fn payment_summary(
    db: &(impl ConnectionTrait + 'static),
    user_id: i64,
) -> Result<PaymentSummary> {
    let rows: Vec<PaymentRow> =
        executor::query_all(db, payment_summary_statement(db, user_id), Cost::Short).await?;
    let mut by_status: Vec<PaymentStatusTotal> = rows
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

/// How many groups of the report rollups disagree with what they sum: (arrival date, room
/// type, status) groups of `booking_daily_stats` against the bookings, (month, room type,
/// status) groups of `booking_monthly_stats` against `booking_daily_stats`, and (month, room
/// type) groups of `room_inventory_monthly` against `room_inventory`. 0 unless bookings were
/// written around the write helpers or the rollup triggers were dropped. A health check; it
/// reads every booking.
///
/// # Errors
///
/// [`crate::Error::Database`] when the query fails.
pub async fn daily_stats_mismatches(db: &impl ConnectionTrait) -> Result<i64> {
    let postgres = db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    let nights = if postgres {
        "(end_date - start_date)"
    } else {
        "CAST(julianday(end_date) - julianday(start_date) AS INTEGER)"
    };
    let month = |column: &str| {
        if postgres {
            format!("CAST(date_trunc('month', {column}) AS DATE)")
        } else {
            format!("date({column}, 'start of month')")
        }
    };
    let differ = |a: &str, b: &str, columns: &[(&str, &str)]| {
        columns
            .iter()
            .map(|(x, y)| format!("COALESCE({a}.{x}, 0) <> COALESCE({b}.{y}, 0)"))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let daily = format!(
        "SELECT COUNT(*) FROM (SELECT start_date, room_type_id, status, COUNT(*) AS n, \
         SUM(rooms_booked) AS r, SUM(rooms_booked * {nights}) AS rn, SUM(total_price) AS v \
         FROM bookings GROUP BY start_date, room_type_id, status) b \
         FULL OUTER JOIN (SELECT * FROM booking_daily_stats WHERE bookings <> 0) s \
         ON s.arrival_date = b.start_date AND s.room_type_id = b.room_type_id AND s.status = b.status \
         WHERE b.n IS NULL OR s.bookings IS NULL OR b.n <> s.bookings OR b.r <> s.rooms \
         OR b.rn <> s.room_nights OR b.v <> s.revenue"
    );
    let monthly = format!(
        "SELECT COUNT(*) FROM (SELECT {} AS month, room_type_id, status, SUM(bookings) AS n, \
         SUM(rooms) AS r, SUM(room_nights) AS rn, SUM(revenue) AS v FROM booking_daily_stats \
         GROUP BY 1, room_type_id, status) d FULL OUTER JOIN booking_monthly_stats m \
         ON m.month = d.month AND m.room_type_id = d.room_type_id AND m.status = d.status WHERE {}",
        month("arrival_date"),
        differ(
            "d",
            "m",
            &[
                ("n", "bookings"),
                ("r", "rooms"),
                ("rn", "room_nights"),
                ("v", "revenue")
            ]
        ),
    );
    let inventory = format!(
        "SELECT COUNT(*) FROM (SELECT {} AS month, room_type_id, COUNT(*) AS n, SUM(total_rooms) AS t, \
         SUM(total_rooms - available_rooms) AS s FROM room_inventory GROUP BY 1, room_type_id) d \
         FULL OUTER JOIN room_inventory_monthly m ON m.month = d.month AND m.room_type_id = d.room_type_id \
         WHERE {}",
        month("date"),
        differ(
            "d",
            "m",
            &[("n", "nights"), ("t", "total_rooms"), ("s", "sold")]
        ),
    );
    let sql = format!("SELECT CAST(({daily}) + ({monthly}) + ({inventory}) AS BIGINT) AS count");
    Ok(Count::find_by_statement(statement(db, sql, []))
        .one(db)
        .await?
        .map_or(0, |c| c.count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(start: (i32, u32, u32), end: (i32, u32, u32)) -> [String; 4] {
        let d = |(y, m, day): (i32, u32, u32)| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let s = MonthSplit::of(DateRange::new(d(start), d(end)).unwrap());
        [s.start, s.months_start, s.months_end, s.end].map(|d| d.to_string())
    }

    #[test]
    fn a_range_splits_into_days_whole_months_and_days() {
        assert_eq!(
            split((2025, 11, 25), (2026, 11, 25)),
            ["2025-11-25", "2025-12-01", "2026-11-01", "2026-11-25"]
        );
        assert_eq!(
            split((2026, 1, 1), (2026, 3, 1)),
            ["2026-01-01", "2026-01-01", "2026-03-01", "2026-03-01"]
        );
        // No whole month: every night by day.
        assert_eq!(
            split((2026, 1, 5), (2026, 2, 20)),
            ["2026-01-05", "2026-02-20", "2026-02-20", "2026-02-20"]
        );
        assert_eq!(
            split((2026, 1, 1), (2026, 1, 31)),
            ["2026-01-01", "2026-01-31", "2026-01-31", "2026-01-31"]
        );
        assert_eq!(
            split((2026, 12, 31), (2027, 2, 1)),
            ["2026-12-31", "2027-01-01", "2027-02-01", "2027-02-01"]
        );
    }
}
