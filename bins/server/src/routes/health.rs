//! Liveness with the database's state, and the Prometheus scrape.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{error::ApiError, openapi::Refusals, state::AppState};

/// Liveness and the databases' state.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the primary database answers, `unavailable` otherwise.
    #[schema(value_type = String, pattern = "^(ok|unavailable)$")]
    status: &'static str,
    /// The primary database: `ok`, `unreachable` or `timeout` (2 s).
    #[schema(value_type = String, pattern = "^(ok|unreachable|timeout)$")]
    database: &'static str,
    /// The read replica, when there is one. It does not make the server unhealthy: while it
    /// does not answer, reports read the primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(ok|unreachable|timeout)$")]
    replica: Option<&'static str>,
    /// How stale the read replica may be, in seconds, at its last check (about every second),
    /// when it answers and replays the primary's WAL.
    #[serde(rename = "replicaLagSeconds", skip_serializing_if = "Option::is_none")]
    replica_lag_seconds: Option<f64>,
}

async fn ping(db: &sea_orm::DatabaseConnection) -> &'static str {
    // A pooled connection whose backend ended says nothing about the database: ping again on
    // a live one.
    let ping = db_connect::retry_on_lost_connection(|| db.ping());
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(())) => "ok",
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "database health check failed");
            "unreachable"
        }
        Err(_) => "timeout",
    }
}

/// `GET /healthz`: 200 when the database answers, 503 when it does not.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer", body = Health,
            headers(("Retry-After" = u32, description = "Seconds to wait before asking again"))),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let database = ping(&state.primary).await;
    let replica = match state.reads.replica() {
        Some(replica) => Some(ping(replica).await),
        None => None,
    };
    let replica_lag_seconds = state.reads.status().and_then(|status| match status.health {
        db_connect::ReplicaHealth::Streaming { lag } => Some(lag.as_secs_f64()),
        _ => None,
    });
    let healthy = database == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        database,
        replica,
        replica_lag_seconds,
    };
    if healthy {
        (status, Json(body)).into_response()
    } else {
        // Like every 503 of the server: when to ask again.
        (status, [(header::RETRY_AFTER, "1")], Json(body)).into_response()
    }
}

/// `GET /metrics`: every metric in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Every metric, in the Prometheus text format", body = String, content_type = "text/plain"),
        Refusals,
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .encode()
        .map_err(|err| ApiError::internal(&err))?;
    Ok((
        [(header::CONTENT_TYPE, perf_stats::PROMETHEUS_CONTENT_TYPE)],
        text,
    )
        .into_response())
}
