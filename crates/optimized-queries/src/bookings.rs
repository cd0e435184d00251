//! Bookings with their room type, guest and payments, in a fixed number of statements.

use std::collections::HashMap;

use entity::{BookingStatus, booking, payment, prelude::*, room_type, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    Statement,
};
use serde::{Deserialize, Serialize};

use crate::{
    DateRange, Error, Result,
    columns::{Decode, Row},
    executor::{self, Cost},
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
    let select = payments_select(ids);
    let payments = db_connect::retry_on_lost_connection(|| select.clone().all(db)).await?;
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

/// A user's bookings with their room type (and payments), newest first. One statement: the page
/// of bookings joined to its room types and, when asked, its payments, one row per payment (see
/// the crate docs for the plans measured against it).
///
/// # Errors
///
/// [`Error::InvalidInput`] for a limit out of range, [`Error::Database`] when the query fails.
pub async fn user_bookings(
    db: &(impl ConnectionTrait + 'static),
    user_id: i64,
    query: UserBookingsQuery,
) -> Result<Vec<BookingView>> {
    check_limit(query.limit)?;
    // A page of up to 50 is a few dozen rows; a page of 1 000 with payments, thousands.
    let cost = if query.limit > 100 {
        Cost::Long
    } else {
        Cost::Short
    };
    let statement = user_bookings_statement(db, user_id, query);
    if query.include_payments {
        let rows: Vec<BookingPaymentRow> = executor::query_all(db, statement, cost).await?;
        Ok(fold_payments(rows))
    } else {
        let rows: Vec<BookingRow> = executor::query_all(db, statement, cost).await?;
        Ok(rows.into_iter().map(|row| row.0).collect())
    }
}

/// Columns of a booking with its room type, in the order [`BookingRow`] reads them.
const BOOKING_WITH_ROOM_TYPE: &str = "b.id, b.user_id, b.room_type_id, b.start_date, b.end_date, \
     b.rooms_booked, b.status, b.total_price, b.deposit_amount, b.is_deposit_paid, b.created_at, \
     b.updated_at, r.name, r.price_per_night";

/// A booking with its room type: the 14 columns of [`BOOKING_WITH_ROOM_TYPE`].
struct BookingRow(BookingView);

impl Decode for BookingRow {
    fn decode(row: &impl Row) -> Result<Self> {
        let room_type_id = row.get(2)?;
        Ok(Self(BookingView {
            id: row.get(0)?,
            user_id: row.get(1)?,
            room_type_id,
            start_date: row.get(3)?,
            end_date: row.get(4)?,
            rooms_booked: row.get(5)?,
            status: row.get(6)?,
            total_price: row.get(7)?,
            deposit_amount: row.get(8)?,
            is_deposit_paid: row.get(9)?,
            created_at: row.get(10)?,
            updated_at: row.get(11)?,
            room_type: Some(RoomTypeRef {
                id: room_type_id,
                name: row.get(12)?,
                price_per_night: row.get(13)?,
            }),
            guest: None,
            payments: None,
        }))
    }
}

/// A booking with its room type and one of its payments (`None`: it has none), from the six
/// payment columns after [`BOOKING_WITH_ROOM_TYPE`].
struct BookingPaymentRow(BookingView, Option<PaymentView>);

impl Decode for BookingPaymentRow {
    fn decode(row: &impl Row) -> Result<Self> {
        let BookingRow(booking) = BookingRow::decode(row)?;
        let payment = match row.get::<Option<i64>>(14)? {
            Some(id) => Some(PaymentView {
                id,
                amount: row.get(15)?,
                status: row.get(16)?,
                provider: row.get(17)?,
                paid_at: row.get(18)?,
                created_at: row.get(19)?,
            }),
            None => None,
        };
        Ok(Self(booking, payment))
    }
}

/// One view per booking, in row order, with the payments of its consecutive rows.
fn fold_payments(rows: Vec<BookingPaymentRow>) -> Vec<BookingView> {
    let mut views: Vec<BookingView> = Vec::with_capacity(rows.len());
    for BookingPaymentRow(booking, payment) in rows {
        match views.last_mut() {
            Some(last) if last.id == booking.id => {}
            _ => views.push(BookingView {
                payments: Some(Vec::new()),
                ..booking
            }),
        }
        if let (Some(payment), Some(last)) = (payment, views.last_mut()) {
            last.payments.get_or_insert_with(Vec::new).push(payment);
        }
    }
    views
}

/// The guest's page of bookings joined to room types (and payments): the page is chosen first
/// (`LIMIT` counts bookings, not payments), then joined.
pub(crate) fn user_bookings_statement(
    db: &impl ConnectionTrait,
    user_id: i64,
    query: UserBookingsQuery,
) -> Statement {
    let mut values: Vec<sea_orm::Value> = vec![user_id.into()];
    let status_filter = match query.status {
        Some(status) => {
            values.push(status.into());
            " AND status = $2"
        }
        None => "",
    };
    // The limit is written into the statement, not bound: with `LIMIT ?` SQLite 3.51 runs the
    // same plan 1.9 times slower (123 against 66 µs for a guest's page with payments on the
    // medium dataset, rusqlite, cached statements; see the crate docs). It is an integer
    // checked by `check_limit`, so nothing a caller sends reaches the SQL text, and a handful
    // of page sizes in use keep a handful of cached statements.
    let limit = query.limit;
    let (payment_columns, payments_join, payment_order) = if query.include_payments {
        (
            ", p.id, p.amount, p.status, p.provider, p.paid_at, p.created_at",
            " LEFT JOIN payments p ON p.booking_id = b.id",
            ", p.id",
        )
    } else {
        ("", "", "")
    };
    statement(
        db,
        format!(
            "SELECT {BOOKING_WITH_ROOM_TYPE}{payment_columns} \
             FROM (SELECT * FROM bookings WHERE user_id = $1{status_filter} \
             ORDER BY created_at DESC, id DESC LIMIT {limit}) b \
             JOIN room_types r ON r.id = b.room_type_id{payments_join} \
             ORDER BY b.created_at DESC, b.id DESC{payment_order}"
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
        let select = select.find_also_related(RoomType).find_also_related(User);
        db_connect::retry_on_lost_connection(|| select.clone().all(db))
            .await?
            .into_iter()
            .map(|(b, rt, u)| view(b, rt, u))
            .collect()
    } else {
        let select = select.find_also_related(RoomType);
        db_connect::retry_on_lost_connection(|| select.clone().all(db))
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
    let select = Booking::find_by_id(booking_id)
        .find_also_related(RoomType)
        .find_also_related(User);
    let (booking, room_type, guest) =
        db_connect::retry_on_lost_connection(|| select.clone().one(db))
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
    let select = Booking::find()
        .filter(booking::Column::Id.is_in(ids.iter().copied()))
        .find_also_related(RoomType)
        .find_also_related(User);
    let rows = db_connect::retry_on_lost_connection(|| select.clone().all(db)).await?;
    let mut by_id: HashMap<i64, BookingView> = rows
        .into_iter()
        .map(|(b, rt, u)| (b.id, view(b, rt, u)))
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}
