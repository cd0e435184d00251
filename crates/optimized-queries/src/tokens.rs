//! API tokens: random, shown once, stored only as SHA-256 hashes; issued, looked up and
//! revoked here, so that HTTP code never writes their SQL. Tokens are never cached: a revoked
//! token stops working at the next request.

use chrono::{DateTime, Utc};
use entity::{UserRole, api_token, prelude::*, user};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult,
    NotSet, QueryFilter, Statement,
};
use sha2::{Digest, Sha256};

use crate::Result;

/// Prefix of every token, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "htk_";

/// A new random token: the prefix and 256 random bits in hex.
pub fn generate() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The SHA-256 of a token, in lowercase hex: what the database stores.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token just issued. The token itself exists nowhere else: show it once.
#[derive(Debug)]
pub struct IssuedToken {
    /// The user it authenticates.
    pub user: user::Model,
    /// The token.
    pub token: String,
}

/// Issues a token for the user with `email`, creating the user (with `role`, guest by default)
/// when there is none; an existing user's role is set to `role` when one is given.
///
/// # Errors
///
/// [`Error::Database`](crate::Error::Database) when the database fails.
pub async fn issue(
    db: &impl ConnectionTrait,
    email: &str,
    role: Option<UserRole>,
    name: Option<&str>,
) -> Result<IssuedToken> {
    let existing = User::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await?;
    let user = match existing {
        Some(user) => match role {
            Some(role) if role != user.role => {
                let mut active: user::ActiveModel = user.into();
                active.role = Set(role);
                active.update(db).await?
            }
            _ => user,
        },
        None => {
            let default_name = email.split('@').next().unwrap_or(email);
            user::ActiveModel {
                id: NotSet,
                name: Set(name.unwrap_or(default_name).to_owned()),
                email: Set(email.to_owned()),
                phone: Set(None),
                role: Set(role.unwrap_or(UserRole::Guest)),
                created_at: Set(Utc::now()),
            }
            .insert(db)
            .await?
        }
    };
    let token = generate();
    api_token::ActiveModel {
        id: NotSet,
        user_id: Set(user.id),
        token_hash: Set(hash(&token)),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(IssuedToken { user, token })
}

/// Revokes one token. Returns whether a live token was revoked.
///
/// # Errors
///
/// [`Error::Database`](crate::Error::Database) when the database fails.
pub async fn revoke_token(db: &impl ConnectionTrait, token: &str) -> Result<bool> {
    let result = ApiToken::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(api_token::Column::TokenHash.eq(hash(token)))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Revokes every live token of the user with `email`. Returns how many.
///
/// # Errors
///
/// [`Error::Database`](crate::Error::Database) when the database fails.
pub async fn revoke_user(db: &impl ConnectionTrait, email: &str) -> Result<u64> {
    let Some(user) = User::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await?
    else {
        return Ok(0);
    };
    let result = ApiToken::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(api_token::Column::UserId.eq(user.id))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The live token a request presented, and whom it authenticates.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct TokenOwner {
    /// The token's row.
    pub token_id: i64,
    /// The user it authenticates.
    pub user_id: i64,
    /// The user's role.
    pub role: UserRole,
    /// When the token was last recorded as used ([`record_use`]).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The live (not revoked) token `token` and its user, or `None`: one statement, by hash.
///
/// # Errors
///
/// [`Error::Database`](crate::Error::Database) when the query fails.
pub async fn authenticate(db: &impl ConnectionTrait, token: &str) -> Result<Option<TokenOwner>> {
    let lookup = Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT t.id AS token_id, t.user_id AS user_id, u.role AS role, t.last_used_at AS last_used_at \
         FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        [hash(token).into()],
    );
    // A read: safe to run again on a fresh connection when the pooled one was dead.
    Ok(db_connect::retry_on_lost_connection(|| {
        TokenOwner::find_by_statement(lookup.clone()).one(db)
    })
    .await?)
}

/// Records that the token `token_id` was used at `at`.
///
/// # Errors
///
/// [`Error::Database`](crate::Error::Database) when the update fails.
pub async fn record_use(db: &impl ConnectionTrait, token_id: i64, at: DateTime<Utc>) -> Result<()> {
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
        [at.into(), token_id.into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_are_stable() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(hash(&a), hash(&a));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
