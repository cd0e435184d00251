//! Raw statements, for the queries sea-orm's builder does not express (CTEs, conditional
//! aggregates). Placeholders are `$1`, `$2`, …, which both PostgreSQL and sqlx's SQLite driver
//! read. Aggregates are CAST to BIGINT: PostgreSQL's SUM of a BIGINT is a NUMERIC.

use sea_orm::{ConnectionTrait, Statement, Value};

use crate::DateRange;

pub(crate) fn statement(
    db: &impl ConnectionTrait,
    sql: impl Into<String>,
    values: impl IntoIterator<Item = Value>,
) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// `$first, $first+1, …` for `count` values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1` a room type, `$2` and `$3` the first night and the end of a range: the values of the
/// statements that read one room type's nights.
pub(crate) fn room_type_nights(room_type_id: i64, range: DateRange) -> [Value; 3] {
    [
        room_type_id.into(),
        range.start().into(),
        range.end().into(),
    ]
}
