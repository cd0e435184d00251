//! The SQLite floor: a statement through SQLite's C API (rusqlite) with a cached prepared
//! statement on one connection, decoded into the crate's own result types by hand. Nothing
//! between the caller and SQLite: what the helpers can at best approach.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{BookingStatus, PaymentStatus};
use optimized_queries::{
    Availability, BookingStatistics, BookingView, DateRange, Occupancy, PaymentView, RoomCount,
    RoomTypeOccupancy, RoomTypeRef, RoomTypeSummary,
};
use rusqlite::{CachedStatement, Connection, OpenFlags, types::ValueRef};
use sea_orm::{ActiveEnum, Statement, Value};

use super::summary;

pub struct SqliteFloor {
    connection: Connection,
}

fn text(value: ValueRef<'_>) -> &str {
    value.as_str().unwrap()
}

fn date(value: ValueRef<'_>) -> NaiveDate {
    text(value).parse().unwrap()
}

fn timestamp(value: ValueRef<'_>) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text(value))
        .unwrap()
        .with_timezone(&Utc)
}

fn status<T: ActiveEnum<Value = String>>(value: ValueRef<'_>) -> T {
    T::try_from_value(&text(value).to_owned()).unwrap()
}

impl SqliteFloor {
    /// One connection to `path`, read-only, through a memory map of `mmap_bytes` (the helpers'
    /// connections use the pool's own setting).
    pub fn open(path: &Path, mmap_bytes: i64) -> Self {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        connection.pragma_update(None, "query_only", true).unwrap();
        connection
            .pragma_update(None, "mmap_size", mmap_bytes)
            .unwrap();
        connection.set_prepared_statement_cache_capacity(64);
        Self { connection }
    }

    /// `statement` prepared (from the cache) with its values bound as sqlx binds them.
    fn prepared(&self, statement: &Statement) -> CachedStatement<'_> {
        let mut prepared = self.connection.prepare_cached(&statement.sql).unwrap();
        let values = statement.values.as_ref().map_or(&[][..], |v| &v.0[..]);
        for index in 1..=prepared.parameter_count() {
            let position = match prepared.parameter_name(index) {
                Some(name) => name[1..].parse::<usize>().unwrap() - 1,
                None => index - 1,
            };
            match &values[position] {
                Value::BigInt(Some(n)) => prepared.raw_bind_parameter(index, n),
                Value::Int(Some(n)) => prepared.raw_bind_parameter(index, n),
                Value::String(Some(s)) => prepared.raw_bind_parameter(index, s),
                Value::ChronoDate(Some(d)) => {
                    prepared.raw_bind_parameter(index, d.format("%F").to_string())
                }
                other => panic!("the floor binds no {other:?}"),
            }
            .unwrap();
        }
        prepared
    }

    pub fn room_types(&self, statement: &Statement) -> Vec<RoomTypeSummary> {
        let mut prepared = self.prepared(statement);
        let mut rows = prepared.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            out.push(RoomTypeSummary {
                id: row.get_ref(0).unwrap().as_i64().unwrap(),
                name: text(row.get_ref(1).unwrap()).to_owned(),
                description: text(row.get_ref(2).unwrap()).to_owned(),
                price_per_night: row.get_ref(3).unwrap().as_i64().unwrap(),
                total_rooms: row.get_ref(4).unwrap().as_i64().unwrap() as i32,
            });
        }
        out
    }

    pub fn availability(
        &self,
        statement: &Statement,
        room_type_id: i64,
        range: DateRange,
        rooms: RoomCount,
    ) -> Availability {
        let mut prepared = self.prepared(statement);
        let mut rows = prepared.raw_query();
        let row = rows.next().unwrap().unwrap();
        let exists = row.get_ref(0).unwrap().as_i64().unwrap();
        assert_eq!(exists, 1);
        let nights = row.get_ref(1).unwrap().as_i64().unwrap();
        let min = row.get_ref(2).unwrap().as_i64_or_null().unwrap();
        Availability::from_inventory(room_type_id, range, rooms, nights, min)
    }

    fn booking(row: &rusqlite::Row<'_>) -> BookingView {
        let get = |i| row.get_ref(i).unwrap();
        BookingView {
            id: get(0).as_i64().unwrap(),
            user_id: get(1).as_i64().unwrap(),
            room_type_id: get(2).as_i64().unwrap(),
            start_date: date(get(3)),
            end_date: date(get(4)),
            rooms_booked: get(5).as_i64().unwrap() as i32,
            status: status::<BookingStatus>(get(6)),
            total_price: get(7).as_i64().unwrap(),
            deposit_amount: get(8).as_i64().unwrap(),
            is_deposit_paid: get(9).as_i64().unwrap() != 0,
            created_at: timestamp(get(10)),
            updated_at: timestamp(get(11)),
            room_type: Some(RoomTypeRef {
                id: get(2).as_i64().unwrap(),
                name: text(get(12)).to_owned(),
                price_per_night: get(13).as_i64().unwrap(),
            }),
            guest: None,
            payments: Some(Vec::new()),
        }
    }

    fn payment(row: &rusqlite::Row<'_>, first: usize) -> PaymentView {
        let get = |i| row.get_ref(first + i).unwrap();
        PaymentView {
            id: get(0).as_i64().unwrap(),
            amount: get(1).as_i64().unwrap(),
            status: status::<PaymentStatus>(get(2)),
            provider: text(get(3)).to_owned(),
            paid_at: match get(4) {
                ValueRef::Null => None,
                value => Some(timestamp(value)),
            },
            created_at: timestamp(get(5)),
        }
    }

    /// The helpers' plan: the page joined to room types and payments, one row per payment.
    pub fn user_bookings_join(&self, statement: &Statement) -> Vec<BookingView> {
        let mut prepared = self.prepared(statement);
        let mut rows = prepared.raw_query();
        let mut out: Vec<BookingView> = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            let id = row.get_ref(0).unwrap().as_i64().unwrap();
            let payment = (!matches!(row.get_ref(14).unwrap(), ValueRef::Null))
                .then(|| Self::payment(row, 14));
            super::fold_joined_row(&mut out, id, || Self::booking(row), payment);
        }
        out
    }

    /// Two statements: the page with room types, then its payments with `IN`.
    pub fn user_bookings_two_statements(&self, user_id: i64) -> Vec<BookingView> {
        let mut page = self.connection.prepare_cached(super::USER_PAGE).unwrap();
        let mut rows = page.query([user_id]).unwrap();
        let mut out: Vec<BookingView> = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            out.push(Self::booking(row));
        }
        if out.is_empty() {
            return out;
        }
        let ids: Vec<i64> = out.iter().map(|b| b.id).collect();
        let sql = format!(
            "SELECT booking_id, id, amount, status, provider, paid_at, created_at FROM payments \
             WHERE booking_id IN ({}) ORDER BY id",
            vec!["?"; ids.len()].join(", ")
        );
        let mut payments = self.connection.prepare_cached(&sql).unwrap();
        let mut rows = payments
            .query(rusqlite::params_from_iter(ids.iter()))
            .unwrap();
        while let Some(row) = rows.next().unwrap() {
            let booking_id = row.get_ref(0).unwrap().as_i64().unwrap();
            let payment = Self::payment(row, 1);
            if let Some(b) = out.iter_mut().find(|b| b.id == booking_id) {
                b.payments.as_mut().unwrap().push(payment);
            }
        }
        out
    }

    /// The plan the helpers used before: one JSON document built by SQLite, parsed by serde.
    pub fn user_bookings_json(&self, user_id: i64) -> Vec<BookingView> {
        let mut prepared = self
            .connection
            .prepare_cached(super::USER_JSON_SQLITE)
            .unwrap();
        let mut rows = prepared.query(rusqlite::params![user_id, 50_i64]).unwrap();
        let row = rows.next().unwrap().unwrap();
        serde_json::from_str(text(row.get_ref(0).unwrap())).unwrap()
    }

    /// A report's statements: booking statistics (status, bookings, rooms, room-nights,
    /// revenue) then occupancy (room type, name, sold, available), summed as the helpers do.
    pub fn report(
        &self,
        statistics: &Statement,
        occupancy: &Statement,
        range: DateRange,
    ) -> (BookingStatistics, Occupancy) {
        let mut by_status = Vec::new();
        {
            let mut prepared = self.prepared(statistics);
            let mut rows = prepared.raw_query();
            while let Some(row) = rows.next().unwrap() {
                let n = |i| row.get_ref(i).unwrap().as_i64().unwrap();
                by_status.push((
                    status::<BookingStatus>(row.get_ref(0).unwrap()),
                    [n(1), n(2), n(3), n(4)],
                ));
            }
        }
        let mut by_room_type = Vec::new();
        {
            let mut prepared = self.prepared(occupancy);
            let mut rows = prepared.raw_query();
            while let Some(row) = rows.next().unwrap() {
                let n = |i| row.get_ref(i).unwrap().as_i64().unwrap();
                by_room_type.push(RoomTypeOccupancy::new(
                    n(0),
                    text(row.get_ref(1).unwrap()).to_owned(),
                    n(2),
                    n(3),
                ));
            }
        }
        summary(range, by_status, by_room_type)
    }
}
