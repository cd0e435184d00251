//! The enumerations stored as short strings (a CHECK in the schema keeps them to these values).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What a user may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Books rooms for themselves.
    #[sea_orm(string_value = "guest")]
    Guest,
    /// Manages inventory and reads reports.
    #[sea_orm(string_value = "admin")]
    Admin,
}

/// Where a booking is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BookingStatus {
    /// Held, awaiting the deposit.
    #[sea_orm(string_value = "PROVISIONAL")]
    Provisional,
    /// Paid or guaranteed.
    #[sea_orm(string_value = "CONFIRMED")]
    Confirmed,
    /// Cancelled: its rooms went back to the inventory.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    /// The guest has arrived.
    #[sea_orm(string_value = "CHECKED_IN")]
    CheckedIn,
    /// The guest has left.
    #[sea_orm(string_value = "CHECKED_OUT")]
    CheckedOut,
}

impl BookingStatus {
    /// Whether a booking in this status holds rooms (every status but `CANCELLED`).
    pub fn holds_rooms(self) -> bool {
        !matches!(self, Self::Cancelled)
    }
}

/// Where a payment is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Initiated, not settled.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Settled.
    #[sea_orm(string_value = "PAID")]
    Paid,
    /// Declined or errored.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Paid, then given back.
    #[sea_orm(string_value = "REFUNDED")]
    Refunded,
}

/// Where a waitlist entry is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WaitlistStatus {
    /// Waiting for a room to free up.
    #[sea_orm(string_value = "WAITING")]
    Waiting,
    /// A room was offered.
    #[sea_orm(string_value = "OFFERED")]
    Offered,
    /// The offer or the stay's dates passed.
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    /// The guest booked.
    #[sea_orm(string_value = "FULFILLED")]
    Fulfilled,
}

/// Where a notification is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationStatus {
    /// Scheduled, not sent yet.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Delivered to the provider.
    #[sea_orm(string_value = "SENT")]
    Sent,
    /// Delivery failed.
    #[sea_orm(string_value = "FAILED")]
    Failed,
}
