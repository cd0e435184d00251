//! What the read helpers return. Every type serialises to camelCase JSON and back, so results
//! can be cached, sent to clients, and stored in a shared cache tier.

use chrono::{DateTime, NaiveDate, Utc};
use entity::{BookingStatus, PaymentStatus, booking, payment};
use sea_orm::{FromQueryResult, Iterable};
use serde::{Deserialize, Serialize};

use crate::{DateRange, RoomCount};

/// A room type as guests see it. Read from `id, name, description, price_per_night,
/// total_rooms`, in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomTypeSummary {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Price of one room for one night, in minor units.
    pub price_per_night: i64,
    /// Rooms of this type the hotel has.
    pub total_rooms: i32,
}

// By position: the derive looks each column up by name, building the name's string first, which
// costs more than the rest of decoding a room type.
impl FromQueryResult for RoomTypeSummary {
    fn from_query_result(
        row: &sea_orm::QueryResult,
        _prefix: &str,
    ) -> Result<Self, sea_orm::DbErr> {
        Ok(Self {
            id: row.try_get_by_index(0)?,
            name: row.try_get_by_index(1)?,
            description: row.try_get_by_index(2)?,
            price_per_night: row.try_get_by_index(3)?,
            total_rooms: row.try_get_by_index(4)?,
        })
    }
}

/// One night of one room type's inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NightInventory {
    /// The night.
    pub date: NaiveDate,
    /// Rooms in service that night.
    pub total_rooms: i32,
    /// Rooms free that night.
    pub available_rooms: i32,
}

/// A room type with its inventory on one night, if it has any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomTypeWithNight {
    /// The room type.
    #[serde(flatten)]
    pub room_type: RoomTypeSummary,
    /// Its inventory that night (`None`: no inventory row, so nothing to book).
    pub inventory: Option<NightInventory>,
}

/// A room type with its inventory over a range of nights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomTypeCalendar {
    /// The room type.
    pub room_type: RoomTypeSummary,
    /// The nights of the range that have inventory, in date order.
    pub nights: Vec<NightInventory>,
}

/// Whether a room type has `rooms_needed` rooms free on every night of a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    /// The room type.
    pub room_type_id: i64,
    /// The first night.
    pub start_date: NaiveDate,
    /// The check-out day.
    pub end_date: NaiveDate,
    /// Rooms asked for.
    pub rooms_needed: i32,
    /// Whether every night has at least `rooms_needed` free rooms.
    pub available: bool,
    /// The fewest free rooms on any night of the range; a night without inventory counts as 0.
    pub min_available: i32,
}

impl Availability {
    /// The answer for `rooms` of `room_type_id` over `range`, from how many nights of the range
    /// have inventory and the fewest free rooms on one of them (`None` without inventory).
    ///
    /// A night without inventory has no rooms to sell, so then `min_available` is 0.
    #[must_use]
    pub fn from_inventory(
        room_type_id: i64,
        range: DateRange,
        rooms: RoomCount,
        nights_with_inventory: i64,
        min_available: Option<i64>,
    ) -> Self {
        let min_available = if nights_with_inventory < range.nights() {
            0
        } else {
            min_available.unwrap_or(0) as i32
        };
        Self {
            room_type_id,
            start_date: range.start(),
            end_date: range.end(),
            rooms_needed: rooms.get(),
            available: min_available >= rooms.get(),
            min_available,
        }
    }
}

/// The room type a booking is for, as shown with the booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomTypeRef {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Price of one room for one night, in minor units.
    pub price_per_night: i64,
}

/// The guest of a booking, as shown to administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GuestRef {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

/// A payment, as shown with its booking. Never cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// Id.
    pub id: i64,
    /// Amount in minor units.
    pub amount: i64,
    /// Status.
    pub status: PaymentStatus,
    /// Provider name.
    pub provider: String,
    /// When it settled.
    pub paid_at: Option<DateTime<Utc>>,
    /// When it was initiated.
    pub created_at: DateTime<Utc>,
}

impl From<payment::Model> for PaymentView {
    fn from(p: payment::Model) -> Self {
        Self {
            id: p.id,
            amount: p.amount,
            status: p.status,
            provider: p.provider,
            paid_at: p.paid_at,
            created_at: p.created_at,
        }
    }
}

/// A booking with what the asking helper loaded alongside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BookingView {
    /// Id.
    pub id: i64,
    /// The guest's id.
    pub user_id: i64,
    /// The room type's id.
    pub room_type_id: i64,
    /// The first night.
    pub start_date: NaiveDate,
    /// The check-out day.
    pub end_date: NaiveDate,
    /// Rooms each night.
    pub rooms_booked: i32,
    /// Status.
    pub status: BookingStatus,
    /// Price of the stay, in minor units.
    pub total_price: i64,
    /// Deposit asked for, in minor units.
    pub deposit_amount: i64,
    /// Whether the deposit is paid.
    pub is_deposit_paid: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The room type, when loaded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub room_type: Option<RoomTypeRef>,
    /// The guest, when loaded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub guest: Option<GuestRef>,
    /// The payments, when loaded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payments: Option<Vec<PaymentView>>,
}

impl From<booking::Model> for BookingView {
    fn from(b: booking::Model) -> Self {
        Self {
            id: b.id,
            user_id: b.user_id,
            room_type_id: b.room_type_id,
            start_date: b.start_date,
            end_date: b.end_date,
            rooms_booked: b.rooms_booked,
            status: b.status,
            total_price: b.total_price,
            deposit_amount: b.deposit_amount,
            is_deposit_paid: b.is_deposit_paid,
            created_at: b.created_at,
            updated_at: b.updated_at,
            room_type: None,
            guest: None,
            payments: None,
        }
    }
}

/// Bookings of one status within a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StatusBreakdown {
    /// The status.
    pub status: BookingStatus,
    /// How many bookings.
    pub bookings: i64,
    /// Sum of their prices, in minor units.
    pub value: i64,
    /// Rooms they hold (each once, whatever the nights).
    pub rooms: i64,
    /// Rooms times nights.
    pub room_nights: i64,
}

/// Bookings arriving within a range, summed.
///
/// Revenue, rooms and the average count every booking but the cancelled ones; the breakdown
/// lists every status that has bookings, cancelled included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BookingStatistics {
    /// First arrival date counted.
    pub start_date: NaiveDate,
    /// Arrivals before this date are counted.
    pub end_date: NaiveDate,
    /// The room type, when the report is for one.
    pub room_type_id: Option<i64>,
    /// Bookings of every status.
    pub total_bookings: i64,
    /// Bookings not cancelled.
    pub active_bookings: i64,
    /// Sum of the prices of bookings not cancelled, in minor units.
    pub revenue: i64,
    /// Rooms held by bookings not cancelled.
    pub rooms: i64,
    /// Room-nights held by bookings not cancelled.
    pub room_nights: i64,
    /// Revenue per booking not cancelled, rounded down; 0 when there are none.
    pub average_value: i64,
    /// By status, in a fixed status order.
    pub by_status: Vec<StatusBreakdown>,
}

impl BookingStatistics {
    /// The report over `range` (of one room type or all) from its breakdown by status: the
    /// statuses without bookings are dropped, the rest put in the fixed status order and
    /// summed.
    #[must_use]
    pub fn from_breakdown(
        range: DateRange,
        room_type_id: Option<i64>,
        mut by_status: Vec<StatusBreakdown>,
    ) -> Self {
        by_status.retain(|b| b.bookings != 0);
        by_status.sort_by_key(|b| BookingStatus::iter().position(|s| s == b.status));
        let active = by_status.iter().filter(|b| b.status.holds_rooms());
        let active_bookings: i64 = active.clone().map(|b| b.bookings).sum();
        let revenue: i64 = active.clone().map(|b| b.value).sum();
        Self {
            start_date: range.start(),
            end_date: range.end(),
            room_type_id,
            total_bookings: by_status.iter().map(|b| b.bookings).sum(),
            active_bookings,
            revenue,
            rooms: active.clone().map(|b| b.rooms).sum(),
            room_nights: active.map(|b| b.room_nights).sum(),
            average_value: if active_bookings > 0 {
                revenue / active_bookings
            } else {
                0
            },
            by_status,
        }
    }
}

/// One room type's occupancy within a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomTypeOccupancy {
    /// The room type.
    pub room_type_id: i64,
    /// Its name.
    pub name: String,
    /// Room-nights held by bookings that are not cancelled.
    pub room_nights_sold: i64,
    /// Room-nights in service.
    pub room_nights_available: i64,
    /// `sold / available`, 0 when nothing is available.
    pub rate: f64,
}

/// Room-nights sold against room-nights in service over a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Occupancy {
    /// The first night.
    pub start_date: NaiveDate,
    /// The end of the range (not a night of it).
    pub end_date: NaiveDate,
    /// Room-nights held by bookings that are not cancelled, whatever their status.
    pub room_nights_sold: i64,
    /// Room-nights in service.
    pub room_nights_available: i64,
    /// `sold / available`, 0 when nothing is available.
    pub rate: f64,
    /// Per room type, by id.
    pub by_room_type: Vec<RoomTypeOccupancy>,
}

/// `sold / available`, 0 when nothing is available.
fn rate(sold: i64, available: i64) -> f64 {
    if available > 0 {
        sold as f64 / available as f64
    } else {
        0.0
    }
}

impl RoomTypeOccupancy {
    /// One room type's line from the room-nights it sold and had in service (the rate follows).
    #[must_use]
    pub fn new(room_type_id: i64, name: String, sold: i64, available: i64) -> Self {
        Self {
            room_type_id,
            name,
            room_nights_sold: sold,
            room_nights_available: available,
            rate: rate(sold, available),
        }
    }
}

impl Occupancy {
    /// The report over `range` from its lines per room type, summed.
    #[must_use]
    pub fn from_room_types(range: DateRange, by_room_type: Vec<RoomTypeOccupancy>) -> Self {
        let sold = by_room_type.iter().map(|r| r.room_nights_sold).sum();
        let available = by_room_type.iter().map(|r| r.room_nights_available).sum();
        Self {
            start_date: range.start(),
            end_date: range.end(),
            room_nights_sold: sold,
            room_nights_available: available,
            rate: rate(sold, available),
            by_room_type,
        }
    }
}

/// A user's payments of one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentStatusTotal {
    /// The status.
    pub status: PaymentStatus,
    /// How many payments.
    pub count: i64,
    /// Their sum, in minor units.
    pub amount: i64,
}

/// A user's payments, summed. Never cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSummary {
    /// The user.
    pub user_id: i64,
    /// Payments of every status.
    pub count: i64,
    /// Sum of the paid payments, in minor units.
    pub paid_amount: i64,
    /// By status, in a fixed status order.
    pub by_status: Vec<PaymentStatusTotal>,
}
