//! `--demo`: a ready-to-try server on a fresh machine, whatever day it is run.

use anyhow::Context;
use chrono::{Duration, NaiveDate};
use dataset::{DatasetOptions, Scale};
use entity::UserRole;
use optimized_queries::DateRange;
use sea_orm::{
    DatabaseConnection, EntityTrait, FromQueryResult, PaginatorTrait, QueryOrder, Statement,
};
use serde_json::json;

use optimized_queries::tokens;

/// The demo's administrator.
pub const ADMIN_EMAIL: &str = "demo-admin@hotel.example";
/// The demo's guest.
pub const GUEST_EMAIL: &str = "demo-guest@hotel.example";

/// Nights from today on that the demo keeps in inventory for every room type.
pub const BOOKABLE_NIGHTS: i64 = 183;
/// The sample stay starts at least this many days ahead (far enough to be bookable).
const SAMPLE_LEAD_DAYS: i64 = 14;
/// Rooms the sample stay leaves free on each night, so the README's booking can be repeated.
const SAMPLE_FREE_ROOMS: i32 = 3;

/// What the demo prints for a newcomer.
#[derive(Debug)]
pub struct DemoTokens {
    /// The administrator's token.
    pub admin: String,
    /// The guest's token.
    pub guest: String,
    /// A booking request that has rooms today: the README's sample booking sends it.
    pub sample_booking: serde_json::Value,
}

/// Fills a migrated database with the small dataset unless it already has room types; makes
/// sure the next [`BOOKABLE_NIGHTS`] nights have inventory (data generated months ago ends
/// sooner); issues fresh tokens for the demo administrator and guest (creating them when
/// needed); and picks a sample stay with rooms free.
///
/// # Errors
///
/// When the database fails.
pub async fn prepare(db: &DatabaseConnection, today: NaiveDate) -> anyhow::Result<DemoTokens> {
    let room_types = entity::prelude::RoomType::find()
        .count(db)
        .await
        .context("while counting room types")?;
    if room_types == 0 {
        tracing::info!("generating the small dataset for the demo");
        let summary = dataset::generate(
            db,
            &DatasetOptions::new(Scale::Small).reference_date(today),
            &|_| {},
        )
        .await
        .context("while generating the demo dataset")?;
        tracing::info!(
            bookings = summary.bookings,
            room_types = summary.room_types,
            "demo dataset ready"
        );
    } else {
        tracing::info!(room_types, "reusing the data already in the database");
    }
    extend_inventory(db, today).await?;
    let sample_booking = sample_booking(db, today).await?;
    let admin = tokens::issue(db, ADMIN_EMAIL, Some(UserRole::Admin), Some("Demo Admin"))
        .await
        .context("while creating the demo administrator's token")?;
    let guest = tokens::issue(db, GUEST_EMAIL, Some(UserRole::Guest), Some("Demo Guest"))
        .await
        .context("while creating the demo guest's token")?;
    Ok(DemoTokens {
        admin: admin.token,
        guest: guest.token,
        sample_booking,
    })
}

#[derive(FromQueryResult)]
struct LastNight {
    id: i64,
    total_rooms: i32,
    last_night: Option<NaiveDate>,
}

/// Adds inventory (each room type's usual number of rooms) for the nights from today to
/// [`BOOKABLE_NIGHTS`] ahead that have none: nights already there keep their rooms and bookings.
async fn extend_inventory(db: &DatabaseConnection, today: NaiveDate) -> anyhow::Result<()> {
    let room_types = LastNight::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT rt.id AS id, rt.total_rooms AS total_rooms, MAX(i.date) AS last_night \
         FROM room_types rt LEFT JOIN room_inventory i ON i.room_type_id = rt.id \
         GROUP BY rt.id, rt.total_rooms ORDER BY rt.id",
    ))
    .all(db)
    .await
    .context("while reading how far the inventory reaches")?;
    let horizon = today + Duration::days(BOOKABLE_NIGHTS);
    for room_type in room_types {
        let first_missing = room_type
            .last_night
            .map_or(today, |last| (last + Duration::days(1)).max(today));
        let Ok(nights) = DateRange::new(first_missing, horizon) else {
            continue;
        };
        optimized_queries::update_inventory(db, room_type.id, nights, room_type.total_rooms)
            .await
            .with_context(|| {
                format!(
                    "while adding inventory for room type {} over {nights}",
                    room_type.id
                )
            })?;
        tracing::info!(room_type = room_type.id, %nights, "demo inventory extended");
    }
    Ok(())
}

/// The first two-night stay, from [`SAMPLE_LEAD_DAYS`] ahead, of the first room type that has
/// [`SAMPLE_FREE_ROOMS`] rooms free on both nights, as a booking request body.
async fn sample_booking(
    db: &DatabaseConnection,
    today: NaiveDate,
) -> anyhow::Result<serde_json::Value> {
    let window = DateRange::new(
        today + Duration::days(SAMPLE_LEAD_DAYS),
        today + Duration::days(BOOKABLE_NIGHTS),
    )?;
    let room_types = entity::prelude::RoomType::find()
        .order_by_asc(entity::room_type::Column::Id)
        .all(db)
        .await
        .context("while reading the room types")?;
    for room_type in room_types {
        let calendar = optimized_queries::room_type_calendar(db, room_type.id, window)
            .await
            .context("while looking for a stay with rooms free")?;
        let free = calendar.nights.windows(2).find(|pair| {
            pair[1].date == pair[0].date + Duration::days(1)
                && pair.iter().all(|n| n.available_rooms >= SAMPLE_FREE_ROOMS)
        });
        if let Some(pair) = free {
            return Ok(json!({
                "roomTypeId": room_type.id,
                "startDate": pair[0].date.to_string(),
                "endDate": (pair[1].date + Duration::days(1)).to_string(),
                "rooms": 1,
            }));
        }
    }
    anyhow::bail!(
        "no room type has {SAMPLE_FREE_ROOMS} rooms free on two nights in a row in {window}"
    )
}
