//! A small hotel to run faults against, and the audit that follows every fault.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate, Utc};
use entity::prelude::*;
use optimized_queries::DateRange;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait, NotSet};

/// Nights of inventory from today on.
pub const NIGHTS: i64 = 60;

/// What a test needs to talk to the hotel: its room types and a guest's token.
pub struct Hotel {
    /// Room type ids.
    pub room_types: Vec<i64>,
    /// A guest's token.
    pub guest: String,
}

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// `today + n` as `YYYY-MM-DD`.
pub fn day(n: i64) -> String {
    (today() + Duration::days(n)).to_string()
}

/// Two room types (`rooms` rooms each) with [`NIGHTS`] nights of inventory and a guest, on a
/// migrated database.
pub async fn seed(db: &DatabaseConnection, rooms: i32) -> Hotel {
    let mut room_types = Vec::new();
    for (name, price) in [("Standard", 10_000), ("Suite", 30_000)] {
        let id = entity::room_type::ActiveModel {
            id: NotSet,
            name: Set(name.to_owned()),
            description: Set(format!("{name} room")),
            price_per_night: Set(price),
            total_rooms: Set(rooms),
            created_at: Set(Utc::now()),
            updated_at: Set(Utc::now()),
        }
        .insert(db)
        .await
        .unwrap()
        .id;
        let nights = DateRange::new(today(), today() + Duration::days(NIGHTS)).unwrap();
        optimized_queries::update_inventory(db, id, nights, rooms)
            .await
            .unwrap();
        room_types.push(id);
    }
    let guest = server::tokens::issue(db, "guest@example.com", None, Some("Guest"))
        .await
        .unwrap();
    Hotel {
        room_types,
        guest: guest.token,
    }
}

/// The audit after a fault: for every room type and night, `available_rooms = total_rooms −
/// rooms of non-cancelled bookings`; every acknowledged booking exists; no booking exists that
/// was not acknowledged. Runs on a connection of its own to `url` (the test's pool may hold
/// connections the fault killed).
pub async fn audit(url: &str, acknowledged: &BTreeSet<i64>) {
    let db = &db_connect::connect(url).await.unwrap();
    let bookings = Booking::find().all(db).await.unwrap();
    let inventory = RoomInventory::find().all(db).await.unwrap();
    let mismatches = super::audit::inventory_mismatches(&inventory, &bookings);
    assert!(mismatches.is_empty(), "inventory audit: {mismatches:#?}");
    let stored: BTreeSet<i64> = bookings.iter().map(|b| b.id).collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged bookings missing: {lost:?}");
    let unacknowledged: Vec<_> = stored.difference(acknowledged).collect();
    assert!(
        unacknowledged.is_empty(),
        "bookings committed without an acknowledgement: {unacknowledged:?}"
    );
}
