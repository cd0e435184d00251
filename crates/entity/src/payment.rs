//! `payments`: money received for bookings.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PaymentStatus;

/// A row of `payments`. Payment data is never cached.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(model_attrs(derive(Serialize, Deserialize)))]
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
    /// The booking paid for.
    #[sea_orm(belongs_to, from = "booking_id", to = "id")]
    pub booking: BelongsTo<super::booking::Entity>,
    /// The payer.
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
