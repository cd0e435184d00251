//! Bearer-token authentication. Tokens are looked up by hash on every request and never cached.

use std::time::Duration as StdDuration;

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{Duration, Utc};
use entity::UserRole;
use optimized_queries::tokens;

use crate::{error::ApiError, state::AppState};

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
        let row = tokens::authenticate(db, token)
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
                let write = tokens::record_use(&db, token_id, now);
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
