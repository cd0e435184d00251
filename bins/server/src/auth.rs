//! Bearer-token authentication. Tokens are looked up by hash on every request and never cached.

use std::time::Duration as StdDuration;

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{DateTime, Duration, Utc};
use entity::UserRole;
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};

use crate::{error::ApiError, state::AppState, tokens};

/// `last_used_at` is written at most this often per token, so reads do not become writes.
const LAST_USED_GRANULARITY: i64 = 60;

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user_id: i64,
    /// Their role.
    pub role: UserRole,
}

impl Caller {
    /// Whether the caller is an administrator.
    pub fn is_admin(&self) -> bool {
        self.role == UserRole::Admin
    }
}

/// An authenticated administrator; anyone else gets 403.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub Caller);

#[derive(FromQueryResult)]
struct TokenRow {
    token_id: i64,
    user_id: i64,
    role: UserRole,
    last_used_at: Option<DateTime<Utc>>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("missing Authorization: Bearer <token> header")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let db = &state.primary;
        let lookup = Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT t.id AS token_id, t.user_id AS user_id, u.role AS role, t.last_used_at AS last_used_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
            [tokens::hash(token).into()],
        );
        let row = db_connect::retry_on_lost_connection(|| {
            TokenRow::find_by_statement(lookup.clone()).one(db)
        })
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;

        let now = Utc::now();
        if row
            .last_used_at
            .is_none_or(|at| now - at > Duration::seconds(LAST_USED_GRANULARITY))
        {
            // Off the request path: a slow or failed bookkeeping write must not delay or fail it.
            let db = db.clone();
            let token_id = row.token_id;
            tokio::spawn(async move {
                let write = db.execute_raw(Statement::from_sql_and_values(
                    db.get_database_backend(),
                    "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
                    [now.into(), token_id.into()],
                ));
                match tokio::time::timeout(StdDuration::from_secs(10), write).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, token_id, "could not record token use")
                    }
                    Err(_) => tracing::warn!(token_id, "recording token use timed out"),
                }
            });
        }
        Ok(Caller {
            user_id: row.user_id,
            role: row.role,
        })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.is_admin() {
            return Err(ApiError::forbidden("this route is for administrators"));
        }
        Ok(Admin(caller))
    }
}
