//! The original system's before/after table as runnable operations: each of its five
//! operations, the naive way, the optimized way and through the cache, with deterministic,
//! realistic parameters. Benchmarks and `hotel-stats perf-table` measure these, so the
//! improvement is measured, not claimed.

use chrono::{Duration, NaiveDate};
use sea_orm::{DatabaseConnection, FromQueryResult, Statement};
use serde::Serialize;

use optimized_queries::{
    BookingRequest, DateRange, Error, HotelCache, Result, RoomCount, UserBookingsQuery,
};

use crate::naive;

/// An operation of the original's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// "Get Room Types".
    RoomTypes,
    /// "Check Availability": one room type, seven nights.
    Availability,
    /// "User Bookings": a guest's bookings with room type and payments.
    UserBookings,
    /// "Create Booking".
    CreateBooking,
    /// "Generate Report": one year of booking statistics and occupancy.
    Report,
}

impl Operation {
    /// Every operation, in the original table's order.
    pub const ALL: [Operation; 5] = [
        Operation::RoomTypes,
        Operation::Availability,
        Operation::UserBookings,
        Operation::CreateBooking,
        Operation::Report,
    ];

    /// The name the original table gives it.
    pub fn label(self) -> &'static str {
        match self {
            Operation::RoomTypes => "Get Room Types",
            Operation::Availability => "Check Availability (7 nights)",
            Operation::UserBookings => "User Bookings (+ room type, payments)",
            Operation::CreateBooking => "Create Booking",
            Operation::Report => "Generate Report (1 year)",
        }
    }

    /// A short id for benchmark names.
    pub fn id(self) -> &'static str {
        match self {
            Operation::RoomTypes => "room_types",
            Operation::Availability => "availability_7n",
            Operation::UserBookings => "user_bookings",
            Operation::CreateBooking => "create_booking",
            Operation::Report => "report_1y",
        }
    }
}

/// How an operation is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The [`naive`] way.
    Naive,
    /// The crate's helpers.
    Optimized,
    /// The crate's helpers through [`HotelCache`] (a warm cache).
    Cached,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 3] = [Variant::Naive, Variant::Optimized, Variant::Cached];

    /// Its name.
    pub fn id(self) -> &'static str {
        match self {
            Variant::Naive => "naive",
            Variant::Optimized => "optimized",
            Variant::Cached => "cached",
        }
    }

    /// Whether `operation` has this variant (a booking is a write: nothing to cache).
    pub fn applies_to(self, operation: Operation) -> bool {
        !(self == Variant::Cached && operation == Operation::CreateBooking)
    }
}

#[derive(FromQueryResult)]
struct Id {
    id: i64,
}

/// Everything the operations need: the database, a cache, and parameters that exist in it.
#[derive(Debug, Clone)]
pub struct Workload {
    db: DatabaseConnection,
    hotel: HotelCache,
    today: NaiveDate,
    room_types: Vec<i64>,
    guests: Vec<i64>,
}

impl Workload {
    /// Reads the room types and a sample of guests with bookings. `today` is the dataset's
    /// reference date: availability and bookings look at the weeks after it, reports at the
    /// year before it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the database holds no room type or booking; database errors.
    pub async fn prepare(
        db: DatabaseConnection,
        hotel: HotelCache,
        today: NaiveDate,
    ) -> Result<Self> {
        let ids = |sql: &str| {
            Id::find_by_statement(Statement::from_string(
                db.get_database_backend(),
                sql.to_owned(),
            ))
            .all(&db)
        };
        let room_types: Vec<i64> = ids("SELECT id FROM room_types ORDER BY id")
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        // Guests with a typical number of bookings (most have 3 to 15): the few who book
        // thousands of times would measure their own sort, not the helper.
        let guests: Vec<i64> = ids(
            "SELECT user_id AS id FROM bookings GROUP BY user_id HAVING COUNT(*) BETWEEN 5 AND 15 \
             ORDER BY user_id LIMIT 256",
        )
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
        if room_types.is_empty() || guests.is_empty() {
            return Err(Error::NotFound {
                what: "generated data",
                id: 0,
            });
        }
        Ok(Self {
            db,
            hotel,
            today,
            room_types,
            guests,
        })
    }

    /// The cache the [`Variant::Cached`] runs use.
    pub fn hotel(&self) -> &HotelCache {
        &self.hotel
    }

    /// The room type of the `i`-th run.
    pub fn room_type(&self, i: u64) -> i64 {
        self.room_types[(i as usize * 7) % self.room_types.len()]
    }

    /// The seven nights of the `i`-th availability check.
    pub fn week(&self, i: u64) -> DateRange {
        let start = self.today + Duration::days(1 + (i % 60) as i64);
        DateRange::night_of(start).extended_to(start + Duration::days(7))
    }

    /// The guest of the `i`-th run.
    pub fn guest(&self, i: u64) -> i64 {
        self.guests[i as usize % self.guests.len()]
    }

    /// The year the report covers: the 365 nights before "today".
    pub fn year(&self) -> DateRange {
        DateRange::night_of(self.today - Duration::days(365)).extended_to(self.today)
    }

    /// Runs `operation` the `variant` way with the `i`-th parameters. Returns the booking made,
    /// for [`Workload::undo`], when the operation is a booking.
    ///
    /// The cached variant of a read answers from the cache after its first run with the same
    /// parameters (`i` cycles through at most 60 distinct weeks and 256 guests).
    ///
    /// # Errors
    ///
    /// The helpers' errors; a booking that finds no room is not an error (it returns `None`).
    pub async fn run(&self, operation: Operation, variant: Variant, i: u64) -> Result<Option<i64>> {
        let db = &self.db;
        let rooms = RoomCount::ONE;
        match (operation, variant) {
            (Operation::RoomTypes, Variant::Naive) => {
                naive::room_types(db).await?;
            }
            (Operation::RoomTypes, Variant::Optimized) => {
                optimized_queries::room_types(db).await?;
            }
            (Operation::RoomTypes, Variant::Cached) => {
                self.hotel.room_types(db).await?;
            }
            (Operation::Availability, v) => {
                let (room_type, week) = (self.room_type(i), self.week(i));
                match v {
                    Variant::Naive => {
                        naive::availability(db, room_type, week, rooms).await?;
                    }
                    Variant::Optimized => {
                        optimized_queries::availability(db, room_type, week, rooms).await?;
                    }
                    Variant::Cached => {
                        self.hotel.availability(db, room_type, week, rooms).await?;
                    }
                }
            }
            (Operation::UserBookings, v) => {
                let guest = self.guest(i);
                let query = UserBookingsQuery {
                    include_payments: v != Variant::Cached,
                    ..UserBookingsQuery::default()
                };
                match v {
                    Variant::Naive => {
                        naive::user_bookings(db, guest, query).await?;
                    }
                    Variant::Optimized => {
                        optimized_queries::user_bookings(db, guest, query).await?;
                    }
                    // Payments are never cached: the cached variant is the bookings with room type.
                    Variant::Cached => {
                        self.hotel.user_bookings(db, guest, query).await?;
                    }
                }
            }
            (Operation::CreateBooking, v) => {
                let start = self.today + Duration::days(1 + (i % 90) as i64);
                let request = BookingRequest {
                    user_id: self.guest(i),
                    room_type_id: self.room_type(i),
                    stay: DateRange::night_of(start)
                        .extended_to(start + Duration::days(1 + (i % 3) as i64)),
                    rooms,
                    idempotency_key: None,
                };
                let made = match v {
                    Variant::Naive => naive::create_booking(db, &request).await,
                    _ => optimized_queries::create_booking(db, &request, self.today).await,
                };
                return match made {
                    Ok(outcome) => Ok(Some(outcome.booking.id)),
                    Err(Error::NotAvailable { .. }) => Ok(None),
                    Err(other) => Err(other),
                };
            }
            (Operation::Report, v) => {
                let year = self.year();
                match v {
                    Variant::Naive => {
                        naive::booking_statistics(db, year, None).await?;
                        naive::occupancy(db, year, None).await?;
                    }
                    Variant::Optimized => {
                        optimized_queries::booking_statistics(db, year, None).await?;
                        optimized_queries::occupancy(db, year, None).await?;
                    }
                    Variant::Cached => {
                        self.hotel.booking_statistics(db, year, None).await?;
                        self.hotel.occupancy(db, year, None).await?;
                    }
                }
            }
        }
        Ok(None)
    }

    /// Cancels a booking [`Workload::run`] made, so repeated runs do not drain the inventory.
    ///
    /// # Errors
    ///
    /// The cancellation's errors.
    pub async fn undo(&self, booking: Option<i64>) -> Result<()> {
        if let Some(id) = booking {
            optimized_queries::cancel_booking(&self.db, id).await?;
        }
        Ok(())
    }
}
