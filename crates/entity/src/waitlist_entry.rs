//! `waitlist_entries`: guests waiting for a sold-out stay.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::WaitlistStatus;

/// A row of `waitlist_entries`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(model_attrs(derive(Serialize, Deserialize)))]
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
    /// The waiting guest.
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
    /// The room type wanted.
    #[sea_orm(belongs_to, from = "room_type_id", to = "id")]
    pub room_type: BelongsTo<super::room_type::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
