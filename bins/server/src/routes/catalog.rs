//! Public reads: room types and availability.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use optimized_queries::{
    Availability, AvailabilityCheck, CalendarDate, DateRange, RoomCount, RoomTypeSummary,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    error::{ApiError, ApiJson, ApiQuery, Body as ErrorBody},
    json_body::JsonBodies,
    openapi::{BodyRefusals, InvalidInput, Refusals},
    routes::{range_or, today},
    state::AppState,
};

/// `GET /api/room-types` (cached for an hour).
#[utoipa::path(
    get,
    path = "/api/room-types",
    tag = "catalog",
    responses(
        (status = 200, description = "Every room type, by id", body = Vec<RoomTypeSummary>),
        Refusals,
    )
)]
pub async fn room_types(State(state): State<AppState>) -> Result<Response, ApiError> {
    let room_types = state.hotel.room_types(&state.primary).await?;
    Ok(Json(room_types.as_ref()).into_response())
}

/// Query of `GET /api/availability`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityParams {
    /// One room type; every room type without it.
    room_type_id: Option<i64>,
    /// The first night (with `endDate`; tonight without both).
    #[param(value_type = Option<String>, format = Date)]
    start_date: Option<CalendarDate>,
    /// The check-out day (with `startDate`).
    #[param(value_type = Option<String>, format = Date)]
    end_date: Option<CalendarDate>,
    /// Rooms needed on each night (1 without it).
    #[param(minimum = 1, maximum = 50)]
    rooms: Option<i64>,
}

/// The answer of `GET /api/availability`: one room type's with `roomTypeId`, every room type's
/// without.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AvailabilityAnswer {
    /// The room type asked for.
    One(Availability),
    /// Every room type, by id.
    All(Vec<Availability>),
}

/// `GET /api/availability`: one room type, or every room type without `roomTypeId`; tonight
/// without dates; one room without `rooms`. Cached for a minute, invalidated by every write.
#[utoipa::path(
    get,
    path = "/api/availability",
    tag = "catalog",
    params(AvailabilityParams),
    responses(
        (status = 200, description = "Availability over the range", body = AvailabilityAnswer),
        (status = 404, description = "No such room type", body = ErrorBody),
        InvalidInput,
        Refusals,
    )
)]
pub async fn availability(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AvailabilityParams>,
) -> Result<Response, ApiError> {
    let range = range_or(params.start_date, params.end_date, || {
        DateRange::night_of(today())
    })?;
    let rooms = RoomCount::new(params.rooms.unwrap_or(1))?;
    // The bodies are `AvailabilityAnswer`'s (it is untagged), written from the cached values
    // themselves and once per cached value.
    static ONE: JsonBodies<Availability> = JsonBodies::new();
    static ALL: JsonBodies<Vec<Availability>> = JsonBodies::new();
    Ok(match params.room_type_id {
        Some(room_type_id) => {
            let answer = state
                .hotel
                .availability(&state.primary, room_type_id, range, rooms)
                .await?;
            ONE.response(&answer)
        }
        None => {
            let answers = state
                .hotel
                .all_availability(&state.primary, range, rooms)
                .await?;
            ALL.response(&answers)
        }
    })
}

/// One check of `POST /api/availability/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchCheck {
    /// The room type.
    room_type_id: i64,
    /// The first night.
    #[schema(value_type = String, format = Date)]
    start_date: CalendarDate,
    /// The check-out day.
    #[schema(value_type = String, format = Date)]
    end_date: CalendarDate,
    /// Rooms needed on each night.
    #[serde(default = "one")]
    #[schema(default = 1, minimum = 1, maximum = 50)]
    rooms: i64,
}

fn one() -> i64 {
    1
}

/// `POST /api/availability/batch`: many checks in one query, answered in order.
#[utoipa::path(
    post,
    path = "/api/availability/batch",
    tag = "catalog",
    request_body = Vec<BatchCheck>,
    responses(
        (status = 200, description = "One answer per check, in order", body = Vec<Availability>),
        InvalidInput,
        BodyRefusals,
        Refusals,
    )
)]
pub async fn batch(
    State(state): State<AppState>,
    ApiJson(checks): ApiJson<Vec<BatchCheck>>,
) -> Result<Response, ApiError> {
    let checks = checks
        .into_iter()
        .enumerate()
        .map(|(i, check)| {
            let wrap =
                |err: optimized_queries::Error| ApiError::bad_request(format!("check {i}: {err}"));
            Ok(AvailabilityCheck {
                room_type_id: check.room_type_id,
                range: DateRange::new(check.start_date, check.end_date).map_err(wrap)?,
                rooms: RoomCount::new(check.rooms).map_err(wrap)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let answers = optimized_queries::batch_availability(&state.primary, &checks).await?;
    Ok(Json(answers).into_response())
}
