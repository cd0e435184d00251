//! `users`: guests and administrators.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::UserRole;

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
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
}

/// Relations of `users`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user's bookings.
    #[sea_orm(has_many = "super::booking::Entity")]
    Bookings,
    /// The user's payments.
    #[sea_orm(has_many = "super::payment::Entity")]
    Payments,
    /// The user's API tokens.
    #[sea_orm(has_many = "super::api_token::Entity")]
    ApiTokens,
}

impl Related<super::booking::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Bookings.def()
    }
}

impl Related<super::payment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Payments.def()
    }
}

impl Related<super::api_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApiTokens.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
