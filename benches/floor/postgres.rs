//! The PostgreSQL floor: a statement through tokio-postgres with a statement prepared once per
//! connection, decoded into the crate's own result types by hand.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{BookingStatus, PaymentStatus};
use optimized_queries::{
    Availability, BookingStatistics, BookingView, DateRange, Occupancy, PaymentView, RoomCount,
    RoomTypeOccupancy, RoomTypeRef, RoomTypeSummary,
};
use sea_orm::{ActiveEnum, Statement, Value};
use tokio_postgres::{Client, NoTls, Row, types::ToSql};

use super::summary;

pub struct PostgresFloor {
    client: Client,
    prepared: HashMap<String, tokio_postgres::Statement>,
}

fn status<T: ActiveEnum<Value = String>>(row: &Row, index: usize) -> T {
    T::try_from_value(&row.get::<_, String>(index)).unwrap()
}

/// A sea-orm value as a tokio-postgres parameter.
fn parameter(value: &Value) -> Box<dyn ToSql + Sync + Send> {
    match value {
        Value::BigInt(Some(n)) => Box::new(*n),
        Value::Int(Some(n)) => Box::new(*n),
        Value::String(Some(s)) => Box::new(s.clone()),
        Value::ChronoDate(Some(d)) => Box::new(*d),
        other => panic!("the floor binds no {other:?}"),
    }
}

impl PostgresFloor {
    pub async fn connect(url: &str) -> Self {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(connection);
        Self {
            client,
            prepared: HashMap::new(),
        }
    }

    async fn query_sql(&mut self, sql: &str, values: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        if !self.prepared.contains_key(sql) {
            let prepared = self.client.prepare(sql).await.unwrap();
            self.prepared.insert(sql.to_owned(), prepared);
        }
        let prepared = &self.prepared[sql];
        self.client.query(prepared, values).await.unwrap()
    }

    async fn query(&mut self, statement: &Statement) -> Vec<Row> {
        let owned: Vec<Box<dyn ToSql + Sync + Send>> = statement
            .values
            .as_ref()
            .map_or(&[][..], |v| &v.0[..])
            .iter()
            .map(parameter)
            .collect();
        let values: Vec<&(dyn ToSql + Sync)> =
            owned.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect();
        self.query_sql(&statement.sql, &values).await
    }

    pub async fn room_types(&mut self, statement: &Statement) -> Vec<RoomTypeSummary> {
        self.query(statement)
            .await
            .iter()
            .map(|row| RoomTypeSummary {
                id: row.get(0),
                name: row.get(1),
                description: row.get(2),
                price_per_night: row.get(3),
                total_rooms: row.get(4),
            })
            .collect()
    }

    pub async fn availability(
        &mut self,
        statement: &Statement,
        room_type_id: i64,
        range: DateRange,
        rooms: RoomCount,
    ) -> Availability {
        let rows = self.query(statement).await;
        let row = &rows[0];
        assert_eq!(row.get::<_, i64>(0), 1);
        Availability::from_inventory(room_type_id, range, rooms, row.get(1), row.get(2))
    }

    fn booking(row: &Row) -> BookingView {
        BookingView {
            id: row.get(0),
            user_id: row.get(1),
            room_type_id: row.get(2),
            start_date: row.get::<_, NaiveDate>(3),
            end_date: row.get(4),
            rooms_booked: row.get(5),
            status: status::<BookingStatus>(row, 6),
            total_price: row.get(7),
            deposit_amount: row.get(8),
            is_deposit_paid: row.get(9),
            created_at: row.get::<_, DateTime<Utc>>(10),
            updated_at: row.get(11),
            room_type: Some(RoomTypeRef {
                id: row.get(2),
                name: row.get(12),
                price_per_night: row.get(13),
            }),
            guest: None,
            payments: Some(Vec::new()),
        }
    }

    fn payment(row: &Row, first: usize) -> PaymentView {
        PaymentView {
            id: row.get(first),
            amount: row.get(first + 1),
            status: status::<PaymentStatus>(row, first + 2),
            provider: row.get(first + 3),
            paid_at: row.get(first + 4),
            created_at: row.get(first + 5),
        }
    }

    /// The helpers' plan: the page joined to room types and payments, one row per payment.
    pub async fn user_bookings_join(&mut self, statement: &Statement) -> Vec<BookingView> {
        let rows = self.query(statement).await;
        let mut out: Vec<BookingView> = Vec::new();
        for row in &rows {
            let payment = row
                .get::<_, Option<i64>>(14)
                .map(|_| Self::payment(row, 14));
            super::fold_joined_row(&mut out, row.get(0), || Self::booking(row), payment);
        }
        out
    }

    /// Two statements: the page with room types, then its payments with `= ANY`.
    pub async fn user_bookings_two_statements(&mut self, user_id: i64) -> Vec<BookingView> {
        let rows = self.query_sql(super::USER_PAGE, &[&user_id]).await;
        let mut out: Vec<BookingView> = rows.iter().map(Self::booking).collect();
        if out.is_empty() {
            return out;
        }
        let ids: Vec<i64> = out.iter().map(|b| b.id).collect();
        let payments = self
            .query_sql(
                "SELECT booking_id, id, amount, status, provider, paid_at, created_at \
                 FROM payments WHERE booking_id = ANY($1) ORDER BY id",
                &[&ids],
            )
            .await;
        for row in &payments {
            let booking_id: i64 = row.get(0);
            let payment = Self::payment(row, 1);
            if let Some(b) = out.iter_mut().find(|b| b.id == booking_id) {
                b.payments.as_mut().unwrap().push(payment);
            }
        }
        out
    }

    /// The plan the helpers used before: one JSON document built by PostgreSQL.
    pub async fn user_bookings_json(&mut self, user_id: i64) -> Vec<BookingView> {
        let rows = self
            .query_sql(super::USER_JSON_POSTGRES, &[&user_id, &50_i64])
            .await;
        serde_json::from_str(rows[0].get::<_, &str>(0)).unwrap()
    }

    pub async fn report(
        &mut self,
        statistics: &Statement,
        occupancy: &Statement,
        range: DateRange,
    ) -> (BookingStatistics, Occupancy) {
        let by_status = self
            .query(statistics)
            .await
            .iter()
            .map(|row| {
                (
                    status::<BookingStatus>(row, 0),
                    [row.get(1), row.get(2), row.get(3), row.get(4)],
                )
            })
            .collect();
        let by_room_type = self
            .query(occupancy)
            .await
            .iter()
            .map(|row| RoomTypeOccupancy::new(row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect();
        summary(range, by_status, by_room_type)
    }
}
