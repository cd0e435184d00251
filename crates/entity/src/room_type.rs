//! `room_types`: the kinds of room the hotel sells.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `room_types`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(model_attrs(derive(Serialize, Deserialize)))]
#[sea_orm(table_name = "room_types")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Name shown to guests; unique.
    #[sea_orm(unique)]
    pub name: String,
    /// Description shown to guests.
    pub description: String,
    /// Price of one room for one night, in minor units.
    pub price_per_night: i64,
    /// Rooms of this type the hotel has (the default for new inventory nights).
    pub total_rooms: i32,
    /// When the room type was created.
    pub created_at: DateTimeUtc,
    /// When the room type last changed.
    pub updated_at: DateTimeUtc,
    /// Bookings of this room type.
    #[sea_orm(has_many)]
    pub bookings: HasMany<super::booking::Entity>,
    /// Inventory nights of this room type.
    #[sea_orm(has_many)]
    pub inventory: HasMany<super::room_inventory::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
