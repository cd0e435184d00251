//! A guest's bookings: make, list, read, cancel.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use entity::BookingStatus;
use optimized_queries::{
    BookingRequest, BookingView, CalendarDate, DateRange, IdempotencyKey, RoomCount,
    UserBookingsQuery,
};
use serde::{Deserialize, Serialize};

use crate::{
    auth::Caller,
    error::{ApiError, ApiJson, ApiPath, ApiQuery},
    routes::today,
    state::AppState,
};

/// Body of `POST /api/bookings`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBooking {
    room_type_id: i64,
    start_date: CalendarDate,
    end_date: CalendarDate,
    rooms: i64,
}

/// `POST /api/bookings`: 201 with the new booking; 200 with the first booking when the
/// `Idempotency-Key` header repeats an earlier identical request; 409 `not_available` when a
/// night lacks rooms.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewBooking>,
) -> Result<Response, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::bad_request("the Idempotency-Key header must be visible ASCII")
            })?;
            Some(IdempotencyKey::new(text)?)
        }
        None => None,
    };
    let request = BookingRequest {
        user_id: caller.user_id,
        room_type_id: body.room_type_id,
        stay: DateRange::new(body.start_date, body.end_date)?,
        rooms: RoomCount::new(body.rooms)?,
        idempotency_key,
    };
    let outcome = state
        .hotel
        .create_booking(&state.primary, &request, today())
        .await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(BookingView::from(outcome.booking))).into_response())
}

/// Query of `GET /api/me/bookings`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MyBookingsParams {
    status: Option<BookingStatus>,
    limit: Option<u64>,
    include_payments: Option<bool>,
}

/// `GET /api/me/bookings`: the caller's bookings with their room type (and payments), newest
/// first.
pub async fn mine(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<MyBookingsParams>,
) -> Result<Response, ApiError> {
    let query = UserBookingsQuery {
        status: params.status,
        limit: params.limit.unwrap_or(50),
        include_payments: params.include_payments.unwrap_or(false),
    };
    let bookings = state
        .hotel
        .user_bookings(&state.primary, caller.user_id, query)
        .await?;
    Ok(Json(bookings.as_ref()).into_response())
}

/// The booking if the caller may see it: its guest or an administrator. Anyone else learns
/// nothing, not even that it exists.
async fn visible_booking(
    state: &AppState,
    caller: Caller,
    id: i64,
) -> Result<BookingView, ApiError> {
    let not_found = || ApiError::not_found(format!("booking {id} not found"));
    let booking = match optimized_queries::booking_details(&state.primary, id).await {
        Ok(booking) => booking,
        Err(optimized_queries::Error::NotFound { .. }) => return Err(not_found()),
        Err(other) => return Err(other.into()),
    };
    if booking.user_id != caller.user_id && !caller.is_admin() {
        return Err(not_found());
    }
    Ok(booking)
}

/// `GET /api/bookings/{id}`: the booking with guest, room type and payments.
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    Ok(Json(visible_booking(&state, caller, id).await?).into_response())
}

/// Answer of `POST /api/bookings/{id}/cancel`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Cancelled {
    booking: BookingView,
    /// False when the booking already was cancelled (nothing changed).
    cancelled_now: bool,
}

/// `POST /api/bookings/{id}/cancel`: cancels and returns the rooms, exactly once.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    visible_booking(&state, caller, id).await?;
    let outcome = state.hotel.cancel_booking(&state.primary, id).await?;
    Ok(Json(Cancelled {
        booking: BookingView::from(outcome.booking),
        cancelled_now: outcome.cancelled_now,
    })
    .into_response())
}
