//! `notifications`: messages scheduled for users.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::NotificationStatus;

/// A row of `notifications`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(model_attrs(derive(Serialize, Deserialize)))]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The recipient.
    pub user_id: i64,
    /// What the message is about, e.g. `booking_confirmed`.
    pub kind: String,
    /// Where the notification is.
    pub status: NotificationStatus,
    /// When it should be sent.
    pub scheduled_at: DateTimeUtc,
    /// When it was sent.
    pub sent_at: Option<DateTimeUtc>,
    /// The recipient.
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
