//! Monthly rollups beside the daily ones, kept exact by triggers in the writing transaction.
//!
//! - `booking_monthly_stats`: `booking_daily_stats` summed by arrival month (the first day of
//!   the month), room type and status;
//! - `room_inventory_monthly`: `room_inventory` summed by month and room type: nights with
//!   inventory, room-nights in service (`total_rooms`) and room-nights held by bookings that are
//!   not cancelled (`sold`, the sum of `total_rooms - available_rooms`).
//!
//! A report over a range reads whole months here and the days at either end from the daily
//! tables: a year is a few hundred monthly rows and at most two partial months of daily ones,
//! instead of 365 days of them.
//!
//! Triggers on `booking_daily_stats` and `room_inventory` apply every change of those tables
//! to the monthly ones in the same statement, so the rollups are exact for every writer (the
//! write helpers, the dataset loader, an operator's SQL) and a reader sees both grains at the
//! same commit. SQLite runs one trigger per changed row; PostgreSQL one per statement, folding
//! the statement's rows (its transition tables) into one upsert per month. `up` fills the
//! tables from the daily ones already there.

use sea_orm::DatabaseBackend;
use sea_orm_migration::prelude::*;

/// Creates, fills and maintains the monthly rollups.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BookingMonthlyStats {
    Table,
    Month,
    RoomTypeId,
    Status,
    Bookings,
    Rooms,
    RoomNights,
    Revenue,
}

#[derive(DeriveIden)]
enum RoomInventoryMonthly {
    Table,
    Month,
    RoomTypeId,
    Nights,
    TotalRooms,
    Sold,
}

#[derive(DeriveIden)]
enum RoomTypes {
    Table,
    Id,
}

fn counter<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).big_integer().not_null().to_owned()
}

/// SQLite: triggers by row, each folding one row's change into its month.
const SQLITE_TRIGGERS: &[&str] = &[
    "CREATE TRIGGER booking_daily_stats_monthly_insert AFTER INSERT ON booking_daily_stats BEGIN \
     INSERT INTO booking_monthly_stats (month, room_type_id, status, bookings, rooms, room_nights, revenue) \
     VALUES (date(NEW.arrival_date, 'start of month'), NEW.room_type_id, NEW.status, NEW.bookings, \
     NEW.rooms, NEW.room_nights, NEW.revenue) \
     ON CONFLICT (month, room_type_id, status) DO UPDATE SET bookings = bookings + excluded.bookings, \
     rooms = rooms + excluded.rooms, room_nights = room_nights + excluded.room_nights, \
     revenue = revenue + excluded.revenue; END",
    // The write helpers change counters only, never the key: one upsert of the difference.
    "CREATE TRIGGER booking_daily_stats_monthly_update AFTER UPDATE ON booking_daily_stats \
     WHEN NEW.arrival_date = OLD.arrival_date AND NEW.room_type_id = OLD.room_type_id AND NEW.status = OLD.status BEGIN \
     INSERT INTO booking_monthly_stats (month, room_type_id, status, bookings, rooms, room_nights, revenue) \
     VALUES (date(NEW.arrival_date, 'start of month'), NEW.room_type_id, NEW.status, NEW.bookings - OLD.bookings, \
     NEW.rooms - OLD.rooms, NEW.room_nights - OLD.room_nights, NEW.revenue - OLD.revenue) \
     ON CONFLICT (month, room_type_id, status) DO UPDATE SET bookings = bookings + excluded.bookings, \
     rooms = rooms + excluded.rooms, room_nights = room_nights + excluded.room_nights, \
     revenue = revenue + excluded.revenue; END",
    "CREATE TRIGGER booking_daily_stats_monthly_rekey AFTER UPDATE ON booking_daily_stats \
     WHEN NOT (NEW.arrival_date = OLD.arrival_date AND NEW.room_type_id = OLD.room_type_id AND NEW.status = OLD.status) BEGIN \
     INSERT INTO booking_monthly_stats (month, room_type_id, status, bookings, rooms, room_nights, revenue) \
     VALUES (date(OLD.arrival_date, 'start of month'), OLD.room_type_id, OLD.status, -OLD.bookings, \
     -OLD.rooms, -OLD.room_nights, -OLD.revenue) \
     ON CONFLICT (month, room_type_id, status) DO UPDATE SET bookings = bookings + excluded.bookings, \
     rooms = rooms + excluded.rooms, room_nights = room_nights + excluded.room_nights, \
     revenue = revenue + excluded.revenue; \
     INSERT INTO booking_monthly_stats (month, room_type_id, status, bookings, rooms, room_nights, revenue) \
     VALUES (date(NEW.arrival_date, 'start of month'), NEW.room_type_id, NEW.status, NEW.bookings, \
     NEW.rooms, NEW.room_nights, NEW.revenue) \
     ON CONFLICT (month, room_type_id, status) DO UPDATE SET bookings = bookings + excluded.bookings, \
     rooms = rooms + excluded.rooms, room_nights = room_nights + excluded.room_nights, \
     revenue = revenue + excluded.revenue; END",
    "CREATE TRIGGER booking_daily_stats_monthly_delete AFTER DELETE ON booking_daily_stats BEGIN \
     INSERT INTO booking_monthly_stats (month, room_type_id, status, bookings, rooms, room_nights, revenue) \
     VALUES (date(OLD.arrival_date, 'start of month'), OLD.room_type_id, OLD.status, -OLD.bookings, \
     -OLD.rooms, -OLD.room_nights, -OLD.revenue) \
     ON CONFLICT (month, room_type_id, status) DO UPDATE SET bookings = bookings + excluded.bookings, \
     rooms = rooms + excluded.rooms, room_nights = room_nights + excluded.room_nights, \
     revenue = revenue + excluded.revenue; END",
    "CREATE TRIGGER room_inventory_monthly_insert AFTER INSERT ON room_inventory BEGIN \
     INSERT INTO room_inventory_monthly (month, room_type_id, nights, total_rooms, sold) \
     VALUES (date(NEW.date, 'start of month'), NEW.room_type_id, 1, NEW.total_rooms, \
     NEW.total_rooms - NEW.available_rooms) \
     ON CONFLICT (month, room_type_id) DO UPDATE SET nights = nights + excluded.nights, \
     total_rooms = total_rooms + excluded.total_rooms, sold = sold + excluded.sold; END",
    "CREATE TRIGGER room_inventory_monthly_update AFTER UPDATE ON room_inventory \
     WHEN NEW.date = OLD.date AND NEW.room_type_id = OLD.room_type_id BEGIN \
     INSERT INTO room_inventory_monthly (month, room_type_id, nights, total_rooms, sold) \
     VALUES (date(NEW.date, 'start of month'), NEW.room_type_id, 0, NEW.total_rooms - OLD.total_rooms, \
     (NEW.total_rooms - NEW.available_rooms) - (OLD.total_rooms - OLD.available_rooms)) \
     ON CONFLICT (month, room_type_id) DO UPDATE SET nights = nights + excluded.nights, \
     total_rooms = total_rooms + excluded.total_rooms, sold = sold + excluded.sold; END",
    "CREATE TRIGGER room_inventory_monthly_rekey AFTER UPDATE ON room_inventory \
     WHEN NOT (NEW.date = OLD.date AND NEW.room_type_id = OLD.room_type_id) BEGIN \
     INSERT INTO room_inventory_monthly (month, room_type_id, nights, total_rooms, sold) \
     VALUES (date(OLD.date, 'start of month'), OLD.room_type_id, -1, -OLD.total_rooms, \
     -(OLD.total_rooms - OLD.available_rooms)) \
     ON CONFLICT (month, room_type_id) DO UPDATE SET nights = nights + excluded.nights, \
     total_rooms = total_rooms + excluded.total_rooms, sold = sold + excluded.sold; \
     INSERT INTO room_inventory_monthly (month, room_type_id, nights, total_rooms, sold) \
     VALUES (date(NEW.date, 'start of month'), NEW.room_type_id, 1, NEW.total_rooms, \
     NEW.total_rooms - NEW.available_rooms) \
     ON CONFLICT (month, room_type_id) DO UPDATE SET nights = nights + excluded.nights, \
     total_rooms = total_rooms + excluded.total_rooms, sold = sold + excluded.sold; END",
    "CREATE TRIGGER room_inventory_monthly_delete AFTER DELETE ON room_inventory BEGIN \
     INSERT INTO room_inventory_monthly (month, room_type_id, nights, total_rooms, sold) \
     VALUES (date(OLD.date, 'start of month'), OLD.room_type_id, -1, -OLD.total_rooms, \
     -(OLD.total_rooms - OLD.available_rooms)) \
     ON CONFLICT (month, room_type_id) DO UPDATE SET nights = nights + excluded.nights, \
     total_rooms = total_rooms + excluded.total_rooms, sold = sold + excluded.sold; END",
];

const SQLITE_TRIGGER_NAMES: &[&str] = &[
    "booking_daily_stats_monthly_insert",
    "booking_daily_stats_monthly_update",
    "booking_daily_stats_monthly_rekey",
    "booking_daily_stats_monthly_delete",
    "room_inventory_monthly_insert",
    "room_inventory_monthly_update",
    "room_inventory_monthly_rekey",
    "room_inventory_monthly_delete",
];

/// PostgreSQL: one trigger per statement and event; `signed_rows` is the statement's change as
/// rows with signs (a SELECT over its transition tables), folded into one upsert per month.
fn postgres_function(name: &str, signed_rows: &str, booking: bool) -> String {
    let body = if booking {
        format!(
            "INSERT INTO booking_monthly_stats (month, room_type_id, status, bookings, rooms, room_nights, revenue) \
             SELECT CAST(date_trunc('month', arrival_date) AS DATE), room_type_id, status, SUM(bookings), \
             SUM(rooms), SUM(room_nights), SUM(revenue) FROM ({signed_rows}) AS changed \
             GROUP BY 1, room_type_id, status \
             ON CONFLICT (month, room_type_id, status) DO UPDATE SET \
             bookings = booking_monthly_stats.bookings + excluded.bookings, \
             rooms = booking_monthly_stats.rooms + excluded.rooms, \
             room_nights = booking_monthly_stats.room_nights + excluded.room_nights, \
             revenue = booking_monthly_stats.revenue + excluded.revenue;"
        )
    } else {
        format!(
            "INSERT INTO room_inventory_monthly (month, room_type_id, nights, total_rooms, sold) \
             SELECT CAST(date_trunc('month', date) AS DATE), room_type_id, SUM(nights), SUM(total_rooms), \
             SUM(sold) FROM ({signed_rows}) AS changed GROUP BY 1, room_type_id \
             ON CONFLICT (month, room_type_id) DO UPDATE SET \
             nights = room_inventory_monthly.nights + excluded.nights, \
             total_rooms = room_inventory_monthly.total_rooms + excluded.total_rooms, \
             sold = room_inventory_monthly.sold + excluded.sold;"
        )
    };
    format!(
        "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
    )
}

const BOOKING_NEW: &str = "SELECT arrival_date, room_type_id, status, bookings, rooms, room_nights, revenue FROM new_rows";
const BOOKING_OLD: &str = "SELECT arrival_date, room_type_id, status, -bookings AS bookings, -rooms AS rooms, \
     -room_nights AS room_nights, -revenue AS revenue FROM old_rows";
const INVENTORY_NEW: &str = "SELECT date, room_type_id, 1 AS nights, CAST(total_rooms AS BIGINT) AS total_rooms, \
     CAST(total_rooms - available_rooms AS BIGINT) AS sold FROM new_rows";
const INVENTORY_OLD: &str = "SELECT date, room_type_id, -1 AS nights, -CAST(total_rooms AS BIGINT) AS total_rooms, \
     -CAST(total_rooms - available_rooms AS BIGINT) AS sold FROM old_rows";

/// (function and trigger name, table, event, transition tables, signed rows, booking table?)
const POSTGRES_TRIGGERS: &[(&str, &str, &str, &str, &str, bool)] = &[
    (
        "booking_daily_stats_monthly_insert",
        "booking_daily_stats",
        "INSERT",
        "NEW TABLE AS new_rows",
        BOOKING_NEW,
        true,
    ),
    (
        "booking_daily_stats_monthly_update",
        "booking_daily_stats",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "",
        true,
    ),
    (
        "booking_daily_stats_monthly_delete",
        "booking_daily_stats",
        "DELETE",
        "OLD TABLE AS old_rows",
        BOOKING_OLD,
        true,
    ),
    (
        "room_inventory_monthly_insert",
        "room_inventory",
        "INSERT",
        "NEW TABLE AS new_rows",
        INVENTORY_NEW,
        false,
    ),
    (
        "room_inventory_monthly_update",
        "room_inventory",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "",
        false,
    ),
    (
        "room_inventory_monthly_delete",
        "room_inventory",
        "DELETE",
        "OLD TABLE AS old_rows",
        INVENTORY_OLD,
        false,
    ),
];

fn postgres_statements() -> Vec<String> {
    let mut statements = Vec::new();
    for (name, table, event, transition, rows, booking) in POSTGRES_TRIGGERS {
        let rows = match (*event, *booking) {
            ("UPDATE", true) => format!("{BOOKING_NEW} UNION ALL {BOOKING_OLD}"),
            ("UPDATE", false) => format!("{INVENTORY_NEW} UNION ALL {INVENTORY_OLD}"),
            _ => (*rows).to_owned(),
        };
        statements.push(postgres_function(name, &rows, *booking));
        statements.push(format!(
            "CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} \
             FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        ));
    }
    statements
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut bookings = Table::create();
        let mut inventory = Table::create();
        if backend == DatabaseBackend::Sqlite {
            // Clustered by month: a range of months is one sequential run of the table.
            bookings.extra("WITHOUT ROWID");
            inventory.extra("WITHOUT ROWID");
        }
        manager
            .create_table(
                bookings
                    .table(BookingMonthlyStats::Table)
                    .col(ColumnDef::new(BookingMonthlyStats::Month).date().not_null())
                    .col(counter(BookingMonthlyStats::RoomTypeId))
                    .col(
                        ColumnDef::new(BookingMonthlyStats::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(counter(BookingMonthlyStats::Bookings))
                    .col(counter(BookingMonthlyStats::Rooms))
                    .col(counter(BookingMonthlyStats::RoomNights))
                    .col(counter(BookingMonthlyStats::Revenue))
                    .primary_key(
                        Index::create()
                            .col(BookingMonthlyStats::Month)
                            .col(BookingMonthlyStats::RoomTypeId)
                            .col(BookingMonthlyStats::Status),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(BookingMonthlyStats::Table, BookingMonthlyStats::RoomTypeId)
                            .to(RoomTypes::Table, RoomTypes::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_table(
                inventory
                    .table(RoomInventoryMonthly::Table)
                    .col(
                        ColumnDef::new(RoomInventoryMonthly::Month)
                            .date()
                            .not_null(),
                    )
                    .col(counter(RoomInventoryMonthly::RoomTypeId))
                    .col(counter(RoomInventoryMonthly::Nights))
                    .col(counter(RoomInventoryMonthly::TotalRooms))
                    .col(counter(RoomInventoryMonthly::Sold))
                    .primary_key(
                        Index::create()
                            .col(RoomInventoryMonthly::Month)
                            .col(RoomInventoryMonthly::RoomTypeId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                RoomInventoryMonthly::Table,
                                RoomInventoryMonthly::RoomTypeId,
                            )
                            .to(RoomTypes::Table, RoomTypes::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        let month = |column: &str| match backend {
            DatabaseBackend::Postgres => format!("CAST(date_trunc('month', {column}) AS DATE)"),
            _ => format!("date({column}, 'start of month')"),
        };
        db.execute_unprepared(&format!(
            "INSERT INTO booking_monthly_stats \
             (month, room_type_id, status, bookings, rooms, room_nights, revenue) \
             SELECT {}, room_type_id, status, SUM(bookings), SUM(rooms), SUM(room_nights), SUM(revenue) \
             FROM booking_daily_stats GROUP BY 1, room_type_id, status",
            month("arrival_date")
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO room_inventory_monthly (month, room_type_id, nights, total_rooms, sold) \
             SELECT {}, room_type_id, COUNT(*), SUM(total_rooms), SUM(total_rooms - available_rooms) \
             FROM room_inventory GROUP BY 1, room_type_id",
            month("date")
        ))
        .await?;
        match backend {
            DatabaseBackend::Postgres => {
                for statement in postgres_statements() {
                    db.execute_unprepared(&statement).await?;
                }
            }
            _ => {
                for statement in SQLITE_TRIGGERS {
                    db.execute_unprepared(statement).await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                for (name, table, ..) in POSTGRES_TRIGGERS {
                    db.execute_unprepared(&format!("DROP TRIGGER {name} ON {table}"))
                        .await?;
                    db.execute_unprepared(&format!("DROP FUNCTION {name}()"))
                        .await?;
                }
            }
            _ => {
                for name in SQLITE_TRIGGER_NAMES {
                    db.execute_unprepared(&format!("DROP TRIGGER {name}"))
                        .await?;
                }
            }
        }
        manager
            .drop_table(Table::drop().table(RoomInventoryMonthly::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(BookingMonthlyStats::Table).take())
            .await
    }
}
