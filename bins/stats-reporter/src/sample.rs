//! Realistic parameters for the hot queries, picked from the data: plans and timings depend on
//! the values (a room type with bookings, a guest who has some, a week with inventory).

use anyhow::Context;
use chrono::{Duration, NaiveDate, Utc};
use optimized_queries::HotQuerySample;
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement};

use crate::cli::SampleArgs;

#[derive(FromQueryResult)]
struct Id {
    id: Option<i64>,
}

#[derive(FromQueryResult)]
struct Span {
    first: Option<String>,
    last: Option<String>,
}

/// The sample for `db`: the given values, the rest picked from the data. An empty database
/// gets id 1 and today, with a warning (plans can still be read; timings mean little).
pub(crate) async fn pick(
    db: &impl ConnectionTrait,
    given: &SampleArgs,
) -> anyhow::Result<HotQuerySample> {
    let backend = db.get_database_backend();
    let id = |sql: &'static str| async move {
        Id::find_by_statement(Statement::from_string(backend, sql))
            .one(db)
            .await
            .with_context(|| format!("while picking a sample id ({sql})"))
            .map(|row| row.and_then(|r| r.id))
    };
    let room_type_id = match given.room_type_id {
        Some(id) => id,
        None => match id(
            "SELECT room_type_id AS id FROM bookings GROUP BY room_type_id \
             ORDER BY COUNT(*) DESC, room_type_id LIMIT 1",
        )
        .await?
        {
            Some(id) => id,
            None => id("SELECT MIN(id) AS id FROM room_types")
                .await?
                .unwrap_or_else(|| {
                    tracing::warn!("no room types: the hot queries use room type 1");
                    1
                }),
        },
    };
    let user_id = match given.user_id {
        Some(id) => id,
        None => id("SELECT user_id AS id FROM bookings GROUP BY user_id \
                    ORDER BY COUNT(*) DESC, user_id LIMIT 1")
        .await?
        .unwrap_or_else(|| {
            tracing::warn!("no bookings: the hot queries use user 1");
            1
        }),
    };
    let today = match given.today {
        Some(day) => day,
        None => {
            let sql = match backend {
                DbBackend::Postgres => {
                    "SELECT MIN(date)::text AS first, MAX(date)::text AS last FROM room_inventory"
                }
                _ => "SELECT MIN(date) AS first, MAX(date) AS last FROM room_inventory",
            };
            let span = Span::find_by_statement(Statement::from_string(backend, sql))
                .one(db)
                .await
                .context("while reading the inventory's dates")?;
            let parse = |d: Option<String>| d.and_then(|d| d.get(..10)?.parse::<NaiveDate>().ok());
            let (first, last) = span.map_or((None, None), |s| (parse(s.first), parse(s.last)));
            within_inventory(Utc::now().date_naive(), first, last)
        }
    };
    tracing::info!(room_type_id, user_id, %today, "hot query sample");
    Ok(HotQuerySample {
        room_type_id,
        user_id,
        today,
    })
}

/// `today`, moved into the inventory so the week after it has nights: a dataset generated for
/// another date is still sampled where its data is.
fn within_inventory(
    today: NaiveDate,
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
) -> NaiveDate {
    match (first, last) {
        (Some(first), Some(last)) => {
            let latest = (last - Duration::days(7)).max(first);
            today.clamp(first, latest)
        }
        _ => today,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn today_moves_into_the_inventory() {
        let (first, last) = (Some(d("2026-01-01")), Some(d("2026-12-31")));
        assert_eq!(
            within_inventory(d("2026-06-01"), first, last),
            d("2026-06-01")
        );
        assert_eq!(
            within_inventory(d("2027-03-01"), first, last),
            d("2026-12-24")
        );
        assert_eq!(
            within_inventory(d("2025-03-01"), first, last),
            d("2026-01-01")
        );
        assert_eq!(
            within_inventory(d("2025-03-01"), None, None),
            d("2025-03-01")
        );
        // Less than a week of inventory: its first night.
        assert_eq!(
            within_inventory(d("2026-06-01"), first, Some(d("2026-01-03"))),
            d("2026-01-01")
        );
    }
}
