//! The tables of the hotel schema, with their keys and constraints and no secondary index.
//!
//! Unique constraints (emails, token hashes, room type names, idempotency keys, one inventory row
//! per room type and night) are part of the data's meaning, so they live here, not with the
//! performance indexes.

use sea_orm_migration::prelude::*;

/// Creates every table.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Email,
    Phone,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RoomTypes {
    Table,
    Id,
    Name,
    Description,
    PricePerNight,
    TotalRooms,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RoomInventory {
    Table,
    Id,
    RoomTypeId,
    Date,
    TotalRooms,
    AvailableRooms,
}

#[derive(DeriveIden)]
enum Bookings {
    Table,
    Id,
    UserId,
    RoomTypeId,
    StartDate,
    EndDate,
    RoomsBooked,
    Status,
    TotalPrice,
    DepositAmount,
    IsDepositPaid,
    IdempotencyKey,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    BookingId,
    UserId,
    Amount,
    Status,
    Provider,
    PaidAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WaitlistEntries {
    Table,
    Id,
    UserId,
    RoomTypeId,
    StartDate,
    EndDate,
    Status,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    UserId,
    Kind,
    Status,
    ScheduledAt,
    SentAt,
}

fn id<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .take()
}

fn reference<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().take()
}

fn timestamp<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn timestamp_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .take()
}

fn status<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string_len(16).not_null().take()
}

/// A CHECK that keeps `column` of `table` to the given values, named `ck_<table>_<column>`.
fn one_of(table: impl IntoIden, column: impl IntoIden, values: &[&str]) -> Check {
    let column = column.into_iden();
    Check::named(
        format!("ck_{}_{}", table.into_iden(), column),
        Expr::col(column).is_in(values.iter().copied()),
    )
}

fn foreign_key(
    from_table: impl IntoIden,
    from_column: impl IntoIden,
    to_table: impl IntoIden,
    to_column: impl IntoIden,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_column)
        .to(to_table, to_column)
        .on_delete(on_delete)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::Id))
                    .col(ColumnDef::new(Users::Name).string().not_null())
                    .col(
                        ColumnDef::new(Users::Email)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Users::Phone).string().null())
                    .col(status(Users::Role))
                    .col(timestamp(Users::CreatedAt))
                    .check(one_of(Users::Table, Users::Role, &["guest", "admin"]))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(id(ApiTokens::Id))
                    .col(reference(ApiTokens::UserId))
                    .col(
                        ColumnDef::new(ApiTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(timestamp(ApiTokens::CreatedAt))
                    .col(timestamp_null(ApiTokens::LastUsedAt))
                    .col(timestamp_null(ApiTokens::RevokedAt))
                    .foreign_key(&mut foreign_key(
                        ApiTokens::Table,
                        ApiTokens::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RoomTypes::Table)
                    .col(id(RoomTypes::Id))
                    .col(
                        ColumnDef::new(RoomTypes::Name)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(RoomTypes::Description).text().not_null())
                    .col(
                        ColumnDef::new(RoomTypes::PricePerNight)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RoomTypes::TotalRooms).integer().not_null())
                    .col(timestamp(RoomTypes::CreatedAt))
                    .col(timestamp(RoomTypes::UpdatedAt))
                    .check(Check::named(
                        "ck_room_types_price",
                        Expr::col(RoomTypes::PricePerNight).gte(0),
                    ))
                    .check(Check::named(
                        "ck_room_types_total_rooms",
                        Expr::col(RoomTypes::TotalRooms).gte(0),
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RoomInventory::Table)
                    .col(id(RoomInventory::Id))
                    .col(reference(RoomInventory::RoomTypeId))
                    .col(ColumnDef::new(RoomInventory::Date).date().not_null())
                    .col(
                        ColumnDef::new(RoomInventory::TotalRooms)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoomInventory::AvailableRooms)
                            .integer()
                            .not_null(),
                    )
                    .check(Check::named(
                        "ck_room_inventory_available",
                        Expr::col(RoomInventory::AvailableRooms).gte(0).and(
                            Expr::col(RoomInventory::AvailableRooms)
                                .lte(Expr::col(RoomInventory::TotalRooms)),
                        ),
                    ))
                    .foreign_key(&mut foreign_key(
                        RoomInventory::Table,
                        RoomInventory::RoomTypeId,
                        RoomTypes::Table,
                        RoomTypes::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_room_inventory_room_type_date")
                    .table(RoomInventory::Table)
                    .col(RoomInventory::RoomTypeId)
                    .col(RoomInventory::Date)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Bookings::Table)
                    .col(id(Bookings::Id))
                    .col(reference(Bookings::UserId))
                    .col(reference(Bookings::RoomTypeId))
                    .col(ColumnDef::new(Bookings::StartDate).date().not_null())
                    .col(ColumnDef::new(Bookings::EndDate).date().not_null())
                    .col(ColumnDef::new(Bookings::RoomsBooked).integer().not_null())
                    .col(status(Bookings::Status))
                    .col(
                        ColumnDef::new(Bookings::TotalPrice)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Bookings::DepositAmount)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Bookings::IsDepositPaid).boolean().not_null())
                    .col(
                        ColumnDef::new(Bookings::IdempotencyKey)
                            .string_len(255)
                            .null()
                            .unique_key(),
                    )
                    .col(timestamp(Bookings::CreatedAt))
                    .col(timestamp(Bookings::UpdatedAt))
                    .check(Check::named(
                        "ck_bookings_dates",
                        Expr::col(Bookings::EndDate).gt(Expr::col(Bookings::StartDate)),
                    ))
                    .check(Check::named(
                        "ck_bookings_rooms",
                        Expr::col(Bookings::RoomsBooked).gte(1),
                    ))
                    .check(Check::named(
                        "ck_bookings_money",
                        Expr::col(Bookings::TotalPrice)
                            .gte(0)
                            .and(Expr::col(Bookings::DepositAmount).gte(0)),
                    ))
                    .check(one_of(
                        Bookings::Table,
                        Bookings::Status,
                        &[
                            "PROVISIONAL",
                            "CONFIRMED",
                            "CANCELLED",
                            "CHECKED_IN",
                            "CHECKED_OUT",
                        ],
                    ))
                    .foreign_key(&mut foreign_key(
                        Bookings::Table,
                        Bookings::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut foreign_key(
                        Bookings::Table,
                        Bookings::RoomTypeId,
                        RoomTypes::Table,
                        RoomTypes::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(id(Payments::Id))
                    .col(reference(Payments::BookingId))
                    .col(reference(Payments::UserId))
                    .col(ColumnDef::new(Payments::Amount).big_integer().not_null())
                    .col(status(Payments::Status))
                    .col(ColumnDef::new(Payments::Provider).string_len(64).not_null())
                    .col(timestamp_null(Payments::PaidAt))
                    .col(timestamp(Payments::CreatedAt))
                    .check(Check::named(
                        "ck_payments_amount",
                        Expr::col(Payments::Amount).gte(0),
                    ))
                    .check(one_of(
                        Payments::Table,
                        Payments::Status,
                        &["PENDING", "PAID", "FAILED", "REFUNDED"],
                    ))
                    .foreign_key(&mut foreign_key(
                        Payments::Table,
                        Payments::BookingId,
                        Bookings::Table,
                        Bookings::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut foreign_key(
                        Payments::Table,
                        Payments::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WaitlistEntries::Table)
                    .col(id(WaitlistEntries::Id))
                    .col(reference(WaitlistEntries::UserId))
                    .col(reference(WaitlistEntries::RoomTypeId))
                    .col(ColumnDef::new(WaitlistEntries::StartDate).date().not_null())
                    .col(ColumnDef::new(WaitlistEntries::EndDate).date().not_null())
                    .col(status(WaitlistEntries::Status))
                    .col(timestamp(WaitlistEntries::CreatedAt))
                    .check(Check::named(
                        "ck_waitlist_entries_dates",
                        Expr::col(WaitlistEntries::EndDate)
                            .gt(Expr::col(WaitlistEntries::StartDate)),
                    ))
                    .check(one_of(
                        WaitlistEntries::Table,
                        WaitlistEntries::Status,
                        &["WAITING", "OFFERED", "EXPIRED", "FULFILLED"],
                    ))
                    .foreign_key(&mut foreign_key(
                        WaitlistEntries::Table,
                        WaitlistEntries::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        WaitlistEntries::Table,
                        WaitlistEntries::RoomTypeId,
                        RoomTypes::Table,
                        RoomTypes::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(id(Notifications::Id))
                    .col(reference(Notifications::UserId))
                    .col(
                        ColumnDef::new(Notifications::Kind)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(status(Notifications::Status))
                    .col(timestamp(Notifications::ScheduledAt))
                    .col(timestamp_null(Notifications::SentAt))
                    .check(one_of(
                        Notifications::Table,
                        Notifications::Status,
                        &["PENDING", "SENT", "FAILED"],
                    ))
                    .foreign_key(&mut foreign_key(
                        Notifications::Table,
                        Notifications::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents, so no foreign key is left dangling.
        for table in [
            Notifications::Table.into_iden(),
            WaitlistEntries::Table.into_iden(),
            Payments::Table.into_iden(),
            Bookings::Table.into_iden(),
            RoomInventory::Table.into_iden(),
            RoomTypes::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
