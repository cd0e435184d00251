//! Keeps `booking_daily_stats` equal to the bookings, inside the writing transaction.

use chrono::NaiveDate;
use entity::{BookingStatus, booking};
use sea_orm::{ConnectionTrait, DbErr};

use crate::sql::statement;

/// What one booking adds to its day, room type and status.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Contribution {
    arrival: NaiveDate,
    room_type_id: i64,
    rooms: i64,
    room_nights: i64,
    revenue: i64,
}

impl Contribution {
    pub(crate) fn of(booking: &booking::Model) -> Self {
        Self {
            arrival: booking.start_date,
            room_type_id: booking.room_type_id,
            rooms: i64::from(booking.rooms_booked),
            room_nights: i64::from(booking.rooms_booked) * booking.nights(),
            revenue: booking.total_price,
        }
    }
}

/// Adds (`sign` = 1) or removes (`sign` = -1) a booking's contribution under `status`.
pub(crate) async fn apply(
    conn: &impl ConnectionTrait,
    status: BookingStatus,
    c: Contribution,
    sign: i64,
) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn,
        "INSERT INTO booking_daily_stats \
         (arrival_date, room_type_id, status, bookings, rooms, room_nights, revenue) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (arrival_date, room_type_id, status) DO UPDATE SET \
         bookings = booking_daily_stats.bookings + excluded.bookings, \
         rooms = booking_daily_stats.rooms + excluded.rooms, \
         room_nights = booking_daily_stats.room_nights + excluded.room_nights, \
         revenue = booking_daily_stats.revenue + excluded.revenue",
        [
            c.arrival.into(),
            c.room_type_id.into(),
            status.into(),
            sign.into(),
            (sign * c.rooms).into(),
            (sign * c.room_nights).into(),
            (sign * c.revenue).into(),
        ],
    ))
    .await?;
    Ok(())
}
