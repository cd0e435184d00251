//! `booking_daily_stats`: bookings summed by arrival date, room type and status.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::BookingStatus;

/// A row of `booking_daily_stats`: the bookings arriving on `arrival_date` for one room type in
/// one status. The booking write helpers keep it exact.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(model_attrs(derive(Serialize, Deserialize)))]
#[sea_orm(table_name = "booking_daily_stats")]
pub struct Model {
    /// The arrival date (`bookings.start_date`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub arrival_date: Date,
    /// The room type.
    #[sea_orm(primary_key, auto_increment = false)]
    pub room_type_id: i64,
    /// The bookings' status.
    #[sea_orm(primary_key, auto_increment = false)]
    pub status: BookingStatus,
    /// How many bookings.
    pub bookings: i64,
    /// Rooms they book (each counted once, whatever the nights).
    pub rooms: i64,
    /// Rooms times nights.
    pub room_nights: i64,
    /// Sum of their total prices, in minor units.
    pub revenue: i64,
    /// The room type.
    #[sea_orm(belongs_to, from = "room_type_id", to = "id")]
    pub room_type: BelongsTo<super::room_type::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
