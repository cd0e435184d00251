//! The registry of the indexes the hot queries rely on: every index a migration creates, with
//! the migration that creates it.
//!
//! The migrations and the index checks both read this one list: a migration creates (and its
//! `down` drops) the entries that name it, and `hotel-stats check-indexes`, the tests and the
//! benches expect all of them. An applied migration's entries never change; a new index is a
//! new entry naming a new migration (docs/performance-checklist.md, "Add a hot query with its
//! index").

/// One index the schema must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index's name, `idx_<table>_<columns>`.
    pub name: &'static str,
    /// The indexed table.
    pub table: &'static str,
    /// The name of the migration that creates it.
    pub migration: &'static str,
    /// The indexed columns, in order.
    pub columns: &'static [&'static str],
}

/// The migration that creates the original system's composite indexes.
const COMPOSITE: &str = "m20261125_000003_composite_indexes";

/// Every index the migrations create, in the order they create them.
pub const EXPECTED_INDEXES: &[IndexSpec] = &[
    IndexSpec {
        name: "idx_bookings_status_start_end",
        table: "bookings",
        migration: COMPOSITE,
        columns: &["status", "start_date", "end_date"],
    },
    IndexSpec {
        name: "idx_bookings_user_status_created",
        table: "bookings",
        migration: COMPOSITE,
        columns: &["user_id", "status", "created_at"],
    },
    IndexSpec {
        name: "idx_bookings_room_type_start_end",
        table: "bookings",
        migration: COMPOSITE,
        columns: &["room_type_id", "start_date", "end_date"],
    },
    IndexSpec {
        name: "idx_bookings_start_end_room_type_status",
        table: "bookings",
        migration: COMPOSITE,
        columns: &["start_date", "end_date", "room_type_id", "status"],
    },
    IndexSpec {
        name: "idx_room_inventory_room_type_date_available",
        table: "room_inventory",
        migration: COMPOSITE,
        columns: &["room_type_id", "date", "available_rooms"],
    },
    IndexSpec {
        name: "idx_waitlist_entries_status_start_end",
        table: "waitlist_entries",
        migration: COMPOSITE,
        columns: &["status", "start_date", "end_date"],
    },
    IndexSpec {
        name: "idx_waitlist_entries_room_type_status_created",
        table: "waitlist_entries",
        migration: COMPOSITE,
        columns: &["room_type_id", "status", "created_at"],
    },
    IndexSpec {
        name: "idx_payments_status_created",
        table: "payments",
        migration: COMPOSITE,
        columns: &["status", "created_at"],
    },
    IndexSpec {
        name: "idx_payments_user_status",
        table: "payments",
        migration: COMPOSITE,
        columns: &["user_id", "status"],
    },
    IndexSpec {
        name: "idx_payments_booking",
        table: "payments",
        migration: COMPOSITE,
        columns: &["booking_id"],
    },
    IndexSpec {
        name: "idx_notifications_status_scheduled",
        table: "notifications",
        migration: COMPOSITE,
        columns: &["status", "scheduled_at"],
    },
    IndexSpec {
        name: "idx_notifications_user_kind_status",
        table: "notifications",
        migration: COMPOSITE,
        columns: &["user_id", "kind", "status"],
    },
];

/// The indexes `migration` (a migration's name) creates, in order.
pub fn created_by(migration: &str) -> impl DoubleEndedIterator<Item = &'static IndexSpec> {
    EXPECTED_INDEXES
        .iter()
        .filter(move |spec| spec.migration == migration)
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::MigratorTrait;

    use super::*;
    use crate::Migrator;

    /// An entry whose migration is misspelt would be created by no migration and reported
    /// missing by every index check.
    #[test]
    fn every_entry_names_a_migration_of_the_migrator() {
        let names: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        for spec in EXPECTED_INDEXES {
            assert!(
                names.iter().any(|name| name == spec.migration),
                "{} names {}, which is not a migration",
                spec.name,
                spec.migration
            );
        }
        let mut unique: Vec<&str> = EXPECTED_INDEXES.iter().map(|spec| spec.name).collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            EXPECTED_INDEXES.len(),
            "an index name is listed twice"
        );
    }
}
