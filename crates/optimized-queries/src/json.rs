//! Rows and their relations folded into one JSON document by the database.
//!
//! A guest's bookings with their room type and payments are one statement this way, where rows
//! need two (the bookings, then their payments with `IN`), and every statement through sqlx's
//! SQLite driver costs a round trip to its worker thread (measured on 1M bookings: 460 µs as
//! rows and a second query, 247 µs as one document). The document's keys are the camelCase
//! field names of the views, so it deserialises straight into them. Flat lists gain nothing
//! (50 room types: 72 µs as rows, 78 µs as a document) and stay rows.

use sea_orm::DatabaseBackend;

/// SQL fragments for building JSON on one backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonSql(pub(crate) DatabaseBackend);

impl JsonSql {
    /// An object from `(key, SQL expression)` pairs.
    pub(crate) fn object(self, pairs: &[(&str, String)]) -> String {
        let function = match self.0 {
            DatabaseBackend::Postgres => "json_build_object",
            _ => "json_object",
        };
        let args: Vec<String> = pairs
            .iter()
            .map(|(key, value)| format!("'{key}', {value}"))
            .collect();
        format!("{function}({})", args.join(", "))
    }

    /// A boolean column as a JSON boolean (SQLite stores 0 and 1).
    pub(crate) fn boolean(self, column: &str) -> String {
        match self.0 {
            DatabaseBackend::Postgres => column.to_owned(),
            _ => format!("CASE WHEN {column} THEN json('true') ELSE json('false') END"),
        }
    }

    /// The aggregate of `value`, an object built by [`JsonSql::object`] in the same query,
    /// over the rows, in `order_by` order; an empty array (not NULL) for no rows.
    pub(crate) fn array(self, value: &str, order_by: &str) -> String {
        match self.0 {
            DatabaseBackend::Postgres => {
                format!("COALESCE(json_agg({value} ORDER BY {order_by}), '[]')")
            }
            _ => format!("COALESCE(json_group_array({value} ORDER BY {order_by}), '[]')"),
        }
    }

    /// As [`JsonSql::array`], for a `column` of a subquery that holds an object: SQLite lost the
    /// value's JSON subtype on the way out of the subquery, and json() restores it, so the
    /// object is nested as an object rather than as a string.
    pub(crate) fn array_of_column(self, column: &str, order_by: &str) -> String {
        match self.0 {
            DatabaseBackend::Postgres => self.array(column, order_by),
            _ => self.array(&format!("json({column})"), order_by),
        }
    }

    /// A scalar subquery returning an array, embedded in an object as an array.
    pub(crate) fn nested(self, subquery: &str) -> String {
        match self.0 {
            DatabaseBackend::Postgres => format!("COALESCE(({subquery}), '[]')"),
            _ => format!("json(COALESCE(({subquery}), '[]'))"),
        }
    }

    /// The final document as text, for the driver to return as a string.
    pub(crate) fn text(self, value: &str) -> String {
        format!("CAST({value} AS TEXT)")
    }
}

/// Parses a document built with [`JsonSql`] into the view it describes.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(document: &str) -> crate::Result<T> {
    serde_json::from_str(document).map_err(|err| {
        crate::Error::Database(sea_orm::DbErr::Json(format!(
            "a JSON document the database built does not parse: {err}"
        )))
    })
}
