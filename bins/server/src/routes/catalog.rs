//! Public reads: room types and availability.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use optimized_queries::{AvailabilityCheck, CalendarDate, DateRange, RoomCount};
use serde::Deserialize;

use crate::{
    error::{ApiError, ApiJson, ApiQuery},
    routes::{range_or, today},
    state::AppState,
};

/// `GET /api/room-types` (cached for an hour).
pub async fn room_types(State(state): State<AppState>) -> Result<Response, ApiError> {
    let room_types = state.hotel.room_types(&state.primary).await?;
    Ok(Json(room_types.as_ref()).into_response())
}

/// Query of `GET /api/availability`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilityParams {
    room_type_id: Option<i64>,
    start_date: Option<CalendarDate>,
    end_date: Option<CalendarDate>,
    rooms: Option<i64>,
}

/// `GET /api/availability`: one room type, or every room type without `roomTypeId`; tonight
/// without dates; one room without `rooms`. Cached for a minute, invalidated by every write.
pub async fn availability(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AvailabilityParams>,
) -> Result<Response, ApiError> {
    let range = range_or(params.start_date, params.end_date, || {
        DateRange::night_of(today())
    })?;
    let rooms = RoomCount::new(params.rooms.unwrap_or(1))?;
    Ok(match params.room_type_id {
        Some(room_type_id) => {
            let answer = state
                .hotel
                .availability(&state.primary, room_type_id, range, rooms)
                .await?;
            Json(answer.as_ref()).into_response()
        }
        None => {
            let answers = state
                .hotel
                .all_availability(&state.primary, range, rooms)
                .await?;
            Json(answers.as_ref()).into_response()
        }
    })
}

/// One check of `POST /api/availability/batch`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchCheck {
    room_type_id: i64,
    start_date: CalendarDate,
    end_date: CalendarDate,
    #[serde(default = "one")]
    rooms: i64,
}

fn one() -> i64 {
    1
}

/// `POST /api/availability/batch`: many checks in one query, answered in order.
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
