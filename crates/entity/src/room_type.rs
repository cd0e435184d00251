//! `room_types`: the kinds of room the hotel sells.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `room_types`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
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
}

/// Relations of `room_types`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Bookings of this room type.
    #[sea_orm(has_many = "super::booking::Entity")]
    Bookings,
    /// Inventory nights of this room type.
    #[sea_orm(has_many = "super::room_inventory::Entity")]
    Inventory,
}

impl Related<super::booking::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Bookings.def()
    }
}

impl Related<super::room_inventory::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Inventory.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
