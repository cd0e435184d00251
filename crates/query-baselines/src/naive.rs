//! The naive versions the original system replaced: a query per row for its relations, rows
//! loaded into memory to be filtered and summed, one availability query per room type.
//!
//! They exist only so benchmarks and the performance table measure the improvement instead of
//! claiming it. They answer the same as the optimized helpers (the original's counting bugs are
//! fixed here too, so the two can be checked against each other); only the way differs.
//! Do not call them from a service.

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use entity::{BookingStatus, booking, payment, prelude::*, room_inventory, room_type};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, NotSet,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use optimized_queries::{
    Availability, BookingOutcome, BookingRequest, BookingStatistics, BookingView, DEPOSIT_PERCENT,
    DateRange, Error, NightInventory, Occupancy, PaymentView, Result, RoomCount, RoomTypeOccupancy,
    RoomTypeRef, RoomTypeSummary, RoomTypeWithNight, StatusBreakdown, UserBookingsQuery,
};

fn summary(rt: &room_type::Model) -> RoomTypeSummary {
    RoomTypeSummary {
        id: rt.id,
        name: rt.name.clone(),
        description: rt.description.clone(),
        price_per_night: rt.price_per_night,
        total_rooms: rt.total_rooms,
    }
}

/// Room types, then one query per room type for its night: 1 + N statements.
///
/// # Errors
///
/// [`Error::Database`] when a query fails.
pub async fn room_types_on(
    db: &DatabaseConnection,
    date: NaiveDate,
) -> Result<Vec<RoomTypeWithNight>> {
    let mut result = Vec::new();
    for rt in RoomType::find()
        .order_by_asc(room_type::Column::Id)
        .all(db)
        .await?
    {
        let night = RoomInventory::find()
            .filter(room_inventory::Column::RoomTypeId.eq(rt.id))
            .filter(room_inventory::Column::Date.eq(date))
            .one(db)
            .await?;
        result.push(RoomTypeWithNight {
            room_type: summary(&rt),
            inventory: night.map(|n| NightInventory {
                date: n.date,
                total_rooms: n.total_rooms,
                available_rooms: n.available_rooms,
            }),
        });
    }
    Ok(result)
}

/// Every room type with every column: 1 statement, but whole rows.
///
/// # Errors
///
/// [`Error::Database`] when the query fails.
pub async fn room_types(db: &DatabaseConnection) -> Result<Vec<RoomTypeSummary>> {
    Ok(RoomType::find()
        .all(db)
        .await?
        .iter()
        .map(summary)
        .collect())
}

/// Loads the room type and its nights, then computes in memory: 2 statements and every row.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown room type, [`Error::Database`] when a query fails.
pub async fn availability(
    db: &DatabaseConnection,
    room_type_id: i64,
    range: DateRange,
    rooms: RoomCount,
) -> Result<Availability> {
    if RoomType::find_by_id(room_type_id).one(db).await?.is_none() {
        return Err(Error::NotFound {
            what: "room type",
            id: room_type_id,
        });
    }
    let nights = RoomInventory::find()
        .filter(room_inventory::Column::RoomTypeId.eq(room_type_id))
        .all(db)
        .await?;
    let in_range: Vec<_> = nights
        .into_iter()
        .filter(|n| range.contains(n.date))
        .collect();
    Ok(Availability::from_inventory(
        room_type_id,
        range,
        rooms,
        in_range.len() as i64,
        in_range.iter().map(|n| i64::from(n.available_rooms)).min(),
    ))
}

/// One availability check per room type: 1 + 2N statements.
///
/// # Errors
///
/// [`Error::Database`] when a query fails.
pub async fn all_availability(
    db: &DatabaseConnection,
    range: DateRange,
    rooms: RoomCount,
) -> Result<Vec<Availability>> {
    let mut result = Vec::new();
    for rt in RoomType::find()
        .order_by_asc(room_type::Column::Id)
        .all(db)
        .await?
    {
        result.push(availability(db, rt.id, range, rooms).await?);
    }
    Ok(result)
}

/// The user's bookings, then a query per booking for its room type and one for its payments:
/// 1 + N (+ N) statements.
///
/// # Errors
///
/// [`Error::Database`] when a query fails.
pub async fn user_bookings(
    db: &DatabaseConnection,
    user_id: i64,
    query: UserBookingsQuery,
) -> Result<Vec<BookingView>> {
    let mut select = Booking::find().filter(booking::Column::UserId.eq(user_id));
    if let Some(status) = query.status {
        select = select.filter(booking::Column::Status.eq(status));
    }
    let bookings = select
        .order_by_desc(booking::Column::CreatedAt)
        .order_by_desc(booking::Column::Id)
        .limit(query.limit)
        .all(db)
        .await?;
    let mut views = Vec::with_capacity(bookings.len());
    for b in bookings {
        let room_type = RoomType::find_by_id(b.room_type_id).one(db).await?;
        let payments = if query.include_payments {
            Some(
                Payment::find()
                    .filter(payment::Column::BookingId.eq(b.id))
                    .order_by_asc(payment::Column::Id)
                    .all(db)
                    .await?
                    .into_iter()
                    .map(PaymentView::from)
                    .collect(),
            )
        } else {
            None
        };
        let mut view = BookingView::from(b);
        view.room_type = room_type.map(|rt| RoomTypeRef {
            id: rt.id,
            name: rt.name,
            price_per_night: rt.price_per_night,
        });
        view.payments = payments;
        views.push(view);
    }
    Ok(views)
}

/// Reads each night, checks it, updates each night, inserts the booking: 2 + 2N statements in a
/// plain transaction.
///
/// # Errors
///
/// As [`optimized_queries::create_booking`], without the idempotency handling.
pub async fn create_booking(
    db: &DatabaseConnection,
    request: &BookingRequest,
) -> Result<BookingOutcome> {
    let txn = db.begin().await?;
    let rt = RoomType::find_by_id(request.room_type_id)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound {
            what: "room type",
            id: request.room_type_id,
        })?;
    let rooms = request.rooms.get();
    let mut nights = Vec::new();
    for date in request.stay.iter_nights() {
        let night = RoomInventory::find()
            .filter(room_inventory::Column::RoomTypeId.eq(rt.id))
            .filter(room_inventory::Column::Date.eq(date))
            .one(&txn)
            .await?;
        match night {
            Some(n) if n.available_rooms >= rooms => nights.push(n),
            other => {
                return Err(Error::NotAvailable {
                    room_type_id: rt.id,
                    night: date,
                    available: other.map_or(0, |n| n.available_rooms),
                    requested: rooms,
                });
            }
        }
    }
    for night in nights {
        let available = night.available_rooms - rooms;
        let mut active: room_inventory::ActiveModel = night.into();
        active.available_rooms = Set(available);
        active.update(&txn).await?;
    }
    let total_price = rt.price_per_night * request.stay.nights() * i64::from(rooms);
    let now = Utc::now();
    let booking = booking::ActiveModel {
        id: NotSet,
        user_id: Set(request.user_id),
        room_type_id: Set(rt.id),
        start_date: Set(request.stay.start()),
        end_date: Set(request.stay.end()),
        rooms_booked: Set(rooms),
        status: Set(BookingStatus::Provisional),
        total_price: Set(total_price),
        deposit_amount: Set(total_price * DEPOSIT_PERCENT / 100),
        is_deposit_paid: Set(false),
        idempotency_key: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    add_to_daily_stats(&txn, &booking).await?;
    txn.commit().await?;
    Ok(BookingOutcome {
        booking,
        created: true,
    })
}

/// Loads every booking arriving in the range and sums in memory.
///
/// # Errors
///
/// [`Error::Database`] when the query fails.
pub async fn booking_statistics(
    db: &DatabaseConnection,
    range: DateRange,
    room_type_id: Option<i64>,
) -> Result<BookingStatistics> {
    let mut select = Booking::find()
        .filter(booking::Column::StartDate.gte(range.start()))
        .filter(booking::Column::StartDate.lt(range.end()));
    if let Some(id) = room_type_id {
        select = select.filter(booking::Column::RoomTypeId.eq(id));
    }
    let bookings = select.all(db).await?;
    let mut by_status: HashMap<BookingStatus, StatusBreakdown> = HashMap::new();
    for b in &bookings {
        let entry = by_status.entry(b.status).or_insert(StatusBreakdown {
            status: b.status,
            bookings: 0,
            value: 0,
            rooms: 0,
            room_nights: 0,
        });
        entry.bookings += 1;
        entry.value += b.total_price;
        entry.rooms += i64::from(b.rooms_booked);
        entry.room_nights += i64::from(b.rooms_booked) * b.nights();
    }
    let mut by_status: Vec<StatusBreakdown> = by_status.into_values().collect();
    by_status.sort_by_key(|b| status_order(b.status));
    let active: Vec<&StatusBreakdown> = by_status
        .iter()
        .filter(|b| b.status.holds_rooms())
        .collect();
    let active_bookings: i64 = active.iter().map(|b| b.bookings).sum();
    let revenue: i64 = active.iter().map(|b| b.value).sum();
    Ok(BookingStatistics {
        start_date: range.start(),
        end_date: range.end(),
        room_type_id,
        total_bookings: bookings.len() as i64,
        active_bookings,
        revenue,
        rooms: active.iter().map(|b| b.rooms).sum(),
        room_nights: active.iter().map(|b| b.room_nights).sum(),
        average_value: if active_bookings > 0 {
            revenue / active_bookings
        } else {
            0
        },
        by_status,
    })
}

fn status_order(status: BookingStatus) -> usize {
    use sea_orm::Iterable;
    BookingStatus::iter()
        .position(|s| s == status)
        .unwrap_or(usize::MAX)
}

/// Loads every booking overlapping the range and every night of inventory, and counts in
/// memory.
///
/// # Errors
///
/// [`Error::Database`] when a query fails.
pub async fn occupancy(
    db: &DatabaseConnection,
    range: DateRange,
    room_type_id: Option<i64>,
) -> Result<Occupancy> {
    let mut room_types = RoomType::find().order_by_asc(room_type::Column::Id);
    let mut bookings = Booking::find()
        .filter(booking::Column::StartDate.lt(range.end()))
        .filter(booking::Column::EndDate.gt(range.start()))
        .filter(booking::Column::Status.ne(BookingStatus::Cancelled));
    let mut nights = RoomInventory::find()
        .filter(room_inventory::Column::Date.gte(range.start()))
        .filter(room_inventory::Column::Date.lt(range.end()));
    if let Some(id) = room_type_id {
        room_types = room_types.filter(room_type::Column::Id.eq(id));
        bookings = bookings.filter(booking::Column::RoomTypeId.eq(id));
        nights = nights.filter(room_inventory::Column::RoomTypeId.eq(id));
    }
    let mut sold: HashMap<i64, i64> = HashMap::new();
    for b in bookings.all(db).await? {
        let first = b.start_date.max(range.start());
        let end = b.end_date.min(range.end());
        *sold.entry(b.room_type_id).or_default() +=
            (end - first).num_days() * i64::from(b.rooms_booked);
    }
    let mut available: HashMap<i64, i64> = HashMap::new();
    for n in nights.all(db).await? {
        *available.entry(n.room_type_id).or_default() += i64::from(n.total_rooms);
    }
    let rate = |s: i64, a: i64| if a > 0 { s as f64 / a as f64 } else { 0.0 };
    let by_room_type: Vec<RoomTypeOccupancy> = room_types
        .all(db)
        .await?
        .into_iter()
        .map(|rt| {
            let (s, a) = (
                sold.get(&rt.id).copied().unwrap_or(0),
                available.get(&rt.id).copied().unwrap_or(0),
            );
            RoomTypeOccupancy {
                room_type_id: rt.id,
                name: rt.name,
                room_nights_sold: s,
                room_nights_available: a,
                rate: rate(s, a),
            }
        })
        .collect();
    let s = by_room_type.iter().map(|r| r.room_nights_sold).sum();
    let a = by_room_type.iter().map(|r| r.room_nights_available).sum();
    Ok(Occupancy {
        start_date: range.start(),
        end_date: range.end(),
        room_nights_sold: s,
        room_nights_available: a,
        rate: rate(s, a),
        by_room_type,
    })
}

/// Adds a new booking to its day's `booking_daily_stats` row in one upsert, as the optimized
/// writes do, so that the reports read the same rollups whichever path booked.
async fn add_to_daily_stats(
    conn: &impl sea_orm::ConnectionTrait,
    booking: &booking::Model,
) -> Result<()> {
    use entity::booking_daily_stats::{ActiveModel, Column, Entity};
    use sea_orm::{
        ExprTrait,
        sea_query::{Alias, Expr, OnConflict},
    };

    let rooms = i64::from(booking.rooms_booked);
    let row = ActiveModel {
        arrival_date: Set(booking.start_date),
        room_type_id: Set(booking.room_type_id),
        status: Set(booking.status),
        bookings: Set(1),
        rooms: Set(rooms),
        room_nights: Set(rooms * booking.nights()),
        revenue: Set(booking.total_price),
    };
    // Each counter grows by what the new row brings (`excluded`), never overwritten.
    let add = |column: Column| {
        (
            column,
            Expr::col((Entity, column)).add(Expr::col((Alias::new("excluded"), column))),
        )
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::ArrivalDate, Column::RoomTypeId, Column::Status])
                .values([
                    add(Column::Bookings),
                    add(Column::Rooms),
                    add(Column::RoomNights),
                    add(Column::Revenue),
                ])
                .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}
