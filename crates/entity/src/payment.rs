//! `payments`: money received for bookings.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PaymentStatus;

/// A row of `payments`. Payment data is never cached.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The booking paid for.
    pub booking_id: i64,
    /// The payer.
    pub user_id: i64,
    /// Amount in minor units.
    pub amount: i64,
    /// Where the payment is.
    pub status: PaymentStatus,
    /// The payment provider's name.
    pub provider: String,
    /// When the payment settled.
    pub paid_at: Option<DateTimeUtc>,
    /// When the payment was initiated.
    pub created_at: DateTimeUtc,
}

/// Relations of `payments`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The booking paid for.
    #[sea_orm(
        belongs_to = "super::booking::Entity",
        from = "Column::BookingId",
        to = "super::booking::Column::Id"
    )]
    Booking,
    /// The payer.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::booking::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Booking.def()
    }
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
