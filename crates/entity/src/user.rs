//! `users`: guests and administrators.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::UserRole;

/// A row of `users`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(model_attrs(derive(Serialize, Deserialize)))]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Login and contact address; unique.
    #[sea_orm(unique)]
    pub email: String,
    /// Contact phone number, if given.
    pub phone: Option<String>,
    /// Guest or admin.
    pub role: UserRole,
    /// When the user was created.
    pub created_at: DateTimeUtc,
    /// The user's bookings.
    #[sea_orm(has_many)]
    pub bookings: HasMany<super::booking::Entity>,
    /// The user's payments.
    #[sea_orm(has_many)]
    pub payments: HasMany<super::payment::Entity>,
    /// The user's API tokens.
    #[sea_orm(has_many)]
    pub api_tokens: HasMany<super::api_token::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
