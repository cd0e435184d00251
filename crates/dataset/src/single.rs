//! Single rows for tests and demos that need a known hotel rather than a generated one.

use chrono::Utc;
use entity::room_type;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, NotSet};

use crate::{Result, error::DbContext};

/// Inserts a room type named `name` (described as "`name` room") and returns its id. Inventory
/// nights are the caller's: tests want exact counts.
///
/// # Errors
///
/// [`Error::Database`](crate::Error::Database) when the insert fails (a duplicate name, an
/// unmigrated database, a price or room count the schema's CHECK constraints refuse).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use migration::MigratorTrait;
///
/// let db = db_connect::connect("sqlite::memory:").await?;
/// migration::Migrator::up(&db, None).await?;
/// let standard = dataset::insert_room_type(&db, "Standard", 10_000, 5).await?;
/// let suite = dataset::insert_room_type(&db, "Suite", 30_000, 2).await?;
/// assert_eq!((standard, suite), (1, 2));
/// # Ok(())
/// # }
/// ```
pub async fn insert_room_type(
    db: &impl ConnectionTrait,
    name: &str,
    price_per_night: i64,
    total_rooms: i32,
) -> Result<i64> {
    let now = Utc::now();
    let row = room_type::ActiveModel {
        id: NotSet,
        name: Set(name.to_owned()),
        description: Set(format!("{name} room")),
        price_per_night: Set(price_per_night),
        total_rooms: Set(total_rooms),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .doing("inserting a room type")?;
    Ok(row.id)
}
