//! The audit itself: it must catch what it exists to catch, or every fault test that passes
//! proves nothing.

use chrono::{Days, Utc};
use db_connect::{test_on_backends, testing::TestDatabase};
use sea_orm::ConnectionTrait;

use crate::support::{
    audit::audit,
    storm::{BookingAsked, Ledger, Outcome, seed_hotel},
};

async fn the_audit_catches_lost_unacknowledged_refused_and_miscounted_bookings(
    test_db: TestDatabase,
) {
    seed_hotel(test_db.url(), 1).await;
    let db = test_db.connection();
    let night = Utc::now().date_naive() + Days::new(2);
    let asked = |key: &str| BookingAsked {
        key: key.to_owned(),
        guest: 0,
        room_type_id: 1,
        start: night,
        end: night + Days::new(1),
        rooms: 1,
    };
    let book = |key: &str| {
        format!(
            "INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, \
             status, total_price, deposit_amount, is_deposit_paid, idempotency_key, created_at, \
             updated_at) VALUES (1, 1, '{night}', '{}', 1, 'PROVISIONAL', 10000, 2000, false, \
             '{key}', '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')",
            night + Days::new(1)
        )
    };
    // "kept" is booked and acknowledged; "extra" is committed but was never acknowledged; the
    // acknowledged "lost" does not exist; "refused" was refused yet committed. Only "kept"
    // took its room from the inventory.
    for key in ["kept", "extra", "refused"] {
        db.execute_unprepared(&book(key)).await.unwrap();
    }
    db.execute_unprepared(&format!(
        "UPDATE room_inventory SET available_rooms = available_rooms - 1 \
         WHERE room_type_id = 1 AND date = '{night}'"
    ))
    .await
    .unwrap();
    let ledger = Ledger {
        bookings: vec![
            (asked("kept"), Outcome::Acknowledged { id: 1, user_id: 1 }),
            (asked("lost"), Outcome::Acknowledged { id: 9, user_id: 1 }),
            (asked("refused"), Outcome::Refused),
        ],
        ..Ledger::default()
    };
    let findings = audit(test_db.url(), &ledger).await;
    let text = findings.database.join("\n");
    for expected in [
        "room type 1 on",
        "acknowledged booking 9 (lost)",
        "refused was refused but committed",
        "extra: committed for no request",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not found in:\n{text}"
        );
    }
    assert_eq!(findings.database.len(), 4, "{text}");
}

test_on_backends!(the_audit_catches_lost_unacknowledged_refused_and_miscounted_bookings);
