//! The hotel's hot queries, exactly as the helpers build them, with representative parameters:
//! what an index check should EXPLAIN.

use chrono::{Duration, NaiveDate};
use entity::BookingStatus;
use sea_orm::{ConnectionTrait, QueryTrait, Statement};

use crate::{
    BookingsInRangeQuery, DateRange, UserBookingsQuery,
    availability::{all_availability_statement, availability_statement},
    bookings::{bookings_in_range_select, payments_select, user_bookings_statement},
    reports::{occupancy_statement, payment_summary_statement, statistics_statement},
    rooms::{room_type_calendar_statement, room_types_on_statement},
    sql::statement,
};

/// A query the hotel runs often, ready to EXPLAIN.
#[derive(Debug, Clone)]
pub struct HotQuery {
    /// Which helper runs it, e.g. `availability`.
    pub name: &'static str,
    /// The statement with representative parameters.
    pub statement: Statement,
}

/// Parameters that make the hot queries realistic: ids and dates that exist in the data.
#[derive(Debug, Clone, Copy)]
pub struct HotQuerySample {
    /// A room type id.
    pub room_type_id: i64,
    /// A user id with bookings.
    pub user_id: i64,
    /// "Today": availability is asked for the week after it, reports for the year before it.
    pub today: NaiveDate,
}

impl HotQuerySample {
    fn week(&self) -> DateRange {
        DateRange::night_of(self.today).extended_to(self.today + Duration::days(7))
    }

    fn year(&self) -> DateRange {
        DateRange::night_of(self.today - Duration::days(365)).extended_to(self.today)
    }
}

/// Every hot query of the hotel, built for `db`'s backend.
pub fn hot_queries(db: &impl ConnectionTrait, sample: &HotQuerySample) -> Vec<HotQuery> {
    let backend = db.get_database_backend();
    let (week, year) = (sample.week(), sample.year());
    let hot = |name, statement| HotQuery { name, statement };
    vec![
        hot("room_types_on", room_types_on_statement(db, sample.today)),
        hot(
            "room_type_calendar",
            room_type_calendar_statement(db, sample.room_type_id, week),
        ),
        hot(
            "availability",
            availability_statement(db, sample.room_type_id, week),
        ),
        hot("all_availability", all_availability_statement(db, week)),
        hot(
            "user_bookings",
            user_bookings_statement(
                db,
                sample.user_id,
                UserBookingsQuery {
                    include_payments: true,
                    ..UserBookingsQuery::default()
                },
            ),
        ),
        hot(
            "user_bookings_by_status",
            user_bookings_statement(
                db,
                sample.user_id,
                UserBookingsQuery {
                    status: Some(BookingStatus::Confirmed),
                    ..UserBookingsQuery::default()
                },
            ),
        ),
        hot(
            "booking_payments",
            payments_select(vec![1, 2, 3]).build(backend),
        ),
        hot(
            "bookings_in_range",
            bookings_in_range_select(BookingsInRangeQuery {
                room_type_id: Some(sample.room_type_id),
                status: Some(BookingStatus::Confirmed),
                ..BookingsInRangeQuery::new(week)
            })
            .build(backend),
        ),
        hot("booking_statistics", statistics_statement(db, year, None)),
        hot("occupancy", occupancy_statement(db, year, None)),
        hot(
            "payment_summary",
            payment_summary_statement(db, sample.user_id),
        ),
        hot(
            "create_booking.take_rooms",
            statement(
                db,
                crate::writes::TAKE_ROOMS_SQL,
                [
                    1.into(),
                    sample.room_type_id.into(),
                    week.start().into(),
                    week.end().into(),
                ],
            ),
        ),
    ]
}
