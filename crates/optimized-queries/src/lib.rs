//! The hotel data layer: sea-orm 2.x helpers over the `entity` crate, on SQLite and PostgreSQL,
//! that a service calls instead of writing queries by hand.
//!
//! - **Reads with a fixed query budget**: each helper issues a fixed number of statements
//!   whatever the size of its result (one for most; two where a has-many relation is loaded with
//!   a second `IN` query), and aggregates in the database.
//! - **Writes that are atomic, exact and idempotent**: [`create_booking`] never overbooks under
//!   any number of concurrent callers; [`cancel_booking`] returns rooms exactly once;
//!   [`update_inventory`] never strands booked rooms.
//! - **Typed errors a caller can act on**: [`Error::NotAvailable`] (with the first night that
//!   lacks rooms), [`Error::InvalidRange`], [`Error::NotFound`], [`Error::Conflict`].
//!
//! | helper | statements |
//! |---|---|
//! | [`room_types`], [`room_types_on`], [`room_type_calendar`] | 1 |
//! | [`availability`], [`all_availability`], [`batch_availability`] | 1 |
//! | [`user_bookings`] | 1, payments included |
//! | [`bookings_in_range`], [`bookings_by_ids`] | 1 |
//! | [`booking_details`] | 2 |
//! | [`booking_statistics`], [`occupancy`], [`payment_summary`] | 1 |
//!
//! # Where a read runs on SQLite, and what each way costs
//!
//! With the `sqlite` feature, a read on a SQLite file runs on the calling thread through
//! SQLite's C API, on read connections of the crate's own with cached prepared statements
//! (`sqlite_reader`); reports and long ranges go to tokio's blocking pool. The bench
//! `optimized_queries/sqlite/hops/*` measures each way of reaching SQLite around the same
//! 7-night availability statement and around no work: sea-orm on sqlx's worker thread (a
//! channel each way), rusqlite on tokio's blocking pool (`spawn_blocking`), rusqlite inline
//! (what short reads do); docs/PERFORMANCE.md "Beside the floor" has its figures.
//!
//! Beyond the hop, a read pays its statement's construction, a lookup of the pool's reader
//! (a shared lock), an idle connection from a mutex, the statement cache's lookup, binding,
//! decoding and one `perf-stats` record (a hash lookup by SQL text when a tracker is attached,
//! a shared-lock lookup otherwise): lookups and uncontended locks, no hop. Dates are bound from a
//! ten-byte buffer rather than through chrono's formatter, and strings are bound borrowed
//! (SQLite copies them anyway).
//!
//! [`room_types`] does less than its statement: each read connection keeps the decoded room
//! types with the connection's `PRAGMA data_version`, and answers from them while that
//! version is unchanged. SQLite changes it on that connection whenever any other connection
//! commits, in this process or another one (the reader's connections never write); the version
//! is read before and after the statement, and rows read while something was committed are
//! not kept. Rows are kept only when two reads in a row on the connection found the same
//! version, so a database written between every read pays no copy; and while it keeps
//! changing, reads with nothing kept skip asking for the version (1, 3, 7, … up to 31 reads
//! after each change seen), so they pay what the floor pays: the statement. A read then costs one
//! `PRAGMA data_version` and a clone of the rows instead of the statement and the decoding of
//! every row (bench `optimized_queries/sqlite/room_types/*`, medium / large: `optimized`
//! 4.9 / 6.8 µs against `floor` 10.8 / 20.6 µs). Right after another connection's commit,
//! which drops every connection's page cache, the read runs on a connection without a memory
//! map, since SQLite also unmaps a mapped file then and faulting its pages back in cost more than
//! the statement: `optimized_after_commit` 16.1–16.8 / 25.0–25.5 µs against `floor_after_commit`
//! 26.1–26.2 / 36.8–41.3 µs (mapped, as before: 35.2–36.8 / 42.5–44.4 µs). The
//! `perf-stats` tracker still records the room types statement for each call, timed as the
//! caller waited. Reads inside a transaction, on PostgreSQL or without a file keep nothing.
//!
//! # Where a read runs on PostgreSQL
//!
//! With the `postgres` feature (on by default), a read on a PostgreSQL `DatabaseConnection`
//! runs on one of up to four connections the crate holds beside sqlx's pool
//! (`postgres_reader`): idle connections taken out of the pool once (pinged, then detached, so
//! they keep its credentials, TLS and statement cache) and put back on a list of their own after
//! each statement. Through sea-orm, sqlx gives every pooled connection back from a task it
//! spawns, and that task pings the server before the connection is idle again: a spawn, a
//! wake-up of another thread and a second round trip for every read (a profile of the guest's
//! bookings read showed the task's ping at 44 % of samples and context switches at 44 %). The
//! statement, its binding (sea-orm's own) and the decoding (sea-orm's rows) are the same either
//! way; docs/PERFORMANCE.md "PostgreSQL reads on held connections" has the before and after
//! against tokio-postgres. A read that finds all four busy, or no idle connection in the pool
//! to take, goes through sea-orm; so does one whose held connection broke (then with sea-orm's
//! retry on a lost connection). Reads in a transaction always run in it.
//!
//! A guest's page of bookings with room types and payments is one statement: the page is
//! chosen first, then joined. Against two statements (the page, then its payments with `IN`)
//! on the same file, rusqlite with cached statements, 256 guests with 5–15 bookings each, medium
//! dataset, the one statement takes 65.7 µs and the two 62.2 µs *once the page size is written
//! into the statement*; with `LIMIT $2` bound, SQLite 3.51 shows the same query plan and takes
//! 123.1 µs (bench `optimized_queries/sqlite/user_bookings/{floor,floor_bound_limit,
//! floor_two_statements}`). So [`user_bookings`] writes the (checked) limit into the SQL.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use chrono::NaiveDate;
//! use dataset::{DatasetOptions, Scale};
//! use migration::MigratorTrait;
//! use optimized_queries::{BookingRequest, DateRange, RoomCount};
//!
//! let db = db_connect::connect("sqlite::memory:").await?;
//! migration::Migrator::up(&db, None).await?;
//! let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
//! dataset::generate(&db, &DatasetOptions::new(Scale::Tiny).reference_date(today), &|_| {}).await?;
//!
//! let stay = DateRange::new(today, today + chrono::Duration::days(2))?;
//! let rooms = RoomCount::new(1)?;
//! let before = optimized_queries::availability(&db, 1, stay, rooms).await?;
//! let request = BookingRequest { user_id: 2, room_type_id: 1, stay, rooms, idempotency_key: None };
//! match optimized_queries::create_booking(&db, &request, today).await {
//!     Ok(outcome) => {
//!         let after = optimized_queries::availability(&db, 1, stay, rooms).await?;
//!         assert_eq!(after.min_available, before.min_available - 1);
//!         assert!(outcome.created);
//!     }
//!     Err(optimized_queries::Error::NotAvailable { night, .. }) => assert!(stay.contains(night)),
//!     Err(other) => return Err(other.into()),
//! }
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod availability;
mod bookings;
mod cached;
mod columns;
mod daily_stats;
mod domain;
mod error;
mod executor;
mod hot_queries;
#[cfg(feature = "postgres")]
mod postgres_reader;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod reader_registry;
mod reports;
mod retry;
mod rooms;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite_reader;
pub mod tokens;
mod views;
mod writes;

pub use availability::{
    AvailabilityCheck, MAX_BATCH_CHECKS, all_availability, availability, batch_availability,
};
pub use bookings::{
    BookingsInRangeQuery, MAX_BOOKINGS_PER_PAGE, MAX_IDS, UserBookingsQuery, booking_details,
    bookings_by_ids, bookings_in_range, user_bookings,
};
pub use cached::{HotelCache, INVALIDATION_FLUSH, ttl};
pub use domain::{
    BookingRequest, CalendarDate, DateRange, EARLIEST_DATE, IdempotencyKey, LATEST_DATE,
    MAX_RANGE_NIGHTS, MAX_ROOMS_PER_BOOKING, MAX_STAY_NIGHTS, RoomCount,
};
pub use error::{Error, Result};
pub use hot_queries::{HotQuery, HotQuerySample, hot_queries};
pub use reports::{booking_statistics, daily_stats_mismatches, occupancy, payment_summary};
pub use rooms::{room_type_calendar, room_types, room_types_on};
pub use views::{
    Availability, BookingStatistics, BookingView, GuestRef, NightInventory, Occupancy,
    PaymentStatusTotal, PaymentSummary, PaymentView, RoomTypeCalendar, RoomTypeOccupancy,
    RoomTypeRef, RoomTypeSummary, RoomTypeWithNight, StatusBreakdown,
};
pub use writes::{
    BookingOutcome, CancelOutcome, DEPOSIT_PERCENT, InventoryChange, MAX_ROOMS_PER_NIGHT,
    advance_booking, cancel_booking, create_booking, update_inventory,
};
