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
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Caller,
    error::{ApiError, ApiJson, ApiPath, ApiQuery, Body as ErrorBody},
    openapi::{BodyRefusals, InvalidInput, Refusals, Unauthenticated},
    routes::today,
    state::AppState,
};

/// Body of `POST /api/bookings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBooking {
    /// The room type.
    room_type_id: i64,
    /// The first night: today or later.
    #[schema(value_type = String, format = Date)]
    start_date: CalendarDate,
    /// The check-out day, at most 30 nights later.
    #[schema(value_type = String, format = Date)]
    end_date: CalendarDate,
    /// Rooms on each night.
    #[schema(minimum = 1, maximum = 50)]
    rooms: i64,
}

/// `POST /api/bookings`: 201 with the new booking; 200 with the first booking when the
/// `Idempotency-Key` header repeats an earlier identical request of the same caller (even if
/// that booking was cancelled since: the replay returns it, `CANCELLED`, and books nothing);
/// 409 `conflict` when the caller used the key for a different request; 409 `not_available`
/// when a night lacks rooms; 400 for a key that is not 1 to 255 visible ASCII characters or a
/// header sent more than once.
#[utoipa::path(
    post,
    path = "/api/bookings",
    tag = "bookings",
    security(("bearerAuth" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key (visible ASCII, at most 255 characters) answers the first booking instead of making another"),
    ),
    request_body = NewBooking,
    responses(
        (status = 201, description = "The new booking", body = BookingView),
        (status = 200, description = "The booking an earlier request with the same Idempotency-Key made", body = BookingView),
        (status = 404, description = "No such room type", body = ErrorBody),
        (status = 409, description = "A night lacks rooms (`not_available`), or the Idempotency-Key was used for a different request (`conflict`)", body = ErrorBody),
        InvalidInput,
        Unauthenticated,
        BodyRefusals,
        Refusals,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewBooking>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
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

/// The `Idempotency-Key` header, if sent. Sent twice it is refused rather than one copy
/// picked: the client (or a proxy that merged two requests) did not say which request it means.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "send the Idempotency-Key header at most once",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("the Idempotency-Key header must be visible ASCII"))?;
    Ok(Some(IdempotencyKey::new(text)?))
}

/// Query of `GET /api/me/bookings`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MyBookingsParams {
    /// Only bookings in this status.
    status: Option<BookingStatus>,
    /// At most this many (50 without it).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// Whether to include each booking's payments.
    include_payments: Option<bool>,
}

/// `GET /api/me/bookings`: the caller's bookings with their room type (and payments), newest
/// first.
#[utoipa::path(
    get,
    path = "/api/me/bookings",
    tag = "bookings",
    security(("bearerAuth" = [])),
    params(MyBookingsParams),
    responses(
        (status = 200, description = "The caller's bookings, newest first", body = Vec<BookingView>),
        InvalidInput,
        Unauthenticated,
        Refusals,
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/bookings/{id}",
    tag = "bookings",
    security(("bearerAuth" = [])),
    params(("id" = i64, Path, description = "The booking's id")),
    responses(
        (status = 200, description = "The booking with its guest, room type and payments", body = BookingView),
        (status = 404, description = "No such booking, or not the caller's", body = ErrorBody),
        InvalidInput,
        Unauthenticated,
        Refusals,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    Ok(Json(visible_booking(&state, caller, id).await?).into_response())
}

/// Answer of `POST /api/bookings/{id}/cancel`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cancelled {
    /// The booking, now cancelled.
    booking: BookingView,
    /// False when the booking already was cancelled (nothing changed).
    cancelled_now: bool,
}

/// `POST /api/bookings/{id}/cancel`: cancels and returns the rooms, exactly once.
#[utoipa::path(
    post,
    path = "/api/bookings/{id}/cancel",
    tag = "bookings",
    security(("bearerAuth" = [])),
    params(("id" = i64, Path, description = "The booking's id")),
    responses(
        (status = 200, description = "The cancelled booking, and whether this request cancelled it", body = Cancelled),
        (status = 404, description = "No such booking, or not the caller's", body = ErrorBody),
        (status = 409, description = "The booking can no longer be cancelled", body = ErrorBody),
        InvalidInput,
        Unauthenticated,
        Refusals,
    )
)]
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
