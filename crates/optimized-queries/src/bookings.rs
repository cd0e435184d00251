//! Bookings with their room type, guest and payments, in a fixed number of statements.

use std::collections::HashMap;

use entity::{BookingStatus, booking, payment, prelude::*, room_type, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Select, Statement,
};
use serde::{Deserialize, Serialize};

use crate::{
    DateRange, Error, Result,
    json::{self, JsonSql},
    rooms::Document,
    sql::statement,
    views::{BookingView, GuestRef, PaymentView, RoomTypeRef},
};

/// The most bookings one call returns.
pub const MAX_BOOKINGS_PER_PAGE: u64 = 1_000;
/// The most ids [`bookings_by_ids`] takes at once.
pub const MAX_IDS: usize = 500;

/// Options of [`user_bookings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserBookingsQuery {
    /// Only bookings in this status.
    pub status: Option<BookingStatus>,
    /// At most this many (1 to [`MAX_BOOKINGS_PER_PAGE`]).
    pub limit: u64,
    /// Load each booking's payments too (one more statement).
    pub include_payments: bool,
}

impl Default for UserBookingsQuery {
    fn default() -> Self {
        Self {
            status: None,
            limit: 50,
            include_payments: false,
        }
    }
}

/// Options of [`bookings_in_range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingsInRangeQuery {
    /// Bookings with at least one night in this range.
    pub range: DateRange,
    /// Only this room type.
    pub room_type_id: Option<i64>,
    /// Only this status.
    pub status: Option<BookingStatus>,
    /// Load each booking's guest too (in the same statement).
    pub include_guest: bool,
    /// At most this many (1 to [`MAX_BOOKINGS_PER_PAGE`]).
    pub limit: u64,
    /// Skip this many first.
    pub offset: u64,
}

impl BookingsInRangeQuery {
    /// The first 100 bookings overlapping `range`, without the guests.
    pub fn new(range: DateRange) -> Self {
        Self {
            range,
            room_type_id: None,
            status: None,
            include_guest: false,
            limit: 100,
            offset: 0,
        }
    }
}

fn check_limit(limit: u64) -> Result<u64> {
    if limit == 0 || limit > MAX_BOOKINGS_PER_PAGE {
        return Err(Error::InvalidInput(format!(
            "limit must be between 1 and {MAX_BOOKINGS_PER_PAGE}, not {limit}"
        )));
    }
    Ok(limit)
}

fn room_type_ref(room_type: room_type::Model) -> RoomTypeRef {
    RoomTypeRef {
        id: room_type.id,
        name: room_type.name,
        price_per_night: room_type.price_per_night,
    }
}

fn guest_ref(user: user::Model) -> GuestRef {
    GuestRef {
        id: user.id,
        name: user.name,
        email: user.email,
    }
}

fn view(
    booking: booking::Model,
    room_type: Option<room_type::Model>,
    guest: Option<user::Model>,
) -> BookingView {
    let mut view = BookingView::from(booking);
    view.room_type = room_type.map(room_type_ref);
    view.guest = guest.map(guest_ref);
    view
}

/// Loads the payments of `views` with one `IN` statement and attaches them.
async fn attach_payments(db: &impl ConnectionTrait, views: &mut [BookingView]) -> Result<()> {
    if views.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = views.iter().map(|v| v.id).collect();
    let payments = payments_select(ids).all(db).await?;
    let mut by_booking: HashMap<i64, Vec<PaymentView>> = HashMap::new();
    for payment in payments {
        by_booking
            .entry(payment.booking_id)
            .or_default()
            .push(payment.into());
    }
    for view in views {
        view.payments = Some(by_booking.remove(&view.id).unwrap_or_default());
    }
    Ok(())
}

/// A user's bookings with their room type (and payments), newest first. One statement, folded
/// into one JSON row (see the `json` module).
///
/// # Errors
///
/// [`Error::InvalidInput`] for a limit out of range, [`Error::Database`] when the query fails.
pub async fn user_bookings(
    db: &impl ConnectionTrait,
    user_id: i64,
    query: UserBookingsQuery,
) -> Result<Vec<BookingView>> {
    check_limit(query.limit)?;
    match Document::find_by_statement(user_bookings_statement(db, user_id, query))
        .one(db)
        .await?
    {
        Some(row) => json::parse(&row.document),
        None => Ok(Vec::new()),
    }
}

/// The guest's page of bookings, with room type and (optionally) payments nested, as one JSON
/// document.
pub(crate) fn user_bookings_statement(
    db: &impl ConnectionTrait,
    user_id: i64,
    query: UserBookingsQuery,
) -> Statement {
    let json = JsonSql(db.get_database_backend());
    let room_type = json.object(&[
        ("id", "r.id".to_owned()),
        ("name", "r.name".to_owned()),
        ("pricePerNight", "r.price_per_night".to_owned()),
    ]);
    let mut booking: Vec<(&str, String)> = [
        ("id", "b.id"),
        ("userId", "b.user_id"),
        ("roomTypeId", "b.room_type_id"),
        ("startDate", "b.start_date"),
        ("endDate", "b.end_date"),
        ("roomsBooked", "b.rooms_booked"),
        ("status", "b.status"),
        ("totalPrice", "b.total_price"),
        ("depositAmount", "b.deposit_amount"),
        ("createdAt", "b.created_at"),
        ("updatedAt", "b.updated_at"),
    ]
    .into_iter()
    .map(|(key, column)| (key, column.to_owned()))
    .collect();
    booking.push(("isDepositPaid", json.boolean("b.is_deposit_paid")));
    booking.push(("roomType", room_type));
    if query.include_payments {
        let payment = json.object(&[
            ("id", "p.id".to_owned()),
            ("amount", "p.amount".to_owned()),
            ("status", "p.status".to_owned()),
            ("provider", "p.provider".to_owned()),
            ("paidAt", "p.paid_at".to_owned()),
            ("createdAt", "p.created_at".to_owned()),
        ]);
        let payments = format!(
            "SELECT {} FROM payments p WHERE p.booking_id = b.id",
            json.array(&payment, "p.id")
        );
        booking.push(("payments", json.nested(&payments)));
    }
    let mut values: Vec<sea_orm::Value> = vec![user_id.into()];
    let status_filter = match query.status {
        Some(status) => {
            values.push(status.into());
            " AND b.status = $2"
        }
        None => "",
    };
    values.push((query.limit as i64).into());
    let limit = values.len();
    statement(
        db,
        format!(
            "SELECT {} AS document FROM (SELECT b.id, b.created_at, {} AS x \
             FROM bookings b JOIN room_types r ON r.id = b.room_type_id \
             WHERE b.user_id = $1{status_filter} ORDER BY b.created_at DESC, b.id DESC LIMIT ${limit}) page",
            json.text(&json.array_of_column("page.x", "page.created_at DESC, page.id DESC")),
            json.object(&booking),
        ),
        values,
    )
}

pub(crate) fn payments_select(booking_ids: Vec<i64>) -> Select<Payment> {
    Payment::find()
        .filter(payment::Column::BookingId.is_in(booking_ids))
        .order_by_asc(payment::Column::Id)
}

/// Bookings with at least one night in the range (the admin view), by first night then id, with
/// their room type and optionally their guest. One statement.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a limit out of range, [`Error::Database`] when the query fails.
pub async fn bookings_in_range(
    db: &impl ConnectionTrait,
    query: BookingsInRangeQuery,
) -> Result<Vec<BookingView>> {
    check_limit(query.limit)?;
    let select = bookings_in_range_select(query);
    let views = if query.include_guest {
        select
            .find_also_related(RoomType)
            .find_also_related(User)
            .all(db)
            .await?
            .into_iter()
            .map(|(b, rt, u)| view(b, rt, u))
            .collect()
    } else {
        select
            .find_also_related(RoomType)
            .all(db)
            .await?
            .into_iter()
            .map(|(b, rt)| view(b, rt, None))
            .collect()
    };
    Ok(views)
}

pub(crate) fn bookings_in_range_select(query: BookingsInRangeQuery) -> Select<Booking> {
    let mut select = Booking::find()
        .filter(booking::Column::StartDate.lt(query.range.end()))
        .filter(booking::Column::EndDate.gt(query.range.start()));
    if let Some(room_type_id) = query.room_type_id {
        select = select.filter(booking::Column::RoomTypeId.eq(room_type_id));
    }
    if let Some(status) = query.status {
        select = select.filter(booking::Column::Status.eq(status));
    }
    select
        .order_by_asc(booking::Column::StartDate)
        .order_by_asc(booking::Column::Id)
        .limit(query.limit)
        .offset(query.offset)
}

/// One booking with its guest, room type and payments. Two statements.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown booking, [`Error::Database`] when a query fails.
pub async fn booking_details(db: &impl ConnectionTrait, booking_id: i64) -> Result<BookingView> {
    let (booking, room_type, guest) = Booking::find_by_id(booking_id)
        .find_also_related(RoomType)
        .find_also_related(User)
        .one(db)
        .await?
        .ok_or(Error::NotFound {
            what: "booking",
            id: booking_id,
        })?;
    let mut views = [view(booking, room_type, guest)];
    attach_payments(db, &mut views).await?;
    let [view] = views;
    Ok(view)
}

/// The bookings with these ids, in the order given (unknown ids are left out), with room type
/// and guest. One statement.
///
/// # Errors
///
/// [`Error::InvalidInput`] for more than [`MAX_IDS`] ids, [`Error::Database`] when the query
/// fails.
pub async fn bookings_by_ids(db: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<BookingView>> {
    if ids.len() > MAX_IDS {
        return Err(Error::InvalidInput(format!(
            "at most {MAX_IDS} ids at once, not {}",
            ids.len()
        )));
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = Booking::find()
        .filter(booking::Column::Id.is_in(ids.iter().copied()))
        .find_also_related(RoomType)
        .find_also_related(User)
        .all(db)
        .await?;
    let mut by_id: HashMap<i64, BookingView> = rows
        .into_iter()
        .map(|(b, rt, u)| (b.id, view(b, rt, u)))
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}
