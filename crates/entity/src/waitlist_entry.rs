//! `waitlist_entries`: guests waiting for a sold-out stay.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::WaitlistStatus;

/// A row of `waitlist_entries`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "waitlist_entries")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The waiting guest.
    pub user_id: i64,
    /// The room type wanted.
    pub room_type_id: i64,
    /// The first night wanted.
    pub start_date: Date,
    /// The check-out day wanted.
    pub end_date: Date,
    /// Where the entry is.
    pub status: WaitlistStatus,
    /// When the guest joined the waitlist.
    pub created_at: DateTimeUtc,
}

/// Relations of `waitlist_entries`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The waiting guest.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
    /// The room type wanted.
    #[sea_orm(
        belongs_to = "super::room_type::Entity",
        from = "Column::RoomTypeId",
        to = "super::room_type::Column::Id"
    )]
    RoomType,
}

impl ActiveModelBehavior for ActiveModel {}
