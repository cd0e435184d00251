//! `booking_daily_stats`: bookings summed by arrival date, room type and status.
//!
//! Reports over a year read a few thousand of these rows instead of half a million bookings.
//! The booking write helpers of `optimized-queries` keep it exact in the same transaction as
//! the booking; `up` fills it from the bookings already there, so it is exact from the start.

use sea_orm_migration::prelude::*;

/// Creates and fills `booking_daily_stats`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BookingDailyStats {
    Table,
    ArrivalDate,
    RoomTypeId,
    Status,
    Bookings,
    Rooms,
    RoomNights,
    Revenue,
}

#[derive(DeriveIden)]
enum RoomTypes {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut table = Table::create();
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
            // Rows clustered by (arrival date, room type, status): a report reads a date range
            // as one sequential run of the table instead of an index lookup per row.
            table.extra("WITHOUT ROWID");
        }
        manager
            .create_table(
                table
                    .table(BookingDailyStats::Table)
                    .col(
                        ColumnDef::new(BookingDailyStats::ArrivalDate)
                            .date()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BookingDailyStats::RoomTypeId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BookingDailyStats::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BookingDailyStats::Bookings)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BookingDailyStats::Rooms)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BookingDailyStats::RoomNights)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BookingDailyStats::Revenue)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(BookingDailyStats::ArrivalDate)
                            .col(BookingDailyStats::RoomTypeId)
                            .col(BookingDailyStats::Status),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(BookingDailyStats::Table, BookingDailyStats::RoomTypeId)
                            .to(RoomTypes::Table, RoomTypes::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .take(),
            )
            .await?;
        let nights = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "(end_date - start_date)",
            _ => "CAST(julianday(end_date) - julianday(start_date) AS INTEGER)",
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO booking_daily_stats \
                 (arrival_date, room_type_id, status, bookings, rooms, room_nights, revenue) \
                 SELECT start_date, room_type_id, status, COUNT(*), SUM(rooms_booked), \
                 SUM(rooms_booked * {nights}), SUM(total_price) \
                 FROM bookings GROUP BY start_date, room_type_id, status"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BookingDailyStats::Table).take())
            .await
    }
}
