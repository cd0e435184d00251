//! `bookings`: stays booked by users.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::BookingStatus;

/// A row of `bookings`: `rooms_booked` rooms of one type for the nights `[start_date, end_date)`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(model_attrs(derive(Serialize, Deserialize)))]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The guest.
    pub user_id: i64,
    /// The room type.
    pub room_type_id: i64,
    /// The first night.
    pub start_date: Date,
    /// The check-out day (not a night of the stay).
    pub end_date: Date,
    /// Rooms held each night; at least one.
    pub rooms_booked: i32,
    /// Where the booking is in its life.
    pub status: BookingStatus,
    /// Price of the whole stay, in minor units.
    pub total_price: i64,
    /// Deposit asked for, in minor units.
    pub deposit_amount: i64,
    /// Whether the deposit has been paid.
    pub is_deposit_paid: bool,
    /// The client's key that makes retries of the same request return this booking; unique.
    #[sea_orm(unique)]
    pub idempotency_key: Option<String>,
    /// When the booking was made.
    pub created_at: DateTimeUtc,
    /// When the booking last changed.
    pub updated_at: DateTimeUtc,
    /// The guest.
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
    /// The room type.
    #[sea_orm(belongs_to, from = "room_type_id", to = "id")]
    pub room_type: BelongsTo<super::room_type::Entity>,
    /// Payments made for the booking.
    #[sea_orm(has_many)]
    pub payments: HasMany<super::payment::Entity>,
}

impl Model {
    /// Number of nights of the stay.
    pub fn nights(&self) -> i64 {
        (self.end_date - self.start_date).num_days()
    }
}

impl ActiveModelBehavior for ActiveModel {}
