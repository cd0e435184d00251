//! `--demo`: a ready-to-try server on a fresh machine.

use anyhow::Context;
use dataset::{DatasetOptions, Scale};
use entity::UserRole;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};

use crate::tokens;

/// The demo's administrator.
pub const ADMIN_EMAIL: &str = "demo-admin@hotel.example";
/// The demo's guest.
pub const GUEST_EMAIL: &str = "demo-guest@hotel.example";

/// Tokens for the demo users, to print.
#[derive(Debug)]
pub struct DemoTokens {
    /// The administrator's token.
    pub admin: String,
    /// The guest's token.
    pub guest: String,
}

/// Fills a migrated database with the small dataset unless it already has room types, and
/// issues fresh tokens for the demo administrator and guest (creating them when needed).
///
/// # Errors
///
/// When the database fails.
pub async fn prepare(db: &DatabaseConnection) -> anyhow::Result<DemoTokens> {
    let room_types = entity::prelude::RoomType::find()
        .count(db)
        .await
        .context("while counting room types")?;
    if room_types == 0 {
        tracing::info!("generating the small dataset for the demo");
        let summary = dataset::generate(db, &DatasetOptions::new(Scale::Small), &|_| {})
            .await
            .context("while generating the demo dataset")?;
        tracing::info!(
            bookings = summary.bookings,
            room_types = summary.room_types,
            "demo dataset ready"
        );
    } else {
        tracing::info!(room_types, "reusing the data already in the database");
    }
    let admin = tokens::issue(db, ADMIN_EMAIL, Some(UserRole::Admin), Some("Demo Admin"))
        .await
        .context("while creating the demo administrator's token")?;
    let guest = tokens::issue(db, GUEST_EMAIL, Some(UserRole::Guest), Some("Demo Guest"))
        .await
        .context("while creating the demo guest's token")?;
    Ok(DemoTokens {
        admin: admin.token,
        guest: guest.token,
    })
}
