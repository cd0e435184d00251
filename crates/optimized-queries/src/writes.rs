//! Bookings and inventory changes: atomic, exact and idempotent.
//!
//! Every write runs in one transaction (on SQLite started `IMMEDIATE`, so writers queue on the
//! lock instead of failing with "database is locked" when a read transaction tries to upgrade),
//! and is retried when the database aborts it for a transient reason.

use chrono::{NaiveDate, Utc};
use entity::{BookingStatus, booking, prelude::*};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, FromQueryResult, NotSet, QueryFilter, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::{
    BookingRequest, DateRange, Error, MAX_RANGE_NIGHTS, MAX_STAY_NIGHTS, Result,
    daily_stats::{self, Contribution},
    retry::{
        Attempt, TransactionIdentity, commit, is_unique_violation, transaction_id, with_retries,
    },
    sql::{placeholders, statement},
};

/// Deposit asked for on a new booking, in percent of its price.
pub const DEPOSIT_PERCENT: i64 = 20;
/// The most rooms of a type one night's inventory may hold.
pub const MAX_ROOMS_PER_NIGHT: i32 = 10_000;

/// What [`create_booking`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingOutcome {
    /// The booking: new, or the one an earlier request with the same idempotency key made.
    pub booking: booking::Model,
    /// Whether this call made it.
    pub created: bool,
}

/// What [`cancel_booking`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOutcome {
    /// The booking, now cancelled.
    pub booking: booking::Model,
    /// The status it had before this call (`CANCELLED` when it already was).
    pub previous_status: BookingStatus,
    /// Whether this call cancelled it (false: it already was, and nothing changed).
    pub cancelled_now: bool,
}

/// What [`update_inventory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct InventoryChange {
    /// Nights that existed and were changed.
    pub nights_updated: u64,
    /// Nights that were created.
    pub nights_created: u64,
}

/// Takes `$1` rooms from every night of a stay that has them; the caller checks that the rows
/// affected equal the nights.
pub(crate) const TAKE_ROOMS_SQL: &str = "UPDATE room_inventory SET available_rooms = available_rooms - $1 \
     WHERE room_type_id = $2 AND date >= $3 AND date < $4 AND available_rooms >= $1";

/// A write transaction and its identity on PostgreSQL, which [`commit`] needs.
pub(crate) async fn begin_write(
    db: &DatabaseConnection,
) -> Result<(DatabaseTransaction, Option<TransactionIdentity>), sea_orm::DbErr> {
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    let xid = transaction_id(&txn).await?;
    Ok((txn, xid))
}

/// Books `request.rooms` rooms of a type for every night of `request.stay`, or nothing.
///
/// Validates the request (at most [`MAX_STAY_NIGHTS`] nights, not before `today`, the room
/// type exists), then in one transaction takes the rooms from every night with one conditional
/// UPDATE that succeeds only if every night has them, prices the stay (nights × rooms × the
/// room type's price, with a [`DEPOSIT_PERCENT`] % deposit) and inserts a `PROVISIONAL` booking.
/// Concurrent callers never overbook: a night's rooms never go below zero.
///
/// With an idempotency key, a repeat of the same request by the same user returns the first
/// booking (`created: false`) instead of booking again, whatever that booking's status now is:
/// a replay after the booking was cancelled returns the cancelled booking and books nothing
/// (a guest who wants the rooms again sends a new key). Keys are scoped per user (the schema's
/// unique constraint is on user and key): another user's identical key is a different request
/// and books for that user, and nothing about the first user's booking is ever looked at.
///
/// # Errors
///
/// [`Error::InvalidRange`] for a stay too long or in the past; [`Error::NotFound`] for an
/// unknown room type (or user); [`Error::NotAvailable`] naming the first night that lacks the
/// rooms; [`Error::Conflict`] when the user already used the idempotency key for a different
/// request;
/// [`Error::Database`] when the database fails for good.
pub async fn create_booking(
    db: &DatabaseConnection,
    request: &BookingRequest,
    today: NaiveDate,
) -> Result<BookingOutcome> {
    let stay = request.stay.ensure_at_most(MAX_STAY_NIGHTS)?;
    if stay.start() < today {
        return Err(Error::InvalidRange(format!(
            "the stay starts on {}, which is in the past",
            stay.start()
        )));
    }
    with_retries("create_booking", || try_create_booking(db, request)).await
}

#[derive(FromQueryResult)]
struct Price {
    price_per_night: i64,
}

async fn try_create_booking(
    db: &DatabaseConnection,
    request: &BookingRequest,
) -> Result<Attempt<BookingOutcome>> {
    let (txn, xid) = begin_write(db).await?;
    // Scoped to the user: another user's booking under the same key is none of this request's
    // business (the unique constraint is on user and key, and its index serves this lookup).
    if let Some(key) = &request.idempotency_key
        && let Some(existing) = Booking::find()
            .filter(booking::Column::UserId.eq(request.user_id))
            .filter(booking::Column::IdempotencyKey.eq(key.as_str()))
            .one(&txn)
            .await?
    {
        txn.rollback().await?;
        return same_request(existing, request).map(|booking| {
            Attempt::Done(BookingOutcome {
                booking,
                created: false,
            })
        });
    }
    let price = Price::find_by_statement(statement(
        &txn,
        "SELECT price_per_night FROM room_types WHERE id = $1",
        [request.room_type_id.into()],
    ))
    .one(&txn)
    .await?
    .ok_or(Error::NotFound {
        what: "room type",
        id: request.room_type_id,
    })?
    .price_per_night;

    let stay = request.stay;
    let rooms = request.rooms.get();
    let taken = txn
        .execute_raw(statement(
            &txn,
            TAKE_ROOMS_SQL,
            [
                rooms.into(),
                request.room_type_id.into(),
                stay.start().into(),
                stay.end().into(),
            ],
        ))
        .await?
        .rows_affected();
    if taken != stay.nights() as u64 {
        let shortage = first_short_night(&txn, request.room_type_id, stay, rooms).await?;
        txn.rollback().await?;
        return Err(shortage);
    }

    let total_price = price * stay.nights() * i64::from(rooms);
    let now = Utc::now();
    let inserted = booking::ActiveModel {
        id: NotSet,
        user_id: Set(request.user_id),
        room_type_id: Set(request.room_type_id),
        start_date: Set(stay.start()),
        end_date: Set(stay.end()),
        rooms_booked: Set(rooms),
        status: Set(BookingStatus::Provisional),
        total_price: Set(total_price),
        deposit_amount: Set(total_price * DEPOSIT_PERCENT / 100),
        is_deposit_paid: Set(false),
        idempotency_key: Set(request
            .idempotency_key
            .as_ref()
            .map(|k| k.as_str().to_owned())),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await;
    let booking = match inserted {
        Ok(booking) => booking,
        // Another transaction committed the same key first; the next attempt returns its booking.
        Err(err) if request.idempotency_key.is_some() && is_unique_violation(&err) => {
            return Ok(Attempt::Again(err));
        }
        Err(err)
            if matches!(
                err.sql_err(),
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
            ) =>
        {
            return Err(Error::NotFound {
                what: "user",
                id: request.user_id,
            });
        }
        Err(err) => return Err(err.into()),
    };
    daily_stats::apply(&txn, booking.status, Contribution::of(&booking), 1).await?;
    commit(db, txn, xid).await?;
    Ok(Attempt::Done(BookingOutcome {
        booking,
        created: true,
    }))
}

/// An idempotency key may only repeat the request it was first used with. `existing` is the
/// same user's booking, so the conflict may name it.
fn same_request(existing: booking::Model, request: &BookingRequest) -> Result<booking::Model> {
    let same = existing.room_type_id == request.room_type_id
        && existing.start_date == request.stay.start()
        && existing.end_date == request.stay.end()
        && existing.rooms_booked == request.rooms.get();
    if same {
        Ok(existing)
    } else {
        Err(Error::Conflict(format!(
            "idempotency key already used for booking {} with different details",
            existing.id
        )))
    }
}

#[derive(FromQueryResult)]
struct Night {
    date: NaiveDate,
    available_rooms: i32,
}

/// The error naming the first night of `stay` without `rooms` free (or without inventory).
async fn first_short_night(
    txn: &DatabaseTransaction,
    room_type_id: i64,
    stay: DateRange,
    rooms: i32,
) -> Result<Error> {
    let nights = Night::find_by_statement(statement(
        txn,
        "SELECT date, available_rooms FROM room_inventory \
         WHERE room_type_id = $1 AND date >= $2 AND date < $3 ORDER BY date",
        [room_type_id.into(), stay.start().into(), stay.end().into()],
    ))
    .all(txn)
    .await?;
    let mut nights = nights.into_iter().peekable();
    for date in stay.iter_nights() {
        let available = match nights.peek() {
            Some(night) if night.date == date => nights.next().map_or(0, |n| n.available_rooms),
            _ => 0,
        };
        if available < rooms {
            return Ok(Error::NotAvailable {
                room_type_id,
                night: date,
                available,
                requested: rooms,
            });
        }
    }
    // Every night had the rooms when looked at again: a rival released some meanwhile.
    Ok(Error::NotAvailable {
        room_type_id,
        night: stay.start(),
        available: rooms,
        requested: rooms,
    })
}

/// Cancels a booking and returns its rooms to every night, exactly once: cancelling a
/// cancelled booking changes nothing.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown booking; [`Error::Conflict`] for a stay that has checked
/// in or out; [`Error::Database`] when the database fails for good.
pub async fn cancel_booking(db: &DatabaseConnection, booking_id: i64) -> Result<CancelOutcome> {
    with_retries("cancel_booking", || try_cancel_booking(db, booking_id)).await
}

/// Booking `booking_id` as `txn` sees it.
async fn find_booking(txn: &DatabaseTransaction, booking_id: i64) -> Result<booking::Model> {
    Booking::find_by_id(booking_id)
        .one(txn)
        .await?
        .ok_or(Error::NotFound {
            what: "booking",
            id: booking_id,
        })
}

async fn try_cancel_booking(
    db: &DatabaseConnection,
    booking_id: i64,
) -> Result<Attempt<CancelOutcome>> {
    let (txn, xid) = begin_write(db).await?;
    let booking = find_booking(&txn, booking_id).await?;
    let previous_status = booking.status;
    match previous_status {
        BookingStatus::Cancelled => {
            txn.rollback().await?;
            return Ok(Attempt::Done(CancelOutcome {
                booking,
                previous_status,
                cancelled_now: false,
            }));
        }
        BookingStatus::CheckedIn | BookingStatus::CheckedOut => {
            return Err(Error::Conflict(format!(
                "booking {booking_id} is {previous_status:?}: a stay that has begun cannot be cancelled"
            )));
        }
        BookingStatus::Provisional | BookingStatus::Confirmed => {}
    }
    let now = Utc::now();
    // The status guard makes this the one cancellation even against a concurrent rival.
    let changed = txn
        .execute_raw(statement(
            &txn,
            "UPDATE bookings SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
            [
                BookingStatus::Cancelled.into(),
                now.into(),
                booking_id.into(),
                previous_status.into(),
            ],
        ))
        .await?
        .rows_affected();
    if changed != 1 {
        txn.rollback().await?;
        return Ok(Attempt::Again(sea_orm::DbErr::RecordNotUpdated));
    }
    txn.execute_raw(statement(
        &txn,
        "UPDATE room_inventory SET available_rooms = available_rooms + $1 \
         WHERE room_type_id = $2 AND date >= $3 AND date < $4",
        [
            booking.rooms_booked.into(),
            booking.room_type_id.into(),
            booking.start_date.into(),
            booking.end_date.into(),
        ],
    ))
    .await?;
    let contribution = Contribution::of(&booking);
    daily_stats::apply(&txn, previous_status, contribution, -1).await?;
    daily_stats::apply(&txn, BookingStatus::Cancelled, contribution, 1).await?;
    commit(db, txn, xid).await?;
    Ok(Attempt::Done(CancelOutcome {
        booking: booking::Model {
            status: BookingStatus::Cancelled,
            updated_at: now,
            ..booking
        },
        previous_status,
        cancelled_now: true,
    }))
}

/// Moves a booking along its life: `PROVISIONAL → CONFIRMED` (the deposit is paid),
/// `CONFIRMED → CHECKED_IN`, `CHECKED_IN → CHECKED_OUT`. Moving to the status it already has
/// changes nothing. Cancelling is [`cancel_booking`]'s job, since it returns rooms.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown booking; [`Error::Conflict`] for any other transition;
/// [`Error::Database`] when the database fails for good.
pub async fn advance_booking(
    db: &DatabaseConnection,
    booking_id: i64,
    to: BookingStatus,
) -> Result<booking::Model> {
    with_retries("advance_booking", || {
        try_advance_booking(db, booking_id, to)
    })
    .await
}

async fn try_advance_booking(
    db: &DatabaseConnection,
    booking_id: i64,
    to: BookingStatus,
) -> Result<Attempt<booking::Model>> {
    let (txn, xid) = begin_write(db).await?;
    let booking = find_booking(&txn, booking_id).await?;
    let from = booking.status;
    if from == to {
        txn.rollback().await?;
        return Ok(Attempt::Done(booking));
    }
    let allowed = matches!(
        (from, to),
        (BookingStatus::Provisional, BookingStatus::Confirmed)
            | (BookingStatus::Confirmed, BookingStatus::CheckedIn)
            | (BookingStatus::CheckedIn, BookingStatus::CheckedOut)
    );
    if !allowed {
        return Err(Error::Conflict(format!(
            "booking {booking_id} cannot go from {from:?} to {to:?}"
        )));
    }
    let now = Utc::now();
    let deposit_paid = booking.is_deposit_paid || to == BookingStatus::Confirmed;
    let changed = txn
        .execute_raw(statement(
            &txn,
            "UPDATE bookings SET status = $1, is_deposit_paid = $2, updated_at = $3 WHERE id = $4 AND status = $5",
            [to.into(), deposit_paid.into(), now.into(), booking_id.into(), from.into()],
        ))
        .await?
        .rows_affected();
    if changed != 1 {
        txn.rollback().await?;
        return Ok(Attempt::Again(sea_orm::DbErr::RecordNotUpdated));
    }
    let contribution = Contribution::of(&booking);
    daily_stats::apply(&txn, from, contribution, -1).await?;
    daily_stats::apply(&txn, to, contribution, 1).await?;
    commit(db, txn, xid).await?;
    Ok(Attempt::Done(booking::Model {
        status: to,
        is_deposit_paid: deposit_paid,
        updated_at: now,
        ..booking
    }))
}

#[derive(FromQueryResult)]
struct Overbooked {
    date: NaiveDate,
    booked: i32,
}

/// Sets the rooms in service of a room type to `total_rooms` on every night of `range`,
/// creating the nights that have no inventory yet. Rooms already booked stay booked:
/// `available = total_rooms - booked`.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a total outside 0..=[`MAX_ROOMS_PER_NIGHT`];
/// [`Error::InvalidRange`] for a range over [`MAX_RANGE_NIGHTS`] nights; [`Error::NotFound`] for
/// an unknown room type; [`Error::Conflict`] when a night has more rooms booked than
/// `total_rooms` (nothing is changed); [`Error::Database`] when the database fails for good.
pub async fn update_inventory(
    db: &DatabaseConnection,
    room_type_id: i64,
    range: DateRange,
    total_rooms: i32,
) -> Result<InventoryChange> {
    let range = range.ensure_at_most(MAX_RANGE_NIGHTS)?;
    if !(0..=MAX_ROOMS_PER_NIGHT).contains(&total_rooms) {
        return Err(Error::InvalidInput(format!(
            "total rooms must be between 0 and {MAX_ROOMS_PER_NIGHT}, not {total_rooms}"
        )));
    }
    with_retries("update_inventory", || {
        try_update_inventory(db, room_type_id, range, total_rooms)
    })
    .await
}

async fn try_update_inventory(
    db: &DatabaseConnection,
    room_type_id: i64,
    range: DateRange,
    total_rooms: i32,
) -> Result<Attempt<InventoryChange>> {
    let (txn, xid) = begin_write(db).await?;
    if RoomType::find_by_id(room_type_id)
        .one(&txn)
        .await?
        .is_none()
    {
        return Err(Error::NotFound {
            what: "room type",
            id: room_type_id,
        });
    }
    if let Some(night) = Overbooked::find_by_statement(statement(
        &txn,
        "SELECT date, total_rooms - available_rooms AS booked FROM room_inventory \
         WHERE room_type_id = $1 AND date >= $2 AND date < $3 AND total_rooms - available_rooms > $4 \
         ORDER BY date LIMIT 1",
        [room_type_id.into(), range.start().into(), range.end().into(), total_rooms.into()],
    ))
    .one(&txn)
    .await?
    {
        txn.rollback().await?;
        return Err(Error::Conflict(format!(
            "the night of {} has {} rooms booked, more than the {total_rooms} asked for",
            night.date, night.booked
        )));
    }
    let updated = txn
        .execute_raw(statement(
            &txn,
            "UPDATE room_inventory SET available_rooms = available_rooms + ($1 - total_rooms), total_rooms = $1 \
             WHERE room_type_id = $2 AND date >= $3 AND date < $4",
            [total_rooms.into(), room_type_id.into(), range.start().into(), range.end().into()],
        ))
        .await;
    let updated = match updated {
        Ok(result) => result.rows_affected(),
        // A booking took rooms between the check and the update (PostgreSQL, read committed):
        // the CHECK refused; the next attempt sees the booking and reports the conflict.
        Err(err) if is_check_violation(&err) => return Ok(Attempt::Again(err)),
        Err(err) => return Err(err.into()),
    };
    let mut created = 0;
    if updated < range.nights() as u64 {
        let nights: Vec<NaiveDate> = range.iter_nights().collect();
        // Four parameters a night; 731 nights stay far below either backend's limit.
        let rows: Vec<String> = (0..nights.len())
            .map(|i| format!("({})", placeholders(i * 4 + 1, 4)))
            .collect();
        let mut values = Vec::with_capacity(nights.len() * 4);
        for date in &nights {
            values.extend([
                room_type_id.into(),
                (*date).into(),
                total_rooms.into(),
                total_rooms.into(),
            ]);
        }
        created = txn
            .execute_raw(statement(
                &txn,
                format!(
                    "INSERT INTO room_inventory (room_type_id, date, total_rooms, available_rooms) VALUES {} \
                     ON CONFLICT (room_type_id, date) DO NOTHING",
                    rows.join(", ")
                ),
                values,
            ))
            .await?
            .rows_affected();
    }
    commit(db, txn, xid).await?;
    Ok(Attempt::Done(InventoryChange {
        nights_updated: updated,
        nights_created: created,
    }))
}

/// SQLite: SQLITE_CONSTRAINT_CHECK (275); PostgreSQL: check_violation (23514).
fn is_check_violation(err: &sea_orm::DbErr) -> bool {
    let (sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(sqlx))
    | sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(sqlx))) = err
    else {
        return false;
    };
    sqlx.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| matches!(code.as_ref(), "275" | "23514"))
}
