//! `room_inventory`: rooms of one type on one night.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `room_inventory`: the rooms of one room type on the night starting at `date`.
///
/// The schema keeps `0 <= available_rooms <= total_rooms` and one row per (room type, date).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "room_inventory")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The room type.
    pub room_type_id: i64,
    /// The night (the date it starts).
    pub date: Date,
    /// Rooms of this type in service that night.
    pub total_rooms: i32,
    /// Rooms not held by a booking that night.
    pub available_rooms: i32,
}

/// Relations of `room_inventory`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The room type.
    #[sea_orm(
        belongs_to = "super::room_type::Entity",
        from = "Column::RoomTypeId",
        to = "super::room_type::Column::Id"
    )]
    RoomType,
}

impl Related<super::room_type::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RoomType.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
