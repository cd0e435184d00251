//! The floors under the optimized helpers: the same statements through each database's own
//! client with cached prepared statements, decoding into the crate's own result types, and the
//! alternative plans they were chosen against.

pub mod postgres;
pub mod python;
pub mod sqlite;

use entity::BookingStatus;
use optimized_queries::{
    BookingStatistics, BookingView, DateRange, Occupancy, PaymentView, RoomTypeOccupancy,
    StatusBreakdown,
};

/// A guest's newest 50 bookings with their room type (the first of two statements).
pub const USER_PAGE: &str = "SELECT b.id, b.user_id, b.room_type_id, b.start_date, \
     b.end_date, b.rooms_booked, b.status, b.total_price, b.deposit_amount, b.is_deposit_paid, \
     b.created_at, b.updated_at, r.name, r.price_per_night FROM bookings b \
     JOIN room_types r ON r.id = b.room_type_id WHERE b.user_id = $1 \
     ORDER BY b.created_at DESC, b.id DESC LIMIT 50";

/// The plan the helpers had before: the page as one JSON document built by SQLite.
pub const USER_JSON_SQLITE: &str = "SELECT CAST(COALESCE(json_group_array(json(page.x) \
     ORDER BY page.created_at DESC, page.id DESC), '[]') AS TEXT) AS document FROM (SELECT b.id, \
     b.created_at, json_object('id', b.id, 'userId', b.user_id, 'roomTypeId', b.room_type_id, \
     'startDate', b.start_date, 'endDate', b.end_date, 'roomsBooked', b.rooms_booked, 'status', \
     b.status, 'totalPrice', b.total_price, 'depositAmount', b.deposit_amount, 'createdAt', \
     b.created_at, 'updatedAt', b.updated_at, 'isDepositPaid', CASE WHEN b.is_deposit_paid THEN \
     json('true') ELSE json('false') END, 'roomType', json_object('id', r.id, 'name', r.name, \
     'pricePerNight', r.price_per_night), 'payments', json(COALESCE((SELECT \
     COALESCE(json_group_array(json_object('id', p.id, 'amount', p.amount, 'status', p.status, \
     'provider', p.provider, 'paidAt', p.paid_at, 'createdAt', p.created_at) ORDER BY p.id), '[]') \
     FROM payments p WHERE p.booking_id = b.id), '[]'))) AS x FROM bookings b JOIN room_types r \
     ON r.id = b.room_type_id WHERE b.user_id = $1 ORDER BY b.created_at DESC, b.id DESC \
     LIMIT $2) page";

/// The same document built by PostgreSQL.
pub const USER_JSON_POSTGRES: &str = "SELECT CAST(COALESCE(json_agg(page.x ORDER BY \
     page.created_at DESC, page.id DESC), '[]') AS TEXT) AS document FROM (SELECT b.id, \
     b.created_at, json_build_object('id', b.id, 'userId', b.user_id, 'roomTypeId', \
     b.room_type_id, 'startDate', b.start_date, 'endDate', b.end_date, 'roomsBooked', \
     b.rooms_booked, 'status', b.status, 'totalPrice', b.total_price, 'depositAmount', \
     b.deposit_amount, 'createdAt', b.created_at, 'updatedAt', b.updated_at, 'isDepositPaid', \
     b.is_deposit_paid, 'roomType', json_build_object('id', r.id, 'name', r.name, \
     'pricePerNight', r.price_per_night), 'payments', COALESCE((SELECT \
     COALESCE(json_agg(json_build_object('id', p.id, 'amount', p.amount, 'status', p.status, \
     'provider', p.provider, 'paidAt', p.paid_at, 'createdAt', p.created_at) ORDER BY p.id), \
     '[]') FROM payments p WHERE p.booking_id = b.id), '[]')) AS x FROM bookings b \
     JOIN room_types r ON r.id = b.room_type_id WHERE b.user_id = $1 \
     ORDER BY b.created_at DESC, b.id DESC LIMIT $2) page";

/// What a user who reads the per-day rollup directly runs: booking statistics from
/// `booking_daily_stats` (`$1`, `$2`: the range)...
pub const DAILY_STATISTICS: &str = "SELECT status, CAST(SUM(bookings) AS BIGINT) AS bookings, \
     CAST(SUM(rooms) AS BIGINT) AS rooms, CAST(SUM(room_nights) AS BIGINT) AS room_nights, \
     CAST(SUM(revenue) AS BIGINT) AS revenue FROM booking_daily_stats \
     WHERE arrival_date >= $1 AND arrival_date < $2 GROUP BY status";

/// ...and occupancy from `room_inventory`, per room type.
pub const DAILY_OCCUPANCY: &str = "SELECT rt.id AS room_type_id, rt.name AS name, \
     CAST(COALESCE(SUM(i.total_rooms - i.available_rooms), 0) AS BIGINT) AS sold, \
     CAST(COALESCE(SUM(i.total_rooms), 0) AS BIGINT) AS available FROM room_types rt \
     LEFT JOIN room_inventory i ON i.room_type_id = rt.id AND i.date >= $1 AND i.date < $2 \
     GROUP BY rt.id, rt.name ORDER BY rt.id";

/// The report from its rows, summed as the helpers sum them: `(status, [bookings, rooms,
/// room-nights, revenue])` and occupancy per room type.
pub fn summary(
    range: DateRange,
    rows: Vec<(BookingStatus, [i64; 4])>,
    by_room_type: Vec<RoomTypeOccupancy>,
) -> (BookingStatistics, Occupancy) {
    let by_status = rows
        .into_iter()
        .map(
            |(status, [bookings, rooms, room_nights, value])| StatusBreakdown {
                status,
                bookings,
                value,
                rooms,
                room_nights,
            },
        )
        .collect();
    (
        BookingStatistics::from_breakdown(range, None, by_status),
        Occupancy::from_room_types(range, by_room_type),
    )
}

/// Folds one row of the page joined to its payments into `out`: the row's booking when it is
/// not the last one's, then the row's payment when it has one.
pub fn fold_joined_row(
    out: &mut Vec<BookingView>,
    id: i64,
    booking: impl FnOnce() -> BookingView,
    payment: Option<PaymentView>,
) {
    if out.last().is_none_or(|b| b.id != id) {
        out.push(booking());
    }
    if let Some(payment) = payment {
        out.last_mut()
            .unwrap()
            .payments
            .as_mut()
            .unwrap()
            .push(payment);
    }
}
