//! `api_tokens`: bearer tokens, stored only as SHA-256 hashes.

use sea_orm::entity::prelude::*;

/// A row of `api_tokens`. It holds the token's hash, never the token.
///
/// Deliberately not `Serialize`: token rows never leave the server.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The owner.
    pub user_id: i64,
    /// Lowercase hex SHA-256 of the token; unique.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// When the token was issued.
    pub created_at: DateTimeUtc,
    /// When the token last authenticated a request.
    pub last_used_at: Option<DateTimeUtc>,
    /// When the token was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<DateTimeUtc>,
    /// The owner.
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
