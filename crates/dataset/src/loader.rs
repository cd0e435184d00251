//! Writes generated rows with multi-row INSERTs inside large transactions.

use entity::{
    booking, booking_daily_stats, notification, payment, room_inventory, room_type, user,
    waitlist_entry,
};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};

use crate::{Result, error::DbContext};

/// A generated row and where it goes.
pub(crate) trait Row {
    const TABLE: &'static str;
    const COLUMNS: &'static [&'static str];
    /// Appends the row's values, in [`Row::COLUMNS`] order.
    fn push_values(&self, out: &mut Vec<Value>);
}

/// Inserts `rows` into their table, as many per statement as the backend's parameter limit allows.
pub(crate) async fn insert_rows<R: Row, C: ConnectionTrait>(conn: &C, rows: &[R]) -> Result<()> {
    let backend = conn.get_database_backend();
    // SQLite allows 32766 bound parameters per statement, PostgreSQL 65535.
    let max_params = match backend {
        DatabaseBackend::Postgres => 65_000,
        _ => 32_000,
    };
    let per_statement = (max_params / R::COLUMNS.len()).clamp(1, 2_000);
    let mut full_sql: Option<String> = None;
    for batch in rows.chunks(per_statement) {
        let sql = if batch.len() == per_statement {
            // Every full batch has the same text, so the driver's statement cache hits.
            full_sql
                .get_or_insert_with(|| insert_sql::<R>(backend, per_statement))
                .clone()
        } else {
            insert_sql::<R>(backend, batch.len())
        };
        let mut values = Vec::with_capacity(batch.len() * R::COLUMNS.len());
        for row in batch {
            row.push_values(&mut values);
        }
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .doing("inserting generated rows")?;
    }
    Ok(())
}

fn insert_sql<R: Row>(backend: DatabaseBackend, rows: usize) -> String {
    let columns = R::COLUMNS.join(", ");
    let mut sql = format!("INSERT INTO {} ({columns}) VALUES ", R::TABLE);
    let width = R::COLUMNS.len();
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                DatabaseBackend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * width + c + 1).to_string());
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// After rows were inserted with explicit ids, PostgreSQL's sequences must move past them.
pub(crate) async fn reset_sequences<C: ConnectionTrait>(conn: &C, tables: &[&str]) -> Result<()> {
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(()); // SQLite's AUTOINCREMENT follows explicit ids by itself.
    }
    for table in tables {
        conn.execute_unprepared(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        ))
        .await
        .doing("moving id sequences past the generated rows")?;
    }
    Ok(())
}

/// Implements [`Row`] for an entity's model whose columns are named as its fields, in the
/// order given.
macro_rules! row {
    ($($model:ty => $table:literal: [$($column:ident),+ $(,)?];)+) => {$(
        impl Row for $model {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($column)),+];
            // Strings are cloned, the rest copied: the same `.clone()` serves every column.
            #[allow(clippy::clone_on_copy)]
            fn push_values(&self, out: &mut Vec<Value>) {
                out.extend([$(self.$column.clone().into()),+]);
            }
        }
    )+};
}

row! {
    user::Model => "users": [id, name, email, phone, role, created_at];
    room_type::Model => "room_types": [
        id, name, description, price_per_night, total_rooms, created_at, updated_at
    ];
    room_inventory::Model => "room_inventory": [
        id, room_type_id, date, total_rooms, available_rooms
    ];
    booking::Model => "bookings": [
        id, user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price,
        deposit_amount, is_deposit_paid, idempotency_key, created_at, updated_at
    ];
    payment::Model => "payments": [
        id, booking_id, user_id, amount, status, provider, paid_at, created_at
    ];
    waitlist_entry::Model => "waitlist_entries": [
        id, user_id, room_type_id, start_date, end_date, status, created_at
    ];
    notification::Model => "notifications": [id, user_id, kind, status, scheduled_at, sent_at];
    booking_daily_stats::Model => "booking_daily_stats": [
        arrival_date, room_type_id, status, bookings, rooms, room_nights, revenue
    ];
}
