//! sea-orm entities of the hotel booking schema.
//!
//! Conventions every table follows:
//! - integer primary keys (`i64`);
//! - money in integer minor units (cents), never floats;
//! - calendar dates as [`Date`](sea_orm::prelude::Date) (`YYYY-MM-DD`), timestamps as UTC
//!   [`DateTimeUtc`](sea_orm::prelude::DateTimeUtc);
//! - a stay is `[start_date, end_date)`: `end_date` is the check-out day and is not a night.
//!
//! The tables are created by the `migration` crate; these entities describe them for queries.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api_token;
pub mod booking;
pub mod booking_daily_stats;
pub mod notification;
pub mod payment;
pub mod room_inventory;
pub mod room_type;
pub mod user;
pub mod waitlist_entry;

mod status;

pub use status::{BookingStatus, NotificationStatus, PaymentStatus, UserRole, WaitlistStatus};

/// Everything a query module usually needs, under the names sea-orm's examples use.
pub mod prelude {
    pub use crate::api_token::Entity as ApiToken;
    pub use crate::booking::Entity as Booking;
    pub use crate::booking_daily_stats::Entity as BookingDailyStats;
    pub use crate::notification::Entity as Notification;
    pub use crate::payment::Entity as Payment;
    pub use crate::room_inventory::Entity as RoomInventory;
    pub use crate::room_type::Entity as RoomType;
    pub use crate::user::Entity as User;
    pub use crate::waitlist_entry::Entity as WaitlistEntry;
    pub use crate::{BookingStatus, NotificationStatus, PaymentStatus, UserRole, WaitlistStatus};
}
