//! Administrator routes: inventory, reports, cache, query statistics, backups.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use optimized_queries::{BookingStatistics, CalendarDate, DateRange, Occupancy};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Admin,
    cache_report::CacheReport,
    error::{ApiError, ApiJson, ApiQuery, Body as ErrorBody},
    openapi::{BodyRefusals, InvalidInput, NotAdmin, Refusals},
    routes::range_or,
    state::AppState,
    views::{BackupHealthView, QueryReportView},
};

/// Body of `PUT /api/admin/inventory`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryUpdate {
    /// The room type.
    room_type_id: i64,
    /// The first night.
    #[schema(value_type = String, format = Date)]
    start_date: CalendarDate,
    /// The end of the range (not a night of it).
    #[schema(value_type = String, format = Date)]
    end_date: CalendarDate,
    /// Rooms in service on each night; never fewer than are booked.
    #[schema(minimum = 0, maximum = 10_000)]
    total_rooms: i32,
}

/// `PUT /api/admin/inventory`: sets the rooms in service on every night of the range.
#[utoipa::path(
    put,
    path = "/api/admin/inventory",
    tag = "admin",
    security(("bearerAuth" = [])),
    request_body = InventoryUpdate,
    responses(
        (status = 200, description = "Nights changed and created", body = optimized_queries::InventoryChange),
        (status = 404, description = "No such room type", body = ErrorBody),
        (status = 409, description = "A night has more rooms booked than the new total", body = ErrorBody),
        InvalidInput,
        NotAdmin,
        BodyRefusals,
        Refusals,
    )
)]
pub async fn inventory(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(body): ApiJson<InventoryUpdate>,
) -> Result<Response, ApiError> {
    let range = DateRange::new(body.start_date, body.end_date)?;
    let change = state
        .hotel
        .update_inventory(&state.primary, body.room_type_id, range, body.total_rooms)
        .await?;
    Ok(Json(change).into_response())
}

/// Query of the report routes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// The first day (with `endDate`; the last 365 days without both).
    #[param(value_type = Option<String>, format = Date)]
    start_date: Option<CalendarDate>,
    /// The end of the range, not included (with `startDate`).
    #[param(value_type = Option<String>, format = Date)]
    end_date: Option<CalendarDate>,
    /// One room type; every room type without it.
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
#[utoipa::path(
    get,
    path = "/api/admin/reports/statistics",
    tag = "admin",
    security(("bearerAuth" = [])),
    params(ReportParams),
    responses(
        (status = 200, description = "Bookings arriving in the range, summed", body = BookingStatistics),
        InvalidInput,
        NotAdmin,
        Refusals,
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/admin/reports/occupancy",
    tag = "admin",
    security(("bearerAuth" = [])),
    params(ReportParams),
    responses(
        (status = 200, description = "Room-nights sold over room-nights in service", body = Occupancy),
        InvalidInput,
        NotAdmin,
        Refusals,
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/admin/cache/stats",
    tag = "admin",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Cache statistics since start, assessed", body = CacheReport),
        NotAdmin,
        Refusals,
    )
)]
pub async fn cache_stats(State(state): State<AppState>, _: Admin) -> Response {
    Json(CacheReport::of(state.hotel.cache())).into_response()
}

/// Answer of `POST /api/admin/cache/clear`.
#[derive(Serialize, ToSchema)]
pub struct Cleared {
    /// Entries dropped.
    cleared: u64,
}

/// `POST /api/admin/cache/clear`: drops every entry.
#[utoipa::path(
    post,
    path = "/api/admin/cache/clear",
    tag = "admin",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Entries dropped", body = Cleared),
        NotAdmin,
        Refusals,
    )
)]
pub async fn cache_clear(State(state): State<AppState>, _: Admin) -> Response {
    let cleared = state.hotel.clear().await;
    tracing::info!(cleared, "cache cleared by an administrator");
    Json(Cleared {
        cleared: cleared as u64,
    })
    .into_response()
}

/// `GET /api/admin/queries`: the perf-stats report (top statements, slow queries, N+1).
#[utoipa::path(
    get,
    path = "/api/admin/queries",
    tag = "admin",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Statement statistics since start", body = QueryReportView),
        NotAdmin,
        Refusals,
    )
)]
pub async fn queries(State(state): State<AppState>, _: Admin) -> Response {
    Json(QueryReportView::from(&state.tracker.report())).into_response()
}

/// `GET /api/admin/backups`: backup health (the same checks as `hotel-backup monitor`).
#[utoipa::path(
    get,
    path = "/api/admin/backups",
    tag = "admin",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The backup directory's health", body = BackupHealthView),
        (status = 404, description = "No backup directory is configured", body = ErrorBody),
        NotAdmin,
        Refusals,
    )
)]
pub async fn backups(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    let Some(repo) = state.backups.clone() else {
        return Err(ApiError::not_found("no backup directory is configured"));
    };
    let report =
        backup::monitor::assess(&repo, &backup::monitor::HealthPolicy::default(), Utc::now()).await;
    Ok(Json(BackupHealthView::from(&report)).into_response())
}
