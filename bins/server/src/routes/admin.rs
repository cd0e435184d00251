//! Administrator routes: inventory, reports, cache, query statistics, backups.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use optimized_queries::{CalendarDate, DateRange};
use serde::{Deserialize, Serialize};

use crate::{
    auth::Admin,
    error::{ApiError, ApiJson, ApiQuery},
    routes::range_or,
    state::AppState,
};

/// Body of `PUT /api/admin/inventory`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryChange {
    room_type_id: i64,
    start_date: CalendarDate,
    end_date: CalendarDate,
    total_rooms: i32,
}

/// `PUT /api/admin/inventory`: sets the rooms in service on every night of the range.
pub async fn inventory(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(body): ApiJson<InventoryChange>,
) -> Result<Response, ApiError> {
    let range = DateRange::new(body.start_date, body.end_date)?;
    let change = state
        .hotel
        .update_inventory(&state.primary, body.room_type_id, range, body.total_rooms)
        .await?;
    Ok(Json(change).into_response())
}

/// Query of the report routes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportParams {
    start_date: Option<CalendarDate>,
    end_date: Option<CalendarDate>,
    room_type_id: Option<i64>,
}

impl ReportParams {
    /// The range asked for; the last 365 days without dates.
    fn range(&self) -> Result<DateRange, ApiError> {
        range_or(self.start_date, self.end_date, || {
            let today = crate::routes::today();
            DateRange::night_of(today - chrono::Duration::days(365)).extended_to(today)
        })
    }
}

/// `GET /api/admin/reports/statistics`: bookings arriving in the range (cached 15 min; from the
/// read replica when there is one).
pub async fn statistics(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let report = state
        .hotel
        .booking_statistics(state.reports(), params.range()?, params.room_type_id)
        .await?;
    Ok(Json(report.as_ref()).into_response())
}

/// `GET /api/admin/reports/occupancy`: room-nights sold over room-nights in service (cached
/// 15 min; from the read replica when there is one).
pub async fn occupancy(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let report = state
        .hotel
        .occupancy(state.reports(), params.range()?, params.room_type_id)
        .await?;
    Ok(Json(report.as_ref()).into_response())
}

/// `GET /api/admin/cache/stats`: the live cache statistics, with the original's assessment.
pub async fn cache_stats(State(state): State<AppState>, _: Admin) -> Response {
    Json(crate::cache_report::CacheReport::of(state.hotel.cache())).into_response()
}

#[derive(Serialize)]
struct Cleared {
    cleared: usize,
}

/// `POST /api/admin/cache/clear`: drops every entry.
pub async fn cache_clear(State(state): State<AppState>, _: Admin) -> Response {
    let cleared = state.hotel.clear().await;
    tracing::info!(cleared, "cache cleared by an administrator");
    Json(Cleared { cleared }).into_response()
}

/// `GET /api/admin/queries`: the perf-stats report (top statements, slow queries, N+1).
pub async fn queries(State(state): State<AppState>, _: Admin) -> Response {
    Json(state.tracker.report()).into_response()
}

/// `GET /api/admin/backups`: backup health (the same checks as `hotel-backup monitor`).
pub async fn backups(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    let Some(repo) = state.backups.clone() else {
        return Err(ApiError::not_found("no backup directory is configured"));
    };
    let report =
        backup::monitor::assess(&repo, &backup::monitor::HealthPolicy::default(), Utc::now()).await;
    Ok(Json(report).into_response())
}
