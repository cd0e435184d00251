//! Hotel cache keys and invalidation rules on top of `query-cache`.
//!
//! [`HotelCache`] offers the read helpers with the original system's TTLs (room types 1 h,
//! availability 1 min, a user's bookings 5 min, reports 15 min) and the write helpers that
//! invalidate exactly what they change, after their transaction commits (a refused or rolled
//! back write invalidates nothing).
//!
//! | entry | key | tags |
//! |---|---|---|
//! | room types | `room-types` | `room-types` |
//! | availability | `availability:{room type}:{start}:{end}:{rooms}` | `avail:{room type}:{night}` for each night (ranges over 31 nights: `avail:{room type}:{YYYY-MM}` per month) |
//! | all-room availability | `availability:all:{start}:{end}:{rooms}` | `avail:all:{night}` (or per month), `room-types` |
//! | a user's bookings | `user-bookings:{user}:{status}:{limit}` | `user-bookings:{user}` |
//! | reports | `report:statistics:…`, `report:occupancy:…` | `reports` |
//!
//! A booking, cancellation or inventory change of room type R over nights N invalidates the
//! night (and month) tags of R and of `all` for N; bookings also drop the guest's bookings and
//! the reports. Other room types, other nights, other users' bookings and the room-type list
//! stay cached.
//!
//! # Read-your-write, across instances
//!
//! Every write method returns only after its invalidations have been applied to the shared
//! Redis tier and every other instance confirmed it dropped them from its memory
//! (`QueryCache::flush_invalidations`, waiting up to [`INVALIDATION_FLUSH`]; without a Redis
//! tier there is nothing to wait for), so no caller can forget it.
//!
//! **Guarantee**: once a write method returned, every instance's next read reflects it:
//! Redis holds nothing the write made stale (and a load that began before cannot store
//! it), and no instance's memory does. Measured: 0 stale reads in 600 book-or-cancel through
//! one hotel-server then read through another (`scale_out::every_write_is_read_at_once_
//! through_the_other_instance`; 154 of 600 before). If Redis or an instance does not answer
//! within the bound, the write still succeeds and a warning is logged; other instances' memory
//! copies then expire within the tier's staleness bound.
//!
//! Payments and tokens are never cached: [`HotelCache::user_bookings`] with payments goes
//! straight to the database.
//!
//! Every cached result type (and its `Vec` form) has a [`SharedCodec`], so a cache built
//! with a Redis tier (query-cache's `redis` feature) shares it between instances. The
//! schemas are named `optimized-queries/<Type>`; bump `SCHEMA_VERSION` in this module whenever one of
//! these types changes shape or meaning, so that instances of another release read a miss
//! instead of a wrong value.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use db_connect::ReadRouter;
use query_cache::{Cacheable, LoadError, PrewarmJob, QueryCache, SharedCodec, Ttl};
use sea_orm::DatabaseConnection;

use crate::{
    Availability, BookingOutcome, BookingRequest, BookingStatistics, BookingView, CancelOutcome,
    DateRange, Error, InventoryChange, Occupancy, Result, RoomCount, RoomTypeSummary,
    UserBookingsQuery,
};

/// Time to live of each kind of entry, from the original system's guidance.
pub mod ttl {
    use query_cache::Ttl;

    /// Room types: static data.
    pub const ROOM_TYPES: Ttl = Ttl::LONG;
    /// Availability: changes with every booking (which also invalidates it).
    pub const AVAILABILITY: Ttl = Ttl::VERY_SHORT;
    /// A user's bookings.
    pub const USER_BOOKINGS: Ttl = Ttl::SHORT;
    /// Reports.
    pub const REPORTS: Ttl = Ttl::MEDIUM;
}

/// How long a write waits for its invalidations to reach Redis (and the other instances)
/// before it returns anyway.
pub const INVALIDATION_FLUSH: std::time::Duration = std::time::Duration::from_millis(250);

/// Ranges up to this many nights are tagged night by night; longer ones month by month.
const NIGHT_TAG_LIMIT: i64 = 31;

/// Version of the shared-tier schema of every cached result type. Bump it with any change
/// to their fields or to what a field means.
const SCHEMA_VERSION: u32 = 1;

impl Cacheable for RoomTypeSummary {
    fn weight(&self) -> usize {
        size_of::<Self>() + self.name.len() + self.description.len()
    }
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack(
            "optimized-queries/RoomTypeSummary",
            SCHEMA_VERSION,
        ))
    }
}
impl Cacheable for Availability {
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack(
            "optimized-queries/Availability",
            SCHEMA_VERSION,
        ))
    }
}
impl Cacheable for BookingView {
    fn weight(&self) -> usize {
        size_of::<Self>() + self.room_type.as_ref().map_or(0, |rt| rt.name.len())
    }
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack(
            "optimized-queries/BookingView",
            SCHEMA_VERSION,
        ))
    }
}
impl Cacheable for BookingStatistics {
    fn weight(&self) -> usize {
        size_of::<Self>() + self.by_status.len() * size_of::<crate::StatusBreakdown>()
    }
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack(
            "optimized-queries/BookingStatistics",
            SCHEMA_VERSION,
        ))
    }
}
impl Cacheable for Occupancy {
    fn weight(&self) -> usize {
        size_of::<Self>()
            + self
                .by_room_type
                .iter()
                .map(|r| size_of_val(r) + r.name.len())
                .sum::<usize>()
    }
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack(
            "optimized-queries/Occupancy",
            SCHEMA_VERSION,
        ))
    }
}

fn night_tag(scope: &str, night: NaiveDate) -> String {
    format!("avail:{scope}:{night}")
}

fn month_tag(scope: &str, night: NaiveDate) -> String {
    format!("avail:{scope}:{:04}-{:02}", night.year(), night.month())
}

/// The tags of an availability entry over `range` for `scope` (a room type id or `all`).
fn range_tags(scope: &str, range: DateRange) -> Vec<String> {
    if range.nights() <= NIGHT_TAG_LIMIT {
        range
            .iter_nights()
            .map(|night| night_tag(scope, night))
            .collect()
    } else {
        let mut months: Vec<String> = range
            .iter_nights()
            .map(|night| month_tag(scope, night))
            .collect();
        months.dedup();
        months
    }
}

/// The tags of an all-room availability entry: its nights' (or months') and the room types'.
fn all_availability_tags(range: DateRange) -> Vec<String> {
    let mut tags = range_tags("all", range);
    tags.push(ROOM_TYPES_TAG.to_owned());
    tags
}

/// The tags a change to `scope`'s nights in `range` must invalidate: every night and month.
fn change_tags(scope: &str, range: DateRange) -> Vec<String> {
    let mut tags: Vec<String> = range
        .iter_nights()
        .map(|night| night_tag(scope, night))
        .collect();
    let mut months: Vec<String> = range
        .iter_nights()
        .map(|night| month_tag(scope, night))
        .collect();
    months.dedup();
    tags.extend(months);
    tags
}

fn user_bookings_tag(user_id: i64) -> String {
    format!("user-bookings:{user_id}")
}

const ROOM_TYPES_TAG: &str = "room-types";
const REPORTS_TAG: &str = "reports";

fn from_load(err: LoadError<Error>) -> Error {
    match err {
        LoadError::Loader { source, .. } => Arc::unwrap_or_clone(source),
        // A key used for two types is a bug of this module, not of the caller's input.
        other => Error::Database(sea_orm::DbErr::Custom(format!("cache: {other}"))),
    }
}

/// Reads `key` through `cache`, running `load` on its own handle to `db` on a miss (the loader
/// may outlive the caller's borrow): the one way every read wrapper below goes through the
/// cache, so a loader's own error reaches the caller unchanged. The entry's `tags` and the
/// loader's handle are made only on a miss: a hit, the common case, makes neither.
async fn cached<T, F, Fut>(
    cache: &QueryCache,
    db: &DatabaseConnection,
    key: impl AsRef<str>,
    ttl: Ttl,
    tags: impl FnOnce() -> Vec<String>,
    load: F,
) -> Result<Arc<T>>
where
    T: Cacheable,
    F: FnOnce(DatabaseConnection) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    cache
        .with_cache_lazy(key, ttl, || {
            let db = db.clone();
            (tags(), move || load(db))
        })
        .await
        .map_err(from_load)
}

/// `{prefix}{start}:{end}:{rooms}`, as `format!` would write it with the dates' `Display`,
/// without the formatting machinery: the key of every availability read, made on every hit.
fn range_key(prefix: &str, range: DateRange, rooms: RoomCount) -> String {
    let mut key = String::with_capacity(prefix.len() + 24);
    key.push_str(prefix);
    push_date(&mut key, range.start());
    key.push(':');
    push_date(&mut key, range.end());
    key.push(':');
    let rooms = rooms.get();
    if (0..10).contains(&rooms) {
        key.push(char::from(b'0' + rooms as u8));
    } else {
        key.push_str(&rooms.to_string());
    }
    key
}

fn push_date(key: &mut String, date: NaiveDate) {
    match crate::domain::iso_date(date) {
        Some(text) => key.extend(text.iter().map(|b| char::from(*b))),
        None => key.push_str(&date.to_string()),
    }
}

/// Reads the report `key` through `cache` for [`ttl::REPORTS`]; on a miss `load` runs where
/// `reads` routes it: the read replica when it has replayed every write that returned before
/// the miss, the primary otherwise. A report filled from the replica is therefore never older
/// than one filled from the primary at the same moment.
async fn cached_report<T, F, Fut>(
    cache: &QueryCache,
    reads: ReadRouter,
    key: String,
    load: F,
) -> Result<Arc<T>>
where
    T: Cacheable,
    F: Fn(DatabaseConnection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    cache
        .with_cache(key, ttl::REPORTS, &[REPORTS_TAG], move || async move {
            reads.read(&load).await
        })
        .await
        .map_err(from_load)
}

/// The hotel's cached reads and invalidating writes. Cheap to clone.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use optimized_queries::HotelCache;
/// use query_cache::QueryCache;
/// # use migration::MigratorTrait;
///
/// let db = db_connect::connect("sqlite::memory:").await?;
/// # migration::Migrator::up(&db, None).await?;
/// let hotel = HotelCache::new(QueryCache::builder().max_entries(10_000).build()?);
/// let first = hotel.room_types(&db).await?;   // a query
/// let second = hotel.room_types(&db).await?;  // from memory
/// assert!(std::sync::Arc::ptr_eq(&first, &second));
/// assert_eq!(hotel.cache().stats().hits, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HotelCache {
    cache: QueryCache,
}

impl HotelCache {
    /// Hotel keys and rules over `cache`.
    pub fn new(cache: QueryCache) -> Self {
        Self { cache }
    }

    /// The underlying cache, for statistics and administration.
    pub fn cache(&self) -> &QueryCache {
        &self.cache
    }

    /// [`crate::room_types`], cached for [`ttl::ROOM_TYPES`].
    ///
    /// # Errors
    ///
    /// As [`crate::room_types`].
    pub async fn room_types(&self, db: &DatabaseConnection) -> Result<Arc<Vec<RoomTypeSummary>>> {
        cached(
            &self.cache,
            db,
            "room-types",
            ttl::ROOM_TYPES,
            || vec![ROOM_TYPES_TAG.to_owned()],
            move |db| async move { crate::room_types(&db).await },
        )
        .await
    }

    /// [`crate::availability`], cached for [`ttl::AVAILABILITY`].
    ///
    /// # Errors
    ///
    /// As [`crate::availability`].
    pub async fn availability(
        &self,
        db: &DatabaseConnection,
        room_type_id: i64,
        range: DateRange,
        rooms: RoomCount,
    ) -> Result<Arc<Availability>> {
        let range = range.ensure_at_most(crate::MAX_RANGE_NIGHTS)?;
        let key = range_key(&format!("availability:{room_type_id}:"), range, rooms);
        cached(
            &self.cache,
            db,
            key,
            ttl::AVAILABILITY,
            || range_tags(&room_type_id.to_string(), range),
            move |db| async move { crate::availability(&db, room_type_id, range, rooms).await },
        )
        .await
    }

    /// [`crate::all_availability`], cached for [`ttl::AVAILABILITY`].
    ///
    /// # Errors
    ///
    /// As [`crate::all_availability`].
    pub async fn all_availability(
        &self,
        db: &DatabaseConnection,
        range: DateRange,
        rooms: RoomCount,
    ) -> Result<Arc<Vec<Availability>>> {
        let range = range.ensure_at_most(crate::MAX_RANGE_NIGHTS)?;
        cached(
            &self.cache,
            db,
            range_key("availability:all:", range, rooms),
            ttl::AVAILABILITY,
            || all_availability_tags(range),
            move |db| async move { crate::all_availability(&db, range, rooms).await },
        )
        .await
    }

    /// [`crate::user_bookings`], cached for [`ttl::USER_BOOKINGS`], except with payments,
    /// which are never cached.
    ///
    /// # Errors
    ///
    /// As [`crate::user_bookings`].
    pub async fn user_bookings(
        &self,
        db: &DatabaseConnection,
        user_id: i64,
        query: UserBookingsQuery,
    ) -> Result<Arc<Vec<BookingView>>> {
        if query.include_payments {
            return crate::user_bookings(db, user_id, query).await.map(Arc::new);
        }
        let status = query.status.map_or("any", |s| match s {
            entity::BookingStatus::Provisional => "PROVISIONAL",
            entity::BookingStatus::Confirmed => "CONFIRMED",
            entity::BookingStatus::Cancelled => "CANCELLED",
            entity::BookingStatus::CheckedIn => "CHECKED_IN",
            entity::BookingStatus::CheckedOut => "CHECKED_OUT",
        });
        let key = format!("user-bookings:{user_id}:{status}:{}", query.limit);
        cached(
            &self.cache,
            db,
            key,
            ttl::USER_BOOKINGS,
            || vec![user_bookings_tag(user_id)],
            move |db| async move { crate::user_bookings(&db, user_id, query).await },
        )
        .await
    }

    /// [`crate::booking_statistics`], cached for [`ttl::REPORTS`]. `reads` is a connection, or a
    /// [`ReadRouter`] with a read replica: a miss then reads the replica when it has replayed
    /// every write that returned before it, the primary otherwise.
    ///
    /// # Errors
    ///
    /// As [`crate::booking_statistics`].
    pub async fn booking_statistics(
        &self,
        reads: impl Into<ReadRouter>,
        range: DateRange,
        room_type_id: Option<i64>,
    ) -> Result<Arc<BookingStatistics>> {
        let key = report_key("statistics", range, room_type_id);
        cached_report(&self.cache, reads.into(), key, move |db| async move {
            crate::booking_statistics(&db, range, room_type_id).await
        })
        .await
    }

    /// [`crate::occupancy`], cached for [`ttl::REPORTS`]. `reads` is a connection, or a
    /// [`ReadRouter`] with a read replica (as for [`Self::booking_statistics`]).
    ///
    /// # Errors
    ///
    /// As [`crate::occupancy`].
    pub async fn occupancy(
        &self,
        reads: impl Into<ReadRouter>,
        range: DateRange,
        room_type_id: Option<i64>,
    ) -> Result<Arc<Occupancy>> {
        let key = report_key("occupancy", range, room_type_id);
        cached_report(&self.cache, reads.into(), key, move |db| async move {
            crate::occupancy(&db, range, room_type_id).await
        })
        .await
    }

    /// [`crate::create_booking`], then invalidates the availability of the stay's nights, the
    /// guest's bookings and the reports (only when a booking was made).
    ///
    /// # Errors
    ///
    /// As [`crate::create_booking`].
    pub async fn create_booking(
        &self,
        db: &DatabaseConnection,
        request: &BookingRequest,
        today: NaiveDate,
    ) -> Result<BookingOutcome> {
        let outcome = crate::create_booking(db, request, today).await?;
        if outcome.created {
            self.booking_changed(
                outcome.booking.room_type_id,
                request.stay,
                outcome.booking.user_id,
                true,
            );
            self.settle().await;
        }
        Ok(outcome)
    }

    /// [`crate::cancel_booking`], then invalidates what the cancellation changed (nothing when
    /// the booking already was cancelled).
    ///
    /// # Errors
    ///
    /// As [`crate::cancel_booking`].
    pub async fn cancel_booking(
        &self,
        db: &DatabaseConnection,
        booking_id: i64,
    ) -> Result<CancelOutcome> {
        let outcome = crate::cancel_booking(db, booking_id).await?;
        if outcome.cancelled_now {
            let b = &outcome.booking;
            let stay = DateRange::new(b.start_date, b.end_date)?;
            self.booking_changed(b.room_type_id, stay, b.user_id, true);
            self.settle().await;
        }
        Ok(outcome)
    }

    /// [`crate::advance_booking`], then invalidates the guest's bookings and the reports
    /// (availability does not change: the rooms stay held).
    ///
    /// # Errors
    ///
    /// As [`crate::advance_booking`].
    pub async fn advance_booking(
        &self,
        db: &DatabaseConnection,
        booking_id: i64,
        to: entity::BookingStatus,
    ) -> Result<entity::booking::Model> {
        let booking = crate::advance_booking(db, booking_id, to).await?;
        let stay = DateRange::new(booking.start_date, booking.end_date)?;
        self.booking_changed(booking.room_type_id, stay, booking.user_id, false);
        self.settle().await;
        Ok(booking)
    }

    /// [`crate::update_inventory`], then invalidates the availability of those nights and the
    /// reports.
    ///
    /// # Errors
    ///
    /// As [`crate::update_inventory`].
    pub async fn update_inventory(
        &self,
        db: &DatabaseConnection,
        room_type_id: i64,
        range: DateRange,
        total_rooms: i32,
    ) -> Result<InventoryChange> {
        let change = crate::update_inventory(db, room_type_id, range, total_rooms).await?;
        self.nights_changed(room_type_id, range);
        self.cache.invalidate_tag(REPORTS_TAG);
        self.settle().await;
        Ok(change)
    }

    /// Drops every entry, in every instance sharing the Redis tier, before it returns (see
    /// the module's read-your-write guarantee); returns how many entries this instance held.
    pub async fn clear(&self) -> usize {
        let cleared = self.cache.invalidate_all();
        self.settle().await;
        cleared
    }

    /// Waits until this instance's invalidations reached Redis and the other instances, at
    /// most [`INVALIDATION_FLUSH`]. Redis being slow or down does not fail the write that
    /// made them.
    async fn settle(&self) {
        if !self.cache.flush_invalidations(INVALIDATION_FLUSH).await {
            tracing::warn!(
                "invalidations not yet applied to Redis; other instances may serve the old value until they are"
            );
        }
    }

    fn nights_changed(&self, room_type_id: i64, range: DateRange) {
        let mut tags = change_tags(&room_type_id.to_string(), range);
        tags.extend(change_tags("all", range));
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.cache.invalidate_tags(&tags);
    }

    fn booking_changed(&self, room_type_id: i64, stay: DateRange, user_id: i64, rooms_moved: bool) {
        if rooms_moved {
            self.nights_changed(room_type_id, stay);
        }
        self.cache
            .invalidate_tags(&[user_bookings_tag(user_id).as_str(), REPORTS_TAG]);
    }

    /// Start-up jobs that load the room types and tonight's availability (one room) into the
    /// cache, for [`QueryCache::prewarm`].
    pub fn prewarm_jobs(&self, db: &DatabaseConnection, today: NaiveDate) -> Vec<PrewarmJob> {
        let tonight = DateRange::night_of(today);
        let all_tags = all_availability_tags(tonight);
        let (db1, db2) = (db.clone(), db.clone());
        vec![
            PrewarmJob::new(
                "room-types",
                ttl::ROOM_TYPES,
                &[ROOM_TYPES_TAG],
                move || async move { crate::room_types(&db1).await },
            ),
            PrewarmJob::new(
                range_key("availability:all:", tonight, RoomCount::ONE),
                ttl::AVAILABILITY,
                &all_tags.iter().map(String::as_str).collect::<Vec<_>>(),
                move || async move { crate::all_availability(&db2, tonight, RoomCount::ONE).await },
            ),
        ]
    }
}

/// `report:{kind}:{start}:{end}:{room type or all}`.
fn report_key(kind: &str, range: DateRange, room_type_id: Option<i64>) -> String {
    let scope = room_type_id.map_or_else(|| "all".to_owned(), |id| id.to_string());
    format!("report:{kind}:{}:{}:{scope}", range.start(), range.end())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use entity::BookingStatus;

    use super::*;
    use crate::{GuestRef, NightInventory, RoomTypeOccupancy, RoomTypeRef, RoomTypeWithNight};

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, day).unwrap()
    }

    #[test]
    fn range_keys_are_what_format_writes() {
        let date = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        for (start, end) in [
            (d(1), d(2)),
            (date(2026, 12, 31), date(2027, 1, 9)),
            (date(1, 1, 1), date(1, 2, 3)),
            (date(999, 9, 9), date(1000, 10, 10)),
            (date(9999, 12, 30), date(9999, 12, 31)),
        ] {
            let range = DateRange::new(start, end).unwrap();
            for rooms in [1, 9, 10, 50] {
                let rooms = RoomCount::new(rooms).unwrap();
                assert_eq!(
                    range_key("availability:all:", range, rooms),
                    format!("availability:all:{start}:{end}:{}", rooms.get())
                );
            }
        }
    }

    /// Encodes with the type's shared codec and decodes again.
    fn round_trip<T: Cacheable + std::fmt::Debug + PartialEq>(value: &T) {
        let codec = T::shared_codec().expect("the type is shared");
        let bytes = codec.encode(value).unwrap();
        assert_eq!(&codec.decode(&bytes).unwrap(), value);
    }

    fn room_type(id: i64) -> RoomTypeSummary {
        RoomTypeSummary {
            id,
            name: format!("Deluxe {id}"),
            description: "Sea view, ünïcödé".into(),
            price_per_night: 12_345,
            total_rooms: 10,
        }
    }

    fn booking(with_refs: bool) -> BookingView {
        BookingView {
            id: 1,
            user_id: 2,
            room_type_id: 3,
            start_date: d(5),
            end_date: d(8),
            rooms_booked: 2,
            status: BookingStatus::CheckedIn,
            total_price: 74_070,
            deposit_amount: 7_407,
            is_deposit_paid: true,
            created_at: Utc.with_ymd_and_hms(2025, 12, 1, 8, 30, 0).unwrap(),
            updated_at: Utc.with_ymd_and_hms(2025, 12, 2, 9, 0, 1).unwrap(),
            room_type: with_refs.then(|| RoomTypeRef {
                id: 3,
                name: "Suite".into(),
                price_per_night: 12_345,
            }),
            guest: with_refs.then(|| GuestRef {
                id: 2,
                name: "Ada".into(),
                email: "ada@example.com".into(),
            }),
            payments: None,
        }
    }

    /// Every type the hotel caches crosses the shared tier unchanged, in its `Vec` form
    /// too; `flatten`, `try_from` and `skip_serializing_if` (which a non-self-describing
    /// format would break) round-trip.
    #[test]
    fn cached_types_round_trip_through_the_shared_codec() {
        round_trip(&room_type(1));
        round_trip(&vec![room_type(1), room_type(2)]);
        let availability = Availability {
            room_type_id: 7,
            start_date: d(1),
            end_date: d(3),
            rooms_needed: 2,
            available: false,
            min_available: 1,
        };
        round_trip(&availability);
        round_trip(&vec![availability.clone(), availability]);
        round_trip(&booking(true));
        round_trip(&vec![booking(false), booking(true)]);
        let statistics = BookingStatistics {
            start_date: d(1),
            end_date: d(31),
            room_type_id: None,
            total_bookings: 10,
            active_bookings: 9,
            revenue: 1_000_000,
            rooms: 12,
            room_nights: 30,
            average_value: 111_111,
            by_status: vec![crate::StatusBreakdown {
                status: BookingStatus::Cancelled,
                bookings: 1,
                value: 5,
                rooms: 1,
                room_nights: 2,
            }],
        };
        round_trip(&statistics);
        round_trip(&Occupancy {
            start_date: d(1),
            end_date: d(31),
            room_nights_sold: 7,
            room_nights_available: 30,
            rate: 7.0 / 30.0,
            by_room_type: vec![RoomTypeOccupancy {
                room_type_id: 1,
                name: "Twin".into(),
                room_nights_sold: 7,
                room_nights_available: 30,
                rate: 7.0 / 30.0,
            }],
        });

        // Not cached today, but the shapes the codec must carry if they are.
        let with_night = RoomTypeWithNight {
            room_type: room_type(4),
            inventory: Some(NightInventory {
                date: d(9),
                total_rooms: 10,
                available_rooms: 3,
            }),
        };
        let codec = SharedCodec::<RoomTypeWithNight>::msgpack("test/with-night", 1);
        assert_eq!(
            codec.decode(&codec.encode(&with_night).unwrap()).unwrap(),
            with_night
        );
        let range = DateRange::new(d(1), d(4)).unwrap();
        let codec = SharedCodec::<(DateRange, RoomCount)>::msgpack("test/range", 1);
        let value = (range, RoomCount::new(2).unwrap());
        assert_eq!(codec.decode(&codec.encode(&value).unwrap()).unwrap(), value);
    }

    #[test]
    fn cached_types_refuse_each_others_bytes() {
        let bytes = Availability::shared_codec()
            .unwrap()
            .encode(&Availability {
                room_type_id: 7,
                start_date: d(1),
                end_date: d(3),
                rooms_needed: 2,
                available: true,
                min_available: 4,
            })
            .unwrap();
        assert!(matches!(
            <Vec<Availability>>::shared_codec().unwrap().decode(&bytes),
            Err(query_cache::Error::SchemaMismatch { .. })
        ));
        assert!(matches!(
            BookingView::shared_codec().unwrap().decode(&bytes),
            Err(query_cache::Error::SchemaMismatch { .. })
        ));
    }

    #[test]
    fn short_ranges_are_tagged_by_night_long_ones_by_month() {
        let short = DateRange::new(d(30), d(31) + chrono::Duration::days(2)).unwrap();
        assert_eq!(
            range_tags("7", short),
            [
                "avail:7:2026-01-30",
                "avail:7:2026-01-31",
                "avail:7:2026-02-01"
            ]
        );
        let long = DateRange::new(d(1), d(1) + chrono::Duration::days(40)).unwrap();
        assert_eq!(
            range_tags("all", long),
            ["avail:all:2026-01", "avail:all:2026-02"]
        );
        // A change hits both the nights and their months.
        assert_eq!(
            change_tags("7", DateRange::night_of(d(5))),
            ["avail:7:2026-01-05", "avail:7:2026-01"]
        );
    }
}
