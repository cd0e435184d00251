//! `room_inventory`: rooms of one type on one night.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `room_inventory`: the rooms of one room type on the night starting at `date`.
///
/// The schema keeps `0 <= available_rooms <= total_rooms` and one row per (room type, date).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(model_attrs(derive(Serialize, Deserialize)))]
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
    /// The room type.
    #[sea_orm(belongs_to, from = "room_type_id", to = "id")]
    pub room_type: BelongsTo<super::room_type::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
