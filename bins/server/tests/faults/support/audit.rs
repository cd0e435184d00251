//! The audit after a fault: the database read directly, against what the clients were told.
//!
//! - for every room type and night, `available_rooms = total_rooms − rooms of the non-cancelled
//!   bookings` that hold the night;
//! - every acknowledged booking exists, as it was asked for, under its guest;
//! - every booking belongs to a request that was acknowledged: nothing unacknowledged was
//!   committed (the clients retry with the same key until they get an answer, so a booking the
//!   server committed before it died is acknowledged by the retry), and no request was counted
//!   twice (one booking per key);
//! - no response was a 5xx other than a 503 with `Retry-After`, and none broke the protocol.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use entity::{BookingStatus, booking, room_inventory};
use sea_orm::EntityTrait;

use super::storm::{Ledger, Outcome};

/// What the audit found, by kind.
#[derive(Debug, Default)]
pub struct Findings {
    /// The database contradicts itself or what clients were told.
    pub database: Vec<String>,
    /// 5xx answers other than a 503 with `Retry-After`.
    pub server_errors: Vec<String>,
    /// Answers that break the API's promises, and bookings whose outcome stayed unknown.
    pub protocol: Vec<String>,
}

impl Findings {
    /// Panics with every finding of the database and the protocol.
    #[track_caller]
    pub fn assert_consistent(&self, ledger: &Ledger) {
        assert!(
            self.database.is_empty() && self.protocol.is_empty(),
            "audit failed (statuses {:?}):\ndatabase: {:#?}\nprotocol: {:#?}",
            ledger.statuses,
            self.database,
            self.protocol
        );
    }

    /// Panics if any answer was a 5xx other than a 503 with `Retry-After`.
    #[track_caller]
    pub fn assert_no_server_errors(&self, ledger: &Ledger) {
        assert!(
            self.server_errors.is_empty(),
            "{} server errors (statuses {:?}), first: {:#?}",
            self.server_errors.len(),
            ledger.statuses,
            &self.server_errors[..self.server_errors.len().min(5)]
        );
    }

    /// Both assertions.
    #[track_caller]
    pub fn assert_clean(&self, ledger: &Ledger) {
        self.assert_consistent(ledger);
        self.assert_no_server_errors(ledger);
    }
}

/// Audits the database at `url` against `ledger`.
pub async fn audit(url: &str, ledger: &Ledger) -> Findings {
    let db = db_connect::connect(url).await.unwrap();
    let inventory = room_inventory::Entity::find().all(&db).await.unwrap();
    let bookings = booking::Entity::find().all(&db).await.unwrap();
    db.close().await.unwrap();
    let mut findings = Findings {
        server_errors: ledger.server_errors.clone(),
        protocol: ledger.protocol_errors.clone(),
        ..Findings::default()
    };

    findings
        .database
        .extend(inventory_mismatches(&inventory, &bookings));

    let mut by_key: BTreeMap<&str, Vec<&booking::Model>> = BTreeMap::new();
    for b in &bookings {
        match &b.idempotency_key {
            Some(key) => by_key.entry(key).or_default().push(b),
            None => findings.database.push(format!(
                "booking {} was made by no client of the storm",
                b.id
            )),
        }
    }
    for (asked, outcome) in &ledger.bookings {
        let stored = by_key.remove(asked.key.as_str()).unwrap_or_default();
        let as_asked = |b: &booking::Model| {
            b.room_type_id == asked.room_type_id
                && b.start_date == asked.start
                && b.end_date == asked.end
                && b.rooms_booked == asked.rooms
                && b.status != BookingStatus::Cancelled
        };
        match (outcome, stored.as_slice()) {
            (Outcome::Acknowledged { id, user_id }, [b])
                if b.id == *id && b.user_id == *user_id && as_asked(b) => {}
            (Outcome::Acknowledged { id, .. }, stored) => findings.database.push(format!(
                "acknowledged booking {id} ({}) is not as acknowledged: {stored:?}",
                asked.key
            )),
            (Outcome::Refused, []) => {}
            (Outcome::Refused, stored) => findings.database.push(format!(
                "{} was refused but committed: {stored:?}",
                asked.key
            )),
            (Outcome::Unknown, stored) => findings.protocol.push(format!(
                "{} never got an answer (committed: {stored:?})",
                asked.key
            )),
        }
    }
    for (key, stored) in by_key {
        findings.database.push(format!(
            "{key}: committed for no request of the storm: {stored:?}"
        ));
    }
    findings
}

/// The nights whose inventory disagrees with the non-cancelled bookings holding them
/// (`available_rooms ≠ total_rooms − rooms booked`), and booked nights without inventory.
pub fn inventory_mismatches(
    inventory: &[room_inventory::Model],
    bookings: &[booking::Model],
) -> Vec<String> {
    let mut mismatches = Vec::new();
    let mut held: HashMap<(i64, NaiveDate), i32> = HashMap::new();
    for b in bookings
        .iter()
        .filter(|b| b.status != BookingStatus::Cancelled)
    {
        let mut night = b.start_date;
        while night < b.end_date {
            *held.entry((b.room_type_id, night)).or_default() += b.rooms_booked;
            night = night + Days::new(1);
        }
    }
    for night in inventory {
        let booked = held.remove(&(night.room_type_id, night.date)).unwrap_or(0);
        if night.available_rooms != night.total_rooms - booked {
            mismatches.push(format!(
                "room type {} on {}: {} available, {} total, {booked} booked",
                night.room_type_id, night.date, night.available_rooms, night.total_rooms
            ));
        }
    }
    for ((room_type, night), rooms) in held {
        mismatches.push(format!(
            "room type {room_type} on {night}: {rooms} rooms booked on a night without inventory"
        ));
    }

    mismatches
}
